"""Sample-quality metrics against closed forms, scipy references and synthetic point clouds."""
import numpy as np
import pytest
from scipy import linalg

from jaxgen import metrics


def _random_cov(rng: np.random.Generator, f: int) -> np.ndarray:
    a = rng.normal(size=(f, f))
    return a @ a.T / f + 0.1 * np.eye(f)


# ---------------------------------------------------------------- Fréchet distance

def test_gaussian_stats_matches_numpy_with_chunks_and_large_offset():
    x = 1e4 + np.random.default_rng(0).normal(size=(1000, 6)).astype(np.float32)
    mu, cov = metrics.gaussian_stats(x, chunk=128)
    assert mu.dtype == cov.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False), atol=1e-10)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    a, b = rng.uniform(0.1, 3.0, size=10), rng.uniform(0.1, 3.0, size=10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_and_is_symmetric():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    c1, c2 = _random_cov(rng, 16), _random_cov(rng, 16)
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2)
                - 2 * np.trace(linalg.sqrtm(c1 @ c2)).real)
    got = metrics.frechet_distance(mu1, c1, mu2, c2)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    np.testing.assert_allclose(metrics.frechet_distance(mu2, c2, mu1, c1), got, rtol=1e-10)


def test_frechet_distance_of_a_sample_with_itself_is_zero():
    x = np.random.default_rng(3).normal(size=(500, 32)) * np.linspace(0.1, 5.0, 32)
    fd = metrics.frechet_distance_features(x, x)
    assert 0.0 <= fd < 1e-12 * np.trace(np.cov(x, rowvar=False))


def test_frechet_distance_rank_deficient_matches_nuclear_norm():
    # With C1 = P^T P and C2 = Q^T Q (P, Q the centred, scaled data), the eigenvalues of
    # C1^1/2 C2 C1^1/2 are the squared singular values of Q P^T, so the trace term is ||Q P^T||_*.
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 64)), 0.5 + 2.0 * rng.normal(size=(30, 64))
    p = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    q = (y - y.mean(0)) / np.sqrt(len(y) - 1)
    expected = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.sum(p * p) + np.sum(q * q)
                - 2 * np.linalg.svd(q @ p.T, compute_uv=False).sum())
    fd = metrics.frechet_distance_features(x, y)
    assert np.isfinite(fd) and fd >= 0.0
    np.testing.assert_allclose(fd, expected, rtol=1e-12)
    np.testing.assert_allclose(metrics.frechet_distance_features(y, x), fd, rtol=1e-12)
    assert metrics.frechet_distance_features(x, x) < 1e-12 * np.sum(p * p)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- KID

def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    k = lambda a, b: (a @ b.T / a.shape[1] + 1.0) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy = k(x, x), k(y, y)
    off_diagonal = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return off_diagonal / (m * (m - 1)) - 2 * k(x, y).mean()


def test_kid_full_set_matches_reference_and_is_not_clipped():
    # One subset of all rows is a permutation of the full sets, so KID is exactly the unbiased
    # MMD^2 of the whole samples. Search seeds for two same-distribution samples whose estimate
    # is negative: it must come back negative.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
        ref = _mmd2_unbiased(x, y)
        if ref < 0:
            break
    assert ref < 0
    mean, std = metrics.kid(x, y, num_subsets=1, subset_size=10_000)
    np.testing.assert_allclose(mean, ref, rtol=1e-4, atol=1e-7)
    assert mean < 0 and std == 0.0


def test_kid_near_zero_for_same_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(800, 16))
    mean, std = metrics.kid(x, y, num_subsets=50, subset_size=300)
    assert std > 0 and abs(mean) < 3 * std
    shifted_mean, shifted_std = metrics.kid(x, y + 0.5, num_subsets=50, subset_size=300)
    assert shifted_mean > 10 * shifted_std and shifted_mean > 10 * abs(mean)
    assert metrics.kid(x, y, num_subsets=50, subset_size=300) == (mean, std)  # seeded


# ---------------------------------------------------------------- precision / recall

def test_precision_recall_exact_radii_on_a_line():
    # Real points 0..9 in 1-D, k=3: the ball of 9 has radius 3 (to 6), that of 0 radius 3 (to 3);
    # the point itself must not count as a neighbour.
    real = np.arange(10.0)[:, None]
    fake = np.array([[11.9], [12.5], [-2.9], [-3.5], [4.2], [20.0]])
    precision, recall = metrics.precision_recall(real, fake)
    np.testing.assert_allclose(precision, 3 / 6)
    # Swapping the sets swaps the two numbers.
    assert metrics.precision_recall(fake, real) == (recall, precision)


def test_precision_recall_identical_distributions_both_high():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    precision, recall = metrics.precision_recall(real, fake, block=512)
    assert precision > 0.9 and recall > 0.9


def test_precision_recall_truncated_fake_keeps_precision_halves_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 2))
    # Literal copy of the left half: every fake point is a real point, so precision is exactly 1.
    precision, recall = metrics.precision_recall(real, real[real[:, 0] < 0], block=512)
    assert precision == 1.0 and 0.45 < recall < 0.65
    # An independent sample truncated the same way.
    fake = rng.normal(size=(4000, 2))
    precision, recall = metrics.precision_recall(real, fake[fake[:, 0] < 0], block=512)
    assert precision > 0.9 and 0.4 < recall < 0.65


def test_precision_recall_far_fake_both_zero():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(2000, 8)), rng.normal(size=(1500, 8)) + 10.0
    assert metrics.precision_recall(real, fake, block=512) == (0.0, 0.0)


# ---------------------------------------------------------------- classifier metrics

def test_classifier_score_bounds_and_extremes():
    rng = np.random.default_rng(0)
    k = 10
    logits = rng.normal(size=(500, k)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    score = metrics.classifier_score(probs)
    assert 1.0 < score < k
    confident = np.eye(k)[np.arange(200) % k]
    np.testing.assert_allclose(metrics.classifier_score(confident), k, atol=1e-6)
    np.testing.assert_allclose(metrics.classifier_score(np.tile(probs[:1], (50, 1))), 1.0,
                               atol=1e-6)
    mean, std = metrics.classifier_score(confident, splits=4)
    np.testing.assert_allclose([mean, std], [k, 0.0], atol=1e-6)


def test_class_coverage_collapsed_and_spread():
    collapsed = metrics.class_coverage(np.full(100, 3), num_classes=10)
    assert collapsed["num_covered"] == 1 and collapsed["max_fraction"] == 1.0
    assert collapsed["min_fraction"] == 0.0 and collapsed["histogram"][3] == 1.0
    probs = np.eye(4)[[0, 0, 1, 2, 2, 2, 3, 3]] * 0.7 + 0.075
    spread = metrics.class_coverage(probs, num_classes=4)
    np.testing.assert_allclose(spread["histogram"], [2 / 8, 1 / 8, 3 / 8, 2 / 8])
    assert spread["num_covered"] == 4 and spread["min_fraction"] == 1 / 8
    with pytest.raises(ValueError):
        metrics.class_coverage(np.array([0, 5]), num_classes=4)


def test_conditional_accuracy_by_hand():
    predicted = np.array([0, 1, 1, 2, 0, 2])
    requested = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(4)[predicted] * 0.9 + 0.025
    overall, per_class = metrics.conditional_accuracy(probs, requested)
    np.testing.assert_allclose(overall, 3 / 6)
    np.testing.assert_allclose(per_class[:3], [1 / 2, 1 / 2, 1 / 2])
    assert np.isnan(per_class[3])  # class 3 never requested
