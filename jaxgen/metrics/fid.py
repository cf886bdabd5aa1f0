"""Fréchet distance between Gaussians fitted to feature sets (the quantity behind FID).

Everything is float64 numpy on the host: the trace of a matrix square root loses digits quickly
in float32, and F x F eigendecompositions are cheap next to computing the features.
"""
import numpy as np
from numpy.typing import ArrayLike


def gaussian_stats(features: ArrayLike, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and unbiased covariance [F, F] of features [N, F], in float64.

    Rows are converted to float64 `chunk` at a time, so a large float32 array is never copied
    whole. Sums are taken around the first chunk's mean, which keeps the covariance accurate when
    the mean is large compared with the spread.
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N, F] with N >= 2, got shape {x.shape}")
    n, f = x.shape
    shift = x[:chunk].astype(np.float64).mean(axis=0)
    total = np.zeros(f)
    outer = np.zeros((f, f))
    for start in range(0, n, chunk):
        d = x[start:start + chunk].astype(np.float64) - shift
        total += d.sum(axis=0)
        outer += d.T @ d
    mean_d = total / n
    cov = (outer - n * np.outer(mean_d, mean_d)) / (n - 1)
    return shift + mean_d, cov


def _symmetric(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def _drop_rounding(eig: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those at rounding level (as in numpy's matrix_rank) set
    to 0. In a singular covariance they would otherwise each add sqrt(eps)-sized noise to the
    trace of the square root."""
    tol = eig.max(initial=0.0) * eig.shape[0] * np.finfo(np.float64).eps
    return np.where(eig > tol, eig, 0.0)


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), the squared 2-Wasserstein distance.

    Only symmetric eigendecompositions are used: C1^1/2 from eigh(C1), then the eigenvalues of the
    symmetric PSD matrix C1^1/2 C2 C1^1/2, with those at rounding level set to 0 before their
    square roots are summed. This stays accurate for singular covariances (fewer samples than
    features), where a general sqrtm of C1 C2 becomes unstable or complex. The result is clipped
    at 0: the true value is never negative, so a negative one is rounding.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1 = _symmetric(np.asarray(cov1, np.float64))
    cov2 = _symmetric(np.asarray(cov2, np.float64))
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or cov1.shape != (f, f) or cov2.shape != (f, f):
        raise ValueError(f"shape mismatch: mu {mu1.shape}, {mu2.shape}; "
                         f"cov {cov1.shape}, {cov2.shape}")
    w, v = np.linalg.eigh(cov1)
    sqrt1 = (v * np.sqrt(_drop_rounding(w))) @ v.T
    eig = np.linalg.eigvalsh(_symmetric(sqrt1 @ cov2 @ sqrt1))
    trace_sqrt = np.sqrt(_drop_rounding(eig)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt
    return float(max(fd, 0.0))


def frechet_distance_features(x: ArrayLike, y: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to features x [N, F] and y [M, F]."""
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
