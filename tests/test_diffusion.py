"""Diffusion: schedules and Gaussian closed forms, samplers and the bound driven by the optimal
denoiser of Gaussian data, guidance, the discretized decoder, the U-Net."""
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxgen import config as config_lib, losses, models
from jaxgen.errors import UserError
from jaxgen.models import base, diffusion as dm
from jaxgen.nn.unet import UNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 2-D Gaussian data N(MU, SIGMA): E[eps | x_t] is linear in x_t, so the samplers and the bound
# can be driven by the exact optimal denoiser.
MU = np.array([0.3, -0.2])
SIGMA = np.array([[0.25, 0.1], [0.1, 0.16]])
T = 1000


def float64_schedule(betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alphas_bar = np.cumprod(1.0 - betas.astype(np.float64))
    return alphas_bar, np.append(1.0, alphas_bar[:-1])


def optimal_denoiser(s: dm.Schedule) -> dm.Denoiser:
    """E[eps | x_t] = sqrt(1 - abar) (abar SIGMA + (1 - abar) I)^-1 (x_t - sqrt(abar) MU)."""
    ab, _ = float64_schedule(np.asarray(s.betas))
    a, sd = np.sqrt(ab)[:, None, None], np.sqrt(1.0 - ab)[:, None, None]
    gain = jnp.asarray(sd * np.linalg.inv(a ** 2 * SIGMA + sd ** 2 * np.eye(2)), jnp.float32)
    shift = jnp.asarray(np.sqrt(ab)[:, None] * MU, jnp.float32)
    return lambda x, t, labels: jnp.einsum("bij,bj->bi", gain[t], x - shift[t])


def assert_moments(x: jax.Array, atol_mean: float, atol_cov: float) -> None:
    x = np.asarray(x, np.float64)
    np.testing.assert_allclose(x.mean(0), MU, atol=atol_mean)
    np.testing.assert_allclose(np.cov(x.T), SIGMA, atol=atol_cov)


@pytest.fixture(scope="module")
def gaussian_setup():
    s = dm.make_schedule("linear", T)
    return s, optimal_denoiser(s), jnp.zeros((20_000,), jnp.int32)


def test_schedule_endpoints_and_cosine_formula():
    lin = dm.make_schedule("linear", T)
    chex.assert_trees_all_close(lin.betas[jnp.array([0, -1])], jnp.array([1e-4, 0.02]))
    assert float(lin.alphas_bar[-1]) < 1e-4
    assert float(dm.make_schedule("linear", 20).alphas_bar[-1]) < 1e-4  # betas scale with 1/T
    cos = dm.make_schedule("cosine", T)
    steps = np.arange(T + 1) / T
    f = np.cos((steps + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(cos.alphas_bar[:-1], (f / f[0])[1:-1], rtol=1e-5, atol=1e-7)
    assert float(cos.alphas_bar[-1]) < 1e-6 and float(cos.betas.max()) == np.float32(dm.MAX_BETA)
    with pytest.raises(UserError, match="model.schedule"):
        dm.make_schedule("quadratic", T)


@pytest.mark.parametrize("name", dm.SCHEDULES)
def test_q_sample_and_posterior_match_bayes_rule(name):
    num_steps = 50
    s = dm.make_schedule(name, num_steps)
    betas = np.asarray(s.betas, np.float64)
    ab, ab_prev = float64_schedule(betas)
    k0, k1, k2 = jax.random.split(jax.random.key(0), 3)
    t = jnp.arange(num_steps)
    x0 = jax.random.normal(k0, (num_steps, 3))
    noise = jax.random.normal(k1, (num_steps, 3))
    x_t = jax.random.normal(k2, (num_steps, 3))
    expected = np.sqrt(ab)[:, None] * x0 + np.sqrt(1 - ab)[:, None] * noise
    np.testing.assert_allclose(dm.q_sample(s, x0, t, noise), expected, atol=1e-5)
    # Bayes: prior x_{t-1} ~ N(sqrt(abar_prev) x0, 1 - abar_prev), x_t | x_{t-1} ~
    # N(sqrt(1 - beta) x_{t-1}, beta); for t >= 1 (index), where the prior is not a point mass.
    x0_, xt_ = np.asarray(x0, np.float64)[1:], np.asarray(x_t, np.float64)[1:]
    b, p, pp = betas[1:, None], ab_prev[1:, None], 1.0 - ab_prev[1:, None]
    var = 1.0 / (1.0 / pp + (1.0 - b) / b)
    mean = var * (np.sqrt(p) * x0_ / pp + np.sqrt(1.0 - b) * xt_ / b)
    got_mean, got_log_var = dm.q_posterior(s, x0, x_t, t)
    np.testing.assert_allclose(got_mean[1:], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.exp(got_log_var[1:, 0]), var[:, 0], rtol=1e-4)
    chex.assert_trees_all_close(got_mean[0], x0[0], atol=1e-4)  # t = 0: x_0 itself


def test_eps_and_v_predictions_convert_both_ways():
    s = dm.make_schedule("cosine", 100)
    k0, k1 = jax.random.split(jax.random.key(1))
    x0, eps = jax.random.normal(k0, (100, 5)), jax.random.normal(k1, (100, 5))
    t = jnp.arange(100)
    x_t = dm.q_sample(s, x0, t, eps)
    v = dm.v_target(s, x0, t, eps)
    chex.assert_trees_all_close(dm.eps_from_v(s, x_t, t, v), eps, atol=1e-5)
    chex.assert_trees_all_close(dm.predict_x0(s, x_t[:90], t[:90], eps[:90]), x0[:90], atol=1e-4)
    chex.assert_trees_all_close(dm.v_target(s, x0, t, dm.eps_from_v(s, x_t, t, v)), v, atol=1e-5)


def test_ancestral_sampler_with_optimal_denoiser_reproduces_the_data(gaussian_setup):
    s, eps_fn, labels = gaussian_setup
    x_T = jax.random.normal(jax.random.key(2), (labels.shape[0], 2))
    x, _ = jax.jit(lambda x: dm.ancestral_sample(s, eps_fn, x, labels, jax.random.key(3),
                                                 clip=False))(x_T)
    assert_moments(x, 0.015, 0.015)


@pytest.mark.parametrize("steps", [250, 1000])
def test_deterministic_ddim_with_optimal_denoiser_reproduces_the_data(gaussian_setup, steps):
    """With fewer steps DDIM's samples shrink (variance 6% low at 100 steps here)."""
    s, eps_fn, labels = gaussian_setup
    x_T = jax.random.normal(jax.random.key(4), (labels.shape[0], 2))
    x, chain = dm.ddim_sample(s, eps_fn, x_T, labels, jax.random.key(5), steps, eta=0.0,
                              clip=False, keep_chain=True)
    chex.assert_shape(chain, (steps, labels.shape[0], 2))
    chex.assert_trees_all_equal(chain[-1], x)
    assert_moments(x, 0.015, 0.015)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_on_images_of_a_point_mass_return_that_image(sampler):
    """One image x*: the optimal denoiser is eps = (x_t - sqrt(abar) x*) / sqrt(1 - abar)."""
    s = dm.make_schedule("cosine", 100)
    target = jax.random.uniform(jax.random.key(0), (1, 6, 6, 3), minval=-1.0, maxval=1.0)

    def eps_fn(x, t, labels):
        ab = s.alphas_bar[t][:, None, None, None]
        return (x - jnp.sqrt(ab) * target) / jnp.sqrt(1.0 - ab)

    x_T = jax.random.normal(jax.random.key(1), (4, 6, 6, 3))
    labels = jnp.zeros((4,), jnp.int32)
    if sampler == "ancestral":
        x, _ = dm.ancestral_sample(s, eps_fn, x_T, labels, jax.random.key(2), "large")
    else:
        x, _ = dm.ddim_sample(s, eps_fn, x_T, labels, jax.random.key(2), 10, eta=0.5)
    chex.assert_trees_all_close(x, jnp.broadcast_to(target, x.shape), atol=1e-4)


def test_ddim_with_eta_one_and_all_steps_matches_ancestral(gaussian_setup):
    s, eps_fn, labels = gaussian_setup
    x_T = jax.random.normal(jax.random.key(6), (labels.shape[0], 2))
    ddim, _ = dm.ddim_sample(s, eps_fn, x_T, labels, jax.random.key(7), T, eta=1.0, clip=False)
    ancestral, _ = dm.ancestral_sample(s, eps_fn, x_T, labels, jax.random.key(8), clip=False)
    for x in (ddim, ancestral):
        assert_moments(x, 0.015, 0.015)
    np.testing.assert_allclose(np.cov(np.asarray(ddim).T), np.cov(np.asarray(ancestral).T),
                               atol=0.01)
    # Same noise on both paths: DDIM(eta=1, S=T) is the ancestral step with beta~ written
    # differently, so the samples agree one by one.
    same, _ = dm.ddim_sample(s, eps_fn, x_T, labels, jax.random.key(8), T, eta=1.0, clip=False)
    chex.assert_trees_all_close(same, ancestral, atol=2e-3)


def expected_bound(s: dm.Schedule, variance: str) -> float:
    """E over the data of the bound with the optimal denoiser and a Gaussian decoder, in closed
    form: every KL term is between Gaussians whose means differ by coef1 (x_0 - E[x_0 | x_t])."""
    betas = np.asarray(s.betas, np.float64)
    ab, ab_prev = float64_schedule(betas)
    post_var = betas * (1.0 - ab_prev) / (1.0 - ab)
    coef1 = betas * np.sqrt(ab_prev) / (1.0 - ab)
    var = np.exp(np.asarray(s.log_var_small if variance == "small" else s.log_var_large,
                            np.float64))
    cov_x0 = [SIGMA - a * SIGMA @ np.linalg.inv(a * SIGMA + (1 - a) * np.eye(2)) @ SIGMA
              for a in ab]  # Cov(x_0 | x_t)
    tr = np.array([np.trace(c) for c in cov_x0])
    r = post_var[1:] / var[1:]
    kls = r - 1.0 - np.log(r) + coef1[1:] ** 2 * tr[1:] / (2.0 * var[1:])  # d / 2 = 1
    decoder = np.log(2 * np.pi * var[0]) + tr[0] / (2.0 * var[0])
    s2 = 1.0 - ab[-1]
    prior = s2 - 1.0 - np.log(s2) + 0.5 * ab[-1] * (np.trace(SIGMA) + MU @ MU)
    return prior + kls.sum() + decoder


@pytest.mark.parametrize("variance", dm.VARIANCES)
def test_variational_bound_of_the_optimal_denoiser_bounds_the_exact_nll(gaussian_setup,
                                                                        variance):
    """Continuous data, Gaussian decoder: the bound's mean matches its closed form, which is
    above the exact NLL. The gap is the cost of fixed reverse variances: beta~_t ("small") is
    right for a point mass, beta_t ("large") for data spread wider than the noise, as here."""
    s, eps_fn, _ = gaussian_setup
    n = 4000
    x0 = jax.random.multivariate_normal(jax.random.key(9), MU, SIGMA, (n,))
    labels = jnp.zeros((n,), jnp.int32)
    nll = -scipy.stats.multivariate_normal(MU, SIGMA).logpdf(np.asarray(x0, np.float64))
    bound = jax.jit(lambda k, num_terms: dm.variational_bound(
        s, eps_fn, x0, labels, k, num_terms, losses.gaussian_log_prob, variance),
        static_argnums=1)
    exact = bound(jax.random.key(10), 0)
    gap = np.asarray(exact.total, np.float64) - nll
    entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * SIGMA)[1]
    expected_gap = expected_bound(s, variance) - entropy
    assert expected_gap > 0
    assert abs(gap.mean() - expected_gap) < 4 * gap.std() / math.sqrt(n), (gap.mean(),
                                                                          expected_gap)
    assert expected_gap / 2 < (0.6 if variance == "small" else 0.12)  # nats per dimension
    assert float(exact.prior.mean()) < 1e-3
    # A stratified 16-term estimate is unbiased for the same sum.
    diff = np.asarray(bound(jax.random.key(11), 16).diffusion - exact.diffusion, np.float64)
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(n)


def random_params(net: UNet, *args) -> dict:
    """Params with every entry random (no zero-initialised layers), without compiling an init."""
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), *args))
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda a: jnp.asarray(0.2 * rng.normal(size=a.shape), a.dtype), shapes)


