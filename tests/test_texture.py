"""Stationary Gaussian textures: Moisan's decomposition, RPN's modulus, ADSN's covariance, the
mean and the colour of the samples, against numpy computed without FFTs where it can be."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen.models import base, texture

# jitted: eager dispatch of the small FFT programs dominates the tests' time otherwise
periodic_smooth = jax.jit(texture.periodic_smooth)
fit = jax.jit(texture.fit)
synthesize = jax.jit(texture.synthesize, static_argnums=(3, 4))
sample_batch = jax.jit(texture.sample_batch, static_argnums=(2, 3, 4))


def correlated_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB image in [0, 1] whose channels are strongly correlated, with a gradient (so its
    borders do not match) and some spatial correlation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(h, w, 3))
    x = x + np.roll(x, 1, 0) + 0.5 * np.roll(x, -1, 1)
    x = x @ np.array([[1.0, 0.8, 0.3], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    x = x + np.linspace(0, 2, h)[:, None, None]
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


def periodic_laplacian(x: np.ndarray) -> np.ndarray:
    return sum(np.roll(x, shift, axis) for shift in (1, -1) for axis in (0, 1)) - 4 * x


def interior_laplacian(u: np.ndarray) -> np.ndarray:
    """Sum over the neighbours inside the frame of (neighbour - pixel)."""
    h, w = u.shape[:2]
    out = np.zeros_like(u)
    for i in range(h):
        for j in range(w):
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= i + di < h and 0 <= j + dj < w:
                    out[i, j] += u[i + di, j + dj] - u[i, j]
    return out


def test_periodic_plus_smooth_gives_back_the_image():
    u = correlated_rgb(7, 10)
    p, s = jax.device_get(periodic_smooth(jnp.asarray(u)))
    chex.assert_trees_all_close(p + s, u, atol=1e-6)
    # Moisan's definition: p is periodic with the frame's Laplacian, s smooth with mean 0.
    chex.assert_trees_all_close(periodic_laplacian(p.astype(np.float64)),
                                interior_laplacian(u.astype(np.float64)), atol=2e-5)
    chex.assert_trees_all_close(s.mean((0, 1)), np.zeros(3), atol=1e-6)
    assert np.abs(s).max() > 0.05  # the gradient's border jump went into s


def test_rpn_keeps_the_fourier_modulus_of_the_periodic_component():
    u = correlated_rgb(24, 21)  # an odd width: the half-spectrum has no Nyquist column
    model = fit(jnp.asarray(u))
    p = np.asarray(periodic_smooth(jnp.asarray(u))[0])
    x = np.asarray(synthesize(jax.random.key(0), model["mean"], model["spot"], (24, 21),
                                      "rpn"))
    mean = p.mean((0, 1))
    want = np.abs(np.fft.fft2(p - mean, axes=(0, 1)))
    got = np.abs(np.fft.fft2(x - mean, axes=(0, 1)))
    # float32 rounding: ~3e-6 of the largest coefficient at most (at the DC, whose exemplar value
    # is itself a rounding residue), ~4e-7 in relative L2
    chex.assert_trees_all_close(got, want, atol=1e-5 * want.max())
    assert np.linalg.norm(got - want) < 2e-6 * np.linalg.norm(want)
    # and the phase did change: the sample is not the exemplar
    assert abs(np.corrcoef((x - mean).ravel(), (p - mean).ravel())[0, 1]) < 0.3


def test_adsn_mean_and_covariance_match_the_spot_autocorrelation():
    h, w, c, n = 6, 5, 3, 20_000
    u = correlated_rgb(h, w, seed=1)
    model = fit(jnp.asarray(u))
    x = np.asarray(sample_batch(jax.random.key(1), model, n, (h, w), "adsn"),
                   np.float64).reshape(n, -1)
    # Cov(X_c(a), X_d(b)) = sum_z t_c(z) t_d(z + b - a), the spot's circular autocorrelation
    t = np.moveaxis(np.asarray(model["spot"], np.float64), 0, -1)  # [h, w, c]
    cov = np.zeros((h, w, c, h, w, c))
    for a in np.ndindex(h, w):
        for b in np.ndindex(h, w):
            lag = np.roll(t, (a[0] - b[0], a[1] - b[1]), (0, 1))  # lag[z] = t[z + b - a]
            cov[a[0], a[1], :, b[0], b[1], :] = np.einsum("ijc,ijd->cd", t, lag)
    cov = cov.reshape(h * w * c, h * w * c)
    mean = np.tile(np.asarray(model["mean"], np.float64), h * w)
    var = np.diag(cov)
    z_mean = (x.mean(0) - mean) / np.sqrt(var / n)
    emp = np.cov(x.T, bias=True)
    # the sampling s.d. of an empirical Gaussian covariance: sqrt((S_ii S_jj + S_ij^2) / n)
    z_cov = (emp - cov) / np.sqrt((np.outer(var, var) + cov**2) / n)
    assert np.abs(z_mean).max() < 5 and np.abs(z_cov).max() < 5.5
    assert np.abs(cov[0::3, 1::3]).max() > 0.3 * var.max()  # there are cross terms to check


@pytest.mark.parametrize("synthesis", texture.SYNTHESES)
def test_an_output_of_the_exemplar_size_and_larger_has_the_mean_of_u(synthesis):
    u = correlated_rgb(12, 16, seed=2)
    model = fit(jnp.asarray(u))
    for size in ((12, 16), (30, 17)):
        x = synthesize(jax.random.key(2), model["mean"], model["spot"], size, synthesis)
        chex.assert_shape(x, size + (3,))
        chex.assert_trees_all_close(x.mean((0, 1)), u.mean((0, 1)), atol=1e-6)


def test_rgb_samples_keep_the_cross_channel_covariance():
    u = correlated_rgb(32, 32, seed=3)
    model = fit(jnp.asarray(u))
    p = np.asarray(texture.periodic_part(model), np.float64).reshape(-1, 3)
    want = np.cov(p.T, bias=True)
    rpn = np.asarray(sample_batch(jax.random.key(3), model, 4, (32, 32), "rpn"))
    for x in rpn:  # exactly, in every sample: the phase differences between channels are kept
        chex.assert_trees_all_close(np.cov(x.reshape(-1, 3).T, bias=True), want,
                                    atol=1e-5 * want.max())
    adsn = np.asarray(sample_batch(jax.random.key(4), model, 500, (32, 32), "adsn"),
                      np.float64).reshape(500, -1, 3)
    covs = np.stack([np.cov(x.T, bias=True) for x in adsn])  # in expectation
    assert np.all(np.abs(covs.mean(0) - want) < 5 * covs.std(0) / np.sqrt(500))
    assert np.abs(want[0, 1]) > 0.5 * np.sqrt(want[0, 0] * want[1, 1])


def _family(shape, **model) -> base.Family:
    c = ml_collections.ConfigDict({
        "data": {"space": "unit"},
        "model": dict(dict(family="texture", synthesis="rpn", sample_size=(0, 0),
                           eval_samples=8), **model)})
    return texture.make_family(c, base.DataSpec(shape, 0))


def test_family_fits_samples_any_size_and_scores_its_own_exemplar():
    u = np.round(correlated_rgb(16, 12, seed=4) * 255).astype(np.uint8)
    batch = {"image": jnp.asarray(u[None]), "label": jnp.zeros(1, jnp.int32)}
    family = _family((16, 12, 3), sample_size=(20, 9))
    state = family.init(jax.random.key(0), batch)
    state, metrics = jax.jit(family.train_step)(state, batch, jax.random.key(1))
    assert 0 < metrics["smooth_fraction"] < 1
    sample = jax.jit(chex.assert_max_traces(family.sample, n=1))
    for i in range(2):
        x = sample(state, jax.random.key(i), jnp.zeros(5, jnp.int32))
    chex.assert_shape(x, (5, 20, 9, 3))
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    per_example = jax.jit(family.eval_step)(state, batch, jax.random.key(2))
    assert float(per_example["rpn_modulus_err"][0]) < 1e-5  # float32 rounding, on itself
    assert 0.15 < float(per_example["adsn_autocov_err"][0]) < 0.7  # ~1/sqrt(8) Monte Carlo
    picture = family.pictures(state, batch, jax.random.key(3))["textures"]
    assert picture.dtype == np.uint8 and picture.shape == (2 + 16 + 2 + 32 + 2, 2 + 2 * (24 + 2), 3)
