"""The Gaussian image model: streaming statistics and exact log-likelihood vs numpy/scipy."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxgen import losses
from jaxgen.models import gaussian


def _stats_of(x, batch):
    d = x.shape[1]
    s = {"n": jnp.zeros(()), "mean": jnp.zeros(d), "m2": jnp.zeros((d, d))}
    for i in range(0, len(x), batch):
        s = losses.merge_moments(s, jnp.asarray(x[i : i + batch], jnp.float32))
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


def _low_rank_data(noise, n=4000, seed=3):
    """n points in 12-D from 3 factors plus independent noise of standard deviations `noise`."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(12, 3)) * np.array([3.0, 2.0, 1.0])
    return rng.normal(size=(n, 3)) @ w.T + rng.normal(size=(n, 12)) * noise + 1.5


def _gaussian_ll(x, cov):
    return stats.multivariate_normal(x.mean(0), cov).logpdf(x).mean()


def test_ppca_by_em_reaches_the_closed_form_maximum_likelihood():
    x = _low_rank_data(0.5)
    cov = np.cov(x.T, bias=True)
    w0 = np.random.default_rng(0).normal(size=(12, 3))
    w, psi, lls = gaussian.fit_factors(cov, w0, True, 5000, 1e-12, 1e-9)
    assert np.all(np.diff(lls) >= -1e-9), "EM decreased the likelihood"
    s = {"m2": cov * len(x), "n": len(x)}
    vals, vecs = gaussian.decompose(s, 3, 1e-9)
    closed = vecs @ np.diag(vals) @ vecs.T
    np.testing.assert_allclose(_gaussian_ll(x, w @ w.T + np.diag(psi)), _gaussian_ll(x, closed),
                               rtol=1e-7)
    # The likelihood is flat along the slowest directions EM moves in: the covariance is close
    np.testing.assert_allclose(w @ w.T + np.diag(psi), closed, atol=1e-4 * np.abs(closed).max())
    np.testing.assert_allclose(lls[-1], _gaussian_ll(x, closed), rtol=1e-7)


def test_factor_analysis_by_em_matches_scikit_learn_and_beats_ppca():
    from sklearn.decomposition import FactorAnalysis

    x = _low_rank_data(np.linspace(0.2, 1.5, 12))  # a noise variance per dimension
    cov = np.cov(x.T, bias=True)
    w0 = np.random.default_rng(0).normal(size=(12, 3))
    w, psi, lls = gaussian.fit_factors(cov, w0, False, 5000, 1e-12, 1e-9)
    assert np.all(np.diff(lls) >= -1e-9), "EM decreased the likelihood"
    model = w @ w.T + np.diag(psi)
    reference = FactorAnalysis(3, tol=1e-10, max_iter=5000).fit(x)
    np.testing.assert_allclose(_gaussian_ll(x, model), reference.score(x), rtol=1e-6)
    np.testing.assert_allclose(np.diag(model), np.diag(cov), rtol=2e-3)  # FA's ML: diag fits
    np.testing.assert_allclose(psi, np.linspace(0.2, 1.5, 12) ** 2, rtol=0.15, atol=0.03)
    ppca = gaussian.fit_factors(cov, w0, True, 5000, 1e-12, 1e-9)[2][-1]
    assert lls[-1] > ppca + 0.05