def test_guidance_scale_zero_is_the_unconditional_model_and_one_the_conditional():
    net = UNet(8, (1,), 1, (), 0.0, 1, num_classes=3, groups=4)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    t, labels = jnp.array([0, 3, 5, 9]), jnp.array([0, 1, 2, 1])
    params = random_params(net, x, t, labels)
    eps_fn = jax.jit(lambda x, t, y: net.apply(params, x, t, y))
    cond, uncond = eps_fn(x, t, labels), eps_fn(x, t, jnp.full_like(labels, 3))
    assert not np.allclose(cond, uncond, atol=1e-3)  # the class embedding matters
    chex.assert_trees_all_equal(dm.guided(eps_fn, 0.0, 3)(x, t, labels), uncond)
    chex.assert_trees_all_equal(dm.guided(eps_fn, 1.0, 3)(x, t, labels), cond)
    chex.assert_trees_all_close(dm.guided(eps_fn, 3.0, 3)(x, t, labels), 3.0 * cond - 2.0 * uncond,
                                atol=1e-4)


def test_label_dropout_trains_the_no_label_embedding_beside_the_class_ones():
    c = config_lib.load(os.path.join(ROOT, "configs", "ddpm_mnist.py:cond+smoke"))
    c.model.label_dropout = 0.5
    family = dm.make_family(c, base.DataSpec((28, 28, 1), 10))
    batch = {"image": jnp.zeros((8, 28, 28, 1), jnp.uint8), "label": jnp.full(8, 3, jnp.int32)}
    state = family.init(jax.random.key(0), batch)
    leaves, tree = jax.tree.flatten(state.params)  # no zero-initialised layer blocks gradients
    noise = np.random.default_rng(0)
    state = state.replace(params=jax.tree.unflatten(tree, [
        p + 0.1 * noise.standard_normal(p.shape).astype(p.dtype) for p in leaves]))
    state, _ = jax.jit(family.train_step)(state, batch, jax.random.key(1))
    # Adam's first moment of the label embedding: non-zero on the rows that had a gradient
    mu = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]
          if "Embed" in jax.tree_util.keystr(path) and ".mu" in jax.tree_util.keystr(path)]
    assert len(mu) == 1 and mu[0].shape[0] == 11
    assert set(np.flatnonzero(np.abs(np.asarray(mu[0])).sum(-1))) == {3, 10}  # class 3, no label


