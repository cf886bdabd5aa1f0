"""Each objective against an independent computation (scipy, Monte Carlo, closed forms)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgen import losses


def test_kl_closed_form_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mq, lq = rng.normal(size=4), rng.normal(scale=0.3, size=4)
    mp, lp = rng.normal(size=4), rng.normal(scale=0.3, size=4)
    kl = losses.gaussian_kl(mq, lq, mp, lp)
    z = mq + np.exp(lq) * rng.standard_normal((400_000, 4))
    mc = (stats.norm.logpdf(z, mq, np.exp(lq)) - stats.norm.logpdf(z, mp, np.exp(lp))).mean(0)
    np.testing.assert_allclose(kl, mc, atol=6e-3)
    np.testing.assert_allclose(losses.gaussian_kl(mq, lq, mq, lq), 0.0, atol=1e-6)


def test_standard_normal_kl_default_prior():
    m, l = jnp.array([0.5, -1.0]), jnp.array([0.2, -0.4])
    expected = 0.5 * (np.exp(2 * l) + m**2 - 1) - l
    np.testing.assert_allclose(losses.gaussian_kl(m, l), expected, rtol=1e-6)


def test_bernoulli_matches_scipy():
    logits = np.linspace(-8, 8, 11)
    for x in (0.0, 1.0):
        expected = stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits)))
        np.testing.assert_allclose(losses.bernoulli_log_prob(logits, x), expected, rtol=1e-5)


def test_gaussian_matches_scipy():
    x, m, l = np.linspace(-3, 3, 7), 0.3, np.log(0.7)
    np.testing.assert_allclose(losses.gaussian_log_prob(x, m, l),
                               stats.norm.logpdf(x, m, 0.7), rtol=1e-5)


@pytest.mark.parametrize("mean,log_scale", [(0.0, -2.0), (0.7, -4.0), (-0.95, -1.0), (0.2, -7.0)])
def test_discretized_logistic_matches_scipy_and_sums_to_one(mean, log_scale):
    grid = np.linspace(-1, 1, 256)
    logp = np.asarray(losses.discretized_logistic_log_prob(grid, mean, log_scale), np.float64)
    h = 1 / 255
    s = math.exp(log_scale)
    cdf = stats.logistic.cdf
    expected = cdf(grid + h, mean, s) - cdf(grid - h, mean, s)
    expected[0] = cdf(grid[0] + h, mean, s)
    expected[-1] = 1 - cdf(grid[-1] - h, mean, s)
    big = expected > 1e-6
    np.testing.assert_allclose(np.exp(logp[big]), expected[big], rtol=2e-3)
    np.testing.assert_allclose(np.exp(logp).sum(), 1.0, atol=1e-4)
    assert np.all(np.isfinite(logp))


def test_discretized_logistic_far_tail_is_finite_and_small():
    logp = losses.discretized_logistic_log_prob(jnp.array([0.9]), -0.9, -6.0)
    assert np.isfinite(logp).all() and float(logp[0]) < -100


def test_iwae_bound_and_bits_per_dim():
    lw = jnp.log(jnp.array([[1.0], [3.0]]))
    np.testing.assert_allclose(losses.iwae_bound(lw), [np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(losses.bits_per_dim(jnp.array(784 * math.log(2)), 784), 1.0)
    # A uniform density on [0, 1] is exactly 8 bits per 8-bit pixel.
    np.testing.assert_allclose(losses.dequantized_bits_per_dim(jnp.array(0.0), 10), 8.0)


def test_sum_except_batch():
    x = jnp.ones((3, 2, 2, 1))
    np.testing.assert_array_equal(losses.sum_except_batch(x), [4, 4, 4])
    assert jax.jit(losses.sum_except_batch)(x).shape == (3,)
