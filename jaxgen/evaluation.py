"""Evaluation in a trained classifier's features (eval.feature_workdir): the feature network
restored from its run, the cached features of real images, and the sample metrics of a run.

Samples are compared with the eval split (its first eval.num_examples images, 0 = all); the same
metrics for a random train subset of the samples' size against the same images are the real-vs-real
floor, reported with the prefix `real_`. The maths (FD, KID, precision/recall, classifier
scores) is jaxgen.metrics.
"""
import dataclasses
import os
import re
import time
from collections.abc import Callable

import jax
import numpy as np

from jaxgen import runs, sharding, writers
from jaxgen.data.sources import ImageData
from jaxgen.errors import UserError
from jaxgen.metrics import (class_coverage, classifier_score, conditional_accuracy,
                            frechet_distance_features, kid, precision_recall)
from jaxgen.models import base, classifier

MIN_SET = 4  # precision/recall with k=3 needs more than 3 points per set


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A restored classifier: `features` and `probs` of images in [0, 1], in batches."""

    workdir: str
    step: int  # the checkpoint's training step
    shape: tuple[int, int, int]  # H, W, C the network was trained on
    num_classes: int
    batch_size: int
    mesh: jax.sharding.Mesh
    state: base.TrainState
    embed_fn: Callable  # jitted (state, images [B, H, W, C]) -> (features, probs)

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images float [N, H, W, C] in [0, 1] -> (features [N, F], probs [N, K]), float32."""
        images = np.asarray(images, np.float32)
        if images.shape[1:] != self.shape:
            raise _shape_error(self.workdir, self.shape, images.shape[1:])
        n, b = len(images), self.batch_size
        padded = np.zeros((-(-n // b) * b,) + self.shape, np.float32)
        padded[:n] = images
        data_sh = sharding.batch_sharding(self.mesh)
        parts = [jax.device_get(self.embed_fn(self.state, jax.device_put(padded[i:i + b], data_sh)))
                 for i in range(0, len(padded), b)]
        return (np.concatenate([f for f, _ in parts])[:n],
                np.concatenate([p for _, p in parts])[:n])

    def features(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] in [0, 1] -> penultimate-layer features [N, F]."""
        return self.embed(images)[0]

    def probs(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] in [0, 1] -> class probabilities [N, K]."""
        return self.embed(images)[1]


FEATURE_KEY, FEATURE_HINT = "eval.feature_workdir", "configs/classifier_<dataset>.py"


def _shape_error(workdir: str, takes: tuple, got: tuple) -> UserError:
    return UserError(f"the feature network in {workdir} takes images of shape {tuple(takes)}, "
                     f"got {tuple(got)}; use a classifier trained on this dataset as "
                     f"{FEATURE_KEY}")


def check_feature_net(workdir: str, shape: tuple[int, int, int]) -> None:
    """Refuses, before a run starts, what load_feature_net would refuse at its first eval: no
    trained classifier in `workdir`, or one trained on images of another shape."""
    config = runs.check_run(workdir, "classifier", FEATURE_KEY, FEATURE_HINT)
    takes = runs.read_spec(workdir, config).shape
    if tuple(takes) != tuple(shape):
        raise _shape_error(workdir, takes, shape)


def load_feature_net(workdir: str) -> FeatureNet:
    """Restores the latest checkpoint of the classifier run in `workdir` (read only)."""
    run = runs.load_run(workdir, "classifier", FEATURE_KEY, FEATURE_HINT)
    embed_fn = jax.jit(classifier.make_embed(run.config, run.spec))
    return FeatureNet(workdir, int(run.state.step), run.spec.shape, run.spec.num_classes,
                      run.config.eval.batch_size, run.mesh, run.state, embed_fn)


def real_features(net: FeatureNet, data: ImageData, dataset: str, split: str,
                  indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features, probs) of data.images[indices], cached in
    <net.workdir>/feature_cache/<dataset>_<split>_<step>.npz and reused when the cache holds
    these indices as a prefix (so a larger request extends, a smaller one reads it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}_{split}_{net.step}")
    path = os.path.join(net.workdir, "feature_cache", name + ".npz")
    if os.path.exists(path):
        with np.load(path) as cached:
            n = len(indices)
            if len(cached["indices"]) >= n and np.array_equal(cached["indices"][:n], indices):
                return cached["features"][:n], cached["probs"][:n]
    features, probs = net.embed(data.images[indices].astype(np.float32) / 255.0)
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, indices=indices, features=features, probs=probs)
        os.replace(tmp, path)
    return features, probs


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


Generate = Callable[[int], tuple[np.ndarray, np.ndarray]]


def sample_metrics(config, net: FeatureNet, generate: Generate, conditional: bool,
                   train_data: ImageData, test_data: ImageData) -> dict[str, float]:
    """Draws config.eval.num_samples samples with `generate(n) -> (images in [0, 1], labels)`;
    returns compare(...) of them and, prefixed `real_`, of the train subset, and prints both as
    a table. A conditional run also gets the classifier's agreement with the labels asked for."""
    t = time.perf_counter()
    shape = tuple(test_data.images.shape[1:])
    if net.shape != shape:
        raise UserError(f"the feature network in {net.workdir} was trained on images of shape "
                        f"{net.shape}, but {config.data.name!r} images are {shape}; set "
                        f"eval.feature_workdir to a classifier trained on {config.data.name}")
    n = config.eval.num_samples
    num_test = min(config.eval.num_examples or len(test_data.images), len(test_data.images))
    if min(n, num_test) < MIN_SET:
        raise UserError(f"sample metrics need eval.num_samples and eval.num_examples of at least "
                        f"{MIN_SET}; got {n} and {num_test}")
    reference, _ = real_features(net, test_data, config.data.name, config.data.eval_split,
                                 np.arange(num_test))
    subset = np.random.default_rng(0).permutation(len(train_data.images))[:n]
    real_feats, real_probs = real_features(net, train_data, config.data.name,
                                           config.data.train_split, subset)
    real = compare(reference, real_feats, real_probs)
    images, labels = generate(n)
    features, probs = net.embed(images)
    fake = compare(reference, features, probs)
    if conditional:
        accuracy, per_class = conditional_accuracy(probs, labels)
        fake.update(cond_accuracy=accuracy, cond_accuracy_min=float(np.nanmin(per_class)))
        # For real images the requested class is the true label: the classifier's own accuracy.
        accuracy, per_class = conditional_accuracy(real_probs, train_data.labels[subset])
        real.update(cond_accuracy=accuracy, cond_accuracy_min=float(np.nanmin(per_class)))
    if jax.process_index() == 0:
        print(f"sample metrics ({time.perf_counter() - t:.1f}s): {n} samples and {len(subset)} "
              f"{config.data.train_split} images vs {num_test} {config.data.eval_split} images, in the "
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