@pytest.mark.parametrize("mean,log_std", [(0.0, -5.0), (0.3, -1.0), (-0.9, 0.5), (0.1, -9.0)])
def test_discretized_gaussian_sums_to_one_and_matches_cdf(mean, log_std):
    x = jnp.linspace(-1.0, 1.0, 256)
    logp = losses.discretized_gaussian_log_prob(x, mean, log_std)
    chex.assert_trees_all_close(jax.nn.logsumexp(logp), 0.0, atol=1e-4)
    edges = np.concatenate([[-np.inf], (np.arange(255) + 0.5) / 127.5 - 1.0, [np.inf]])
    dist = scipy.stats.norm(mean, math.exp(log_std))
    lo, hi = edges[:-1], edges[1:]
    mass = np.where(lo < mean, dist.cdf(hi) - dist.cdf(lo), dist.sf(lo) - dist.sf(hi))
    big = mass > 1e-30
    np.testing.assert_allclose(np.asarray(logp, np.float64)[big], np.log(mass[big]),
                               rtol=2e-3, atol=2e-3)


def param_count(net: UNet, shape: tuple[int, ...], **kw) -> int:
    x, t = jnp.zeros(shape), jnp.zeros(shape[:1], jnp.int32)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), x, t, **kw))
    return sum(math.prod(v.shape) for v in jax.tree.leaves(variables))


