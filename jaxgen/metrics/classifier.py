"""Metrics on a classifier's predictions for generated samples: score, coverage, accuracy."""
import numpy as np
from numpy.typing import ArrayLike


def _probs(probs: ArrayLike) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or np.any(p < 0):
        raise ValueError(f"probs must be non-negative [N, K], got shape {p.shape}")
    return p / p.sum(axis=1, keepdims=True)


def _score(p: np.ndarray) -> float:
    marginal = p.mean(axis=0)
    # 0 log 0 = 0; where p > 0 the marginal is > 0 too.
    safe = p > 0
    log_ratio = np.log(np.where(safe, p, 1.0)) - np.log(np.where(safe, marginal, 1.0))
    return float(np.exp(np.sum(p * log_ratio, axis=1).mean()))


def classifier_score(probs: ArrayLike,
                     splits: int | None = None) -> float | tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of probs [N, K] (the Inception Score idea).

    Lies in [1, K]. With `splits`, the IS convention: the score of each of `splits` consecutive
    chunks, returned as (mean, std).
    """
    p = _probs(probs)
    if splits is None:
        return _score(p)
    scores = [_score(chunk) for chunk in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def _labels(probs_or_labels: ArrayLike, num_classes: int) -> np.ndarray:
    a = np.asarray(probs_or_labels)
    labels = a.argmax(axis=1) if a.ndim == 2 else a
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"expected probs [N, {num_classes}] or labels [N] in [0, {num_classes})")
    return labels.astype(np.int64)


def class_coverage(probs_or_labels: ArrayLike, num_classes: int) -> dict:
    """How predicted classes spread over num_classes: a mode-collapse check.

    Takes probs [N, K] (argmax is the prediction) or labels [N]. Returns `histogram` (fraction
    per class, [K]), `min_fraction`, `max_fraction` and `num_covered` (classes predicted at least
    once).
    """
    labels = _labels(probs_or_labels, num_classes)
    hist = np.bincount(labels, minlength=num_classes) / len(labels)
    return {"histogram": hist, "min_fraction": float(hist.min()),
            "max_fraction": float(hist.max()), "num_covered": int(np.count_nonzero(hist))}


def conditional_accuracy(probs: ArrayLike,
                         requested_labels: ArrayLike) -> tuple[float, np.ndarray]:
    """Accuracy of a class-conditional generator: does the classifier see the requested class?

    probs [N, K], requested_labels [N]. Returns (overall accuracy, per-class accuracy [K]); a
    class never requested gets NaN.
    """
    p = np.asarray(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, K], got shape {p.shape}")
    requested = _labels(requested_labels, p.shape[1])
    if len(p) != len(requested):
        raise ValueError(f"probs [N, K] and requested_labels [N] disagree: {p.shape}, "
                         f"{requested.shape}")
    correct = p.argmax(axis=1) == requested
    counts = np.bincount(requested, minlength=p.shape[1])
    hits = np.bincount(requested, weights=correct, minlength=p.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = hits / counts
    return float(correct.mean()), per_class
