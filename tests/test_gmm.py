"""Gaussian mixtures by EM: monotone likelihood, recovery, scikit-learn's iterates, the PCA
density, collapse, and the sharded step against one device."""
import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ml_collections import ConfigDict
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from jaxgen import sharding
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base, gmm

TYPES = gmm.COVARIANCE_TYPES


def mixture_data(n: int, seed: int = 0):
    """n points in 3-D from 3 well-separated components with unequal full covariances."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 2.0], [0.0, 7.0, -3.0]])
    factors = [np.diag([1.0, 0.5, 0.3]), np.array([[1.0, 0.6, 0.0], [0.0, 0.8, 0.3],
                                                     [0.0, 0.0, 0.4]]), 0.7 * np.eye(3)]
    weights = np.array([0.5, 0.3, 0.2])
    comp = rng.choice(3, size=n, p=weights)
    x = means[comp] + np.einsum("nij,nj->ni", np.stack(factors)[comp], rng.normal(size=(n, 3)))
    return x, weights, means, np.stack([f @ f.T for f in factors])


@functools.partial(jax.jit, static_argnums=(2, 3))
def em_iteration(x, params, cov_type, reg):
    """One E-step and M-step on all of x: (mean log-likelihood before it, new params, collapsed)."""
    ll, log_resp = gmm.log_likelihood(x, params, cov_type)
    s = gmm.accumulate(gmm.zero_stats(*params["means"].shape, cov_type, x.dtype), x,
                       jnp.exp(log_resp), params["means"], cov_type)
    return (ll.mean(), *gmm.m_step(s, params["means"], reg, cov_type))


def em(x, params, cov_type, iterations, reg=1e-6):
    """EM on a fixed array x [N, d], one batch: (mean log-likelihood per iteration, params)."""
    lls = []
    for _ in range(iterations):
        ll, params, collapsed = em_iteration(x, params, cov_type, reg)
        assert int(collapsed) == 0
        lls.append(float(ll))
    return np.array(lls), params


def start(x, k, cov_type, seed=0, hard=True):
    """The family's start: k-means++ centres, then the M-step of the hard assignments to them
    (or, not `hard`, the centres with unit covariances)."""
    centres = gmm.kmeans_plusplus(jax.random.key(seed), x, k)
    if not hard:
        params = gmm.initial_params(k, x.shape[1], cov_type)
        params = jax.tree.map(lambda a: a.astype(x.dtype), params)
        return dict(params, means=centres)
    s = gmm.accumulate(gmm.zero_stats(k, x.shape[1], cov_type, x.dtype), x,
                       gmm.nearest(x, centres), centres, cov_type)
    return gmm.m_step(s, centres, 1e-6, cov_type)[0]


@pytest.mark.parametrize("cov_type", TYPES)
def test_em_never_decreases_the_training_log_likelihood(cov_type):
    with jax.enable_x64():
        x = jnp.asarray(mixture_data(600, seed=1)[0])
        lls, _ = em(x, start(x, 4, cov_type, hard=False), cov_type, 25)
    assert np.all(np.diff(lls) >= -1e-10 * np.abs(lls[1:])), lls
    assert lls[-1] > lls[0] + 0.01  # it climbed: monotone is not merely flat


def test_em_recovers_a_known_mixture():
    x, weights, means, covs = mixture_data(6000)
    x = jnp.asarray(x, jnp.float32)
    _, params = em(x, start(x, 3, "full"), "full", 40)
    order = [int(np.argmin(np.linalg.norm(np.asarray(params["means"]) - m, axis=1)))
             for m in means]
    assert sorted(order) == [0, 1, 2]
    chol = np.asarray(params["cov_chol"])[order]
    np.testing.assert_allclose(np.asarray(params["means"])[order], means, atol=0.06)
    np.testing.assert_allclose(chol @ chol.transpose(0, 2, 1), covs, atol=0.06)
    np.testing.assert_allclose(np.asarray(params["weights"])[order], weights, atol=0.02)


@pytest.mark.parametrize("cov_type", TYPES)
def test_log_likelihood_per_iteration_equals_scikit_learn(cov_type):
    x = mixture_data(500, seed=2)[0]
    k, iterations = 4, 12
    rng = np.random.default_rng(3)
    weights = rng.dirichlet(np.ones(k) * 5)
    means = x[rng.choice(len(x), k, replace=False)]
    if cov_type == "full":
        a = rng.normal(size=(k, 3, 3))
        precisions = a @ a.transpose(0, 2, 1) + np.eye(3)
        prec_chol = np.linalg.cholesky(precisions)
        ours = {"prec_chol": prec_chol, "cov_chol": np.linalg.cholesky(np.linalg.inv(precisions))}
    else:
        precisions = rng.uniform(0.3, 2.0, size=(k, 3) if cov_type == "diag" else k)
        ours = {"var": 1.0 / precisions}
    reference = GaussianMixture(k, covariance_type=cov_type, tol=0.0, max_iter=iterations,
                                reg_covar=1e-6, weights_init=weights, means_init=means,
                                precisions_init=precisions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(x)
    with jax.enable_x64():
        params = jax.tree.map(jnp.asarray, dict(ours, weights=weights, means=means))
        lls, _ = em(jnp.asarray(x), params, cov_type, iterations)
    np.testing.assert_allclose(lls, reference.lower_bounds_, rtol=1e-5)
    assert lls[-1] - lls[0] > 0.5  # the iterates moved: the comparison is not of the start alone


def test_a_collapsed_component_is_found_and_named():
    x = np.concatenate([np.random.default_rng(0).normal(size=(50, 2)) + 5.0, np.zeros((4, 2))])
    resp = np.zeros((54, 2))
    resp[:50, 0] = resp[50:, 1] = 1.0  # component 1 holds four identical points
    for cov_type in TYPES:
        s = gmm.accumulate(gmm.zero_stats(2, 2, cov_type), jnp.asarray(x, jnp.float32),
                           jnp.asarray(resp, jnp.float32), jnp.zeros((2, 2)), cov_type)
        assert int(gmm.m_step(s, jnp.zeros((2, 2)), 0.0, cov_type)[1]) == 2, cov_type
        assert int(gmm.m_step(s, jnp.zeros((2, 2)), 1e-3, cov_type)[1]) == 0, cov_type
    family = gmm.make_family(config(), SPEC)
    state = family.init(jax.random.key(0), {})
    family.check(state)  # nothing collapsed: no error
    state = state.replace(model_state=dict(state.model_state, collapsed=jnp.array(2),
                                           collapsed_nk=jnp.array(4.0)))
    with pytest.raises(UserError, match=r"mixture component 1 of 3 collapsed .*reg_covar"):
        family.check(state)


# -- the family: streamed passes, the PCA density, sharding ---------------------------------------

SPEC = base.DataSpec((8, 8, 1), 10, num_train=64)


def config(**model) -> ConfigDict:
    c = ConfigDict()
    c.data = ConfigDict({"space": "dequantize"})
    c.model = ConfigDict(dict(family="gmm", num_components=3, covariance_type="full", pca_dim=0,
                              reg_covar=1e-4, init_examples=32, min_var=1e-8))
    c.model.update(model)
    c.train = ConfigDict({"batch_size": 16, "steps": 5 * 4})  # 4 steps per pass of 64 images
    return c


def digit_batches():
    from sklearn.datasets import load_digits
    images = np.round(load_digits().images[:64] * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return [{"image": images[i:i + 16], "label": np.zeros(16, np.int32)} for i in range(0, 64, 16)]


def fit(family, mesh, passes: int):
    """The jitted train step over `passes` passes of the same four batches (fixed noise)."""
    repl = sharding.replicated(mesh)
    state = jax.device_put(family.init(jax.random.key(0), {}), repl)
    step = jax.jit(family.train_step, out_shardings=(repl, repl))
    metrics = []
    for i in range(4 * passes):
        batch = sharding.to_global(digit_batches()[i % 4], mesh)
        state, m = step(state, batch, jax.random.fold_in(jax.random.key(1), i % 4))
        metrics.append(m)
    return state, jax.device_get(metrics)


# Full covariances on the 64 pixels: batched Cholesky factorisations hung XLA's CPU runtime on
# 8 emulated devices until the M-step factored one component at a time (experiments/README.md).
@pytest.mark.parametrize("model", [{"covariance_type": "diag"}, {},
                                   {"pca_dim": 6, "covariance_type": "spherical"}])
def test_sharded_step_on_8_devices_equals_one_device(model):
    chex.assert_equal(len(jax.devices()), 8)
    family = gmm.make_family(config(reg_covar=1e-2, **model), SPEC)  # well conditioned
    one, m1 = fit(family, sharding.make_mesh(1), 5)
    eight, m8 = fit(family, sharding.make_mesh(8), 5)
    lls = np.array([m["log_likelihood"] for m in m1[8:]]).reshape(-1, 4).mean(1)  # EM passes
    assert np.all(np.diff(lls) >= -1e-5 * np.abs(lls[1:])), lls  # the same noise: monotone
    chex.assert_trees_all_close(jax.device_get(one.params), jax.device_get(eight.params),
                                rtol=2e-4, atol=2e-5)
    chex.assert_trees_all_close(m1, m8, rtol=2e-4, atol=2e-5)


def test_pca_mixture_is_a_density_on_pixels():
    """log p from eval equals the explicit D-dimensional mixture c + U mu_k, U S_k U^T + s2 (I -
    UU^T) on the same dequantized pixels."""
    family = gmm.make_family(config(pca_dim=5, num_components=2), SPEC)
    state, _ = fit(family, sharding.make_mesh(1), 4)
    state = jax.device_get(state)
    batch = digit_batches()[0]
    rng = jax.random.key(7)
    nll = family.eval_step(state, batch, rng)["nll"]
    x = np.asarray(to_model_space(batch["image"], "dequantize", rng), np.float64).reshape(16, -1)
    p, ms = state.params, state.model_state
    u, c, s2 = [np.asarray(ms[key], np.float64) for key in ("basis", "centre", "resid_var")]
    log_joint = []
    for w, mu, chol in zip(p["weights"], p["means"], np.asarray(p["cov_chol"], np.float64)):
        cov = u @ chol @ chol.T @ u.T + s2 * (np.eye(64) - u @ u.T)
        log_joint.append(np.log(w) + stats.multivariate_normal(c + u @ mu, cov).logpdf(x))
    np.testing.assert_allclose(nll, -np.logaddexp(*log_joint), rtol=2e-4)


def test_train_steps_must_be_whole_passes():
    c = config()
    c.train.steps = 18
    with pytest.raises(UserError, match=r"--config.train.steps=20 \(3 EM iterations\)"):
        gmm.make_family(c, SPEC)