def test_unet_of_the_ddpm_cifar10_paper_has_35_7m_params():
    net = UNet(128, (1, 2, 2, 2), 2, (16,), 0.1, 3)
    assert abs(param_count(net, (1, 32, 32, 3)) / 35.7e6 - 1.0) < 0.01


def test_unet_runs_on_28x28_and_refuses_sizes_that_do_not_halve():
    net = UNet(8, (1, 2, 2), 1, (14,), 0.1, 1, groups=4)
    x, t = jnp.zeros((2, 28, 28, 1)), jnp.zeros((2,), jnp.int32)
    out, _ = jax.eval_shape(lambda: net.init_with_output(
        {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, t, train=True))
    chex.assert_shape(out, (2, 28, 28, 1))
    with pytest.raises(UserError, match="divisible by 8"):
        jax.eval_shape(lambda: UNet(8, (1, 2, 2, 2), 1, (), 0.0, 1, groups=4).init(
            jax.random.key(0), x, t))
    with pytest.raises(UserError, match="attn_resolutions"):
        jax.eval_shape(lambda: UNet(8, (1, 2), 1, (16,), 0.0, 1, groups=4).init(
            jax.random.key(0), x, t))


@pytest.mark.parametrize("key,value,needle", [
    ("data.space", "unit", "data.space symmetric"),
    ("model.guidance_scale", 2.0, "needs model.conditional=true"),
    ("model.sample_steps", 11, "model.sample_steps=11"),
    ("model.prediction", "x0", "unknown model.prediction"),
    ("model.ch_mult", (1, 2, 2, 2), "divisible by 8"),
    ("model.norm_groups", 3, "model.norm_groups=3"),
])
def test_bad_config_is_a_user_error(key, value, needle):
    c = config_lib.load(os.path.join(ROOT, "configs", "ddpm_mnist.py:smoke"))
    section, name = key.split(".")
    c[section][name] = value
    with pytest.raises(UserError, match=needle):
        models.make(c, base.DataSpec((28, 28, 1), 10))
