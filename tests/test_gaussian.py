"""The Gaussian image model: streaming statistics and exact log-likelihood vs numpy/scipy."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxgen.models import gaussian


def _stats_of(x, batch):
    d = x.shape[1]
    s = {"n": jnp.zeros(()), "mean": jnp.zeros(d), "m2": jnp.zeros((d, d))}
    for i in range(0, len(x), batch):
        s = gaussian.merge_stats(s, jnp.asarray(x[i : i + batch], jnp.float32))
    return s


def test_streaming_statistics_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 5)) @ rng.normal(size=(5, 5)) + 3.0
    s = _stats_of(x, batch=70)  # uneven last batch
    np.testing.assert_allclose(s["n"], 1000)
    np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s["m2"] / s["n"], np.cov(x.T, bias=True), rtol=1e-4, atol=1e-4)


def test_full_covariance_log_prob_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    s = _stats_of(x, batch=100)
    vals, vecs = gaussian.decompose(s, 0, 1e-9)
    got = gaussian.log_prob(jnp.asarray(x[:20], jnp.float32), s["mean"], vals, vecs)
    expected = stats.multivariate_normal(x.mean(0), np.cov(x.T, bias=True)).logpdf(x[:20])
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_ppca_matches_its_explicit_covariance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(800, 8)) * np.linspace(3, 0.2, 8)
    s = _stats_of(x, batch=200)
    k = 3
    vals, vecs = jax.device_get(gaussian.decompose(s, k, 1e-9))
    cov = np.cov(x.T, bias=True)
    lam, e = np.linalg.eigh(cov)
    lam, e = lam[::-1], e[:, ::-1]
    sigma2 = lam[k:].mean()  # Tipping & Bishop's ML noise variance
    model_cov = e[:, :k] @ np.diag(lam[:k] - sigma2) @ e[:, :k].T + sigma2 * np.eye(8)
    got = gaussian.log_prob(jnp.asarray(x[:10], jnp.float32), s["mean"], vals, vecs)
    expected = stats.multivariate_normal(x.mean(0), model_cov).logpdf(x[:10])
    np.testing.assert_allclose(got, expected, rtol=1e-4)
