"""Sample metrics of a run in a trained classifier's features (eval.feature_workdir).

Samples are compared with the eval split (its first eval.num_examples images, 0 = all); the same
metrics for a random train subset of the samples' size against the same images are the real-vs-real
floor, reported with the prefix `real_`.
"""
import time

import jax
import numpy as np

from jaxgen import writers
from jaxgen.errors import UserError
from jaxgen.metrics.classifier import class_coverage, classifier_score, conditional_accuracy
from jaxgen.metrics.features import load_feature_net, real_features
from jaxgen.metrics.fid import frechet_distance_features
from jaxgen.metrics.kid import kid
from jaxgen.metrics.precision_recall import precision_recall

MIN_SET = 4  # precision/recall with k=3 needs more than 3 points per set


def compare(reference: np.ndarray, features: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Metrics of one set (features [M, F], probs [M, K]) against reference features [N, F]."""
    kid_mean, kid_std = kid(features, reference)
    precision, recall = precision_recall(reference, features)
    coverage = class_coverage(probs, probs.shape[1])
    return {"fd": frechet_distance_features(features, reference), "kid_mean": kid_mean,
            "kid_std": kid_std, "precision": precision, "recall": recall,
            "classifier_score": classifier_score(probs),
            "coverage_min": coverage["min_fraction"], "coverage_max": coverage["max_fraction"],
            "num_covered": float(coverage["num_covered"])}


def sample_metrics(exp, state) -> dict[str, float]:
    """Draws eval.num_samples samples of `exp` (a train.Experiment) at `state`; returns
    compare(...) of them and, prefixed `real_`, of the train subset, and prints both as a table."""
    cfg = exp.config
    t = time.perf_counter()
    net = load_feature_net(cfg.eval.feature_workdir)
    shape = tuple(exp.test_data.images.shape[1:])
    if net.shape != shape:
        raise UserError(f"the feature network in {net.workdir} was trained on images of shape "
                        f"{net.shape}, but {cfg.data.name!r} images are {shape}; set "
                        f"eval.feature_workdir to a classifier trained on {cfg.data.name}")
    n = cfg.eval.num_samples
    num_test = min(cfg.eval.num_examples or len(exp.test_data.images), len(exp.test_data.images))
    if min(n, num_test) < MIN_SET:
        raise UserError(f"sample metrics need eval.num_samples and eval.num_examples of at least "
                        f"{MIN_SET}; got {n} and {num_test}")
    reference, _ = real_features(net, exp.test_data, cfg.data.name, cfg.data.eval_split,
                                 np.arange(num_test))
    subset = np.random.default_rng(0).permutation(len(exp.train_data.images))[:n]
    real_feats, real_probs = real_features(net, exp.train_data, cfg.data.name,
                                           cfg.data.train_split, subset)
    real = compare(reference, real_feats, real_probs)
    images, labels = exp.generate(state, n)
    features, probs = net.embed(images)
    fake = compare(reference, features, probs)
    if exp.family.conditional:
        accuracy, per_class = conditional_accuracy(probs, labels)
        fake.update(cond_accuracy=accuracy, cond_accuracy_min=float(np.nanmin(per_class)))
        # For real images the requested class is the true label: the classifier's own accuracy.
        accuracy, per_class = conditional_accuracy(real_probs, exp.train_data.labels[subset])
        real.update(cond_accuracy=accuracy, cond_accuracy_min=float(np.nanmin(per_class)))
    if jax.process_index() == 0:
        print(f"sample metrics ({time.perf_counter() - t:.1f}s): {n} samples and {len(subset)} "
              f"{cfg.data.train_split} images vs {num_test} {cfg.data.eval_split} images, in the "
              f"features of {net.workdir} (step {net.step})\n"
              + format_table(fake, real), flush=True)
        hist = class_coverage(probs, probs.shape[1])["histogram"]
        print("  class fractions of the samples: "
              + " ".join(f"{k}:{v:.3f}" for k, v in enumerate(hist)), flush=True)
    return dict(fake, **{f"real_{k}": v for k, v in real.items()})


def format_table(fake: dict[str, float], real: dict[str, float]) -> str:
    """Two aligned columns, samples and the real-vs-real floor, one row per metric."""
    rows = [f"  {'metric':<18}{'samples':>12}{'real':>12}"]
    rows += [f"  {k:<18}{writers.format_number(fake[k]):>12}{writers.format_number(real[k]):>12}"
             for k in fake]
    return "\n".join(rows)
