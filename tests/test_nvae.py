"""NVAE: the residual-normal KL, warm-up and balancing, power iteration, top-down causality,
cell shapes, skipped non-finite steps, the KL maps, the flow cells and the config checks."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import losses
from jaxgen.errors import UserError
from jaxgen.models import base, nvae
from jaxgen.nn import nvae as nvae_nn
from jaxgen.presets import family_config

TINY = dict(ch=4, latent_ch=2, groups=(1,), cells=1, pre_blocks=0, expand=2, readjust_batches=1)


def tiny_family(**model) -> base.Family:
    c = family_config("nvae", "mnist", **dict(TINY, **model))
    c.eval.update(iwae_samples=2, iwae_chunk=1)
    return nvae.make_family(c, base.DataSpec((8, 8, 1), 10))


def test_residual_normal_kl_is_the_gaussian_kl_and_its_monte_carlo_estimate():
    k = jax.random.split(jax.random.key(0), 4)
    mean_p, log_std_p = jax.random.normal(k[0], (3,)), 0.5 * jax.random.normal(k[1], (3,))
    d_mean, d_log_std = jax.random.normal(k[2], (3,)), 0.3 * jax.random.normal(k[3], (3,))
    kl = losses.residual_normal_kl(d_mean, d_log_std, log_std_p)
    closed = losses.gaussian_kl(mean_p + d_mean, log_std_p + d_log_std, mean_p, log_std_p)
    chex.assert_trees_all_close(kl, closed, atol=1e-5)
    z = mean_p + d_mean + jnp.exp(log_std_p + d_log_std) * jax.random.normal(
        jax.random.key(1), (200_000, 3))
    mc = (losses.gaussian_log_prob(z, mean_p + d_mean, log_std_p + d_log_std)
          - losses.gaussian_log_prob(z, mean_p, log_std_p)).mean(0)
    chex.assert_trees_all_close(mc, kl, atol=0.03)


def test_kl_warmup_is_linear_from_its_minimum_to_one():
    got = [float(nvae.kl_warmup(s, 1000, 0.3, 1e-4)) for s in (0, 150, 300, 900)]
    chex.assert_trees_all_close(got, [1e-4, 0.5, 1.0, 1.0], atol=1e-6)
    assert float(nvae.kl_warmup(0, 1000, 0.0, 1e-4)) == 1.0


def test_kl_balance_follows_its_formula_and_keeps_equal_kls_total():
    kl = jnp.asarray([[1.0, 4.0, 2.0], [3.0, 0.0, 2.0]])
    sizes = jnp.asarray([10.0, 40.0, 5.0])
    c = (kl.mean(0) + nvae.KL_BALANCE_EPS) / sizes
    chex.assert_trees_all_close(nvae.kl_balance(kl, sizes), 3 * c / c.sum(), atol=1e-6)
    equal = jnp.full((4, 3), 2.5)  # any sizes: the coefficients sum to the number of groups
    chex.assert_trees_all_close(equal @ nvae.kl_balance(equal, sizes), equal.sum(-1), rtol=1e-6)


def test_power_iteration_converges_to_the_largest_singular_value():
    w = jax.random.normal(jax.random.key(0), (12, 20))
    sigma, _ = nvae_nn.power_iteration(w, jnp.ones(12), 100)
    chex.assert_trees_all_close(sigma, np.linalg.svd(np.asarray(w), compute_uv=False)[0],
                                rtol=1e-4)
    # Across steps the carried vectors refine the estimate of every conv kernel (padded, batched).
    params = {"a": {"kernel": w.reshape(2, 2, 5, 12)}, "b": {"Conv_0": {"kernel": w[:5, :9]
                                                                       .reshape(3, 3, 1, 5)}}}
    vectors = nvae_nn.init_spectral_vectors(params, jax.random.key(1), iters=0)
    step = jax.jit(nvae_nn.spectral_penalty)
    for _ in range(60):
        total, vectors = step(params, vectors)
    expected = sum(np.linalg.svd(np.asarray(k).reshape(-1, k.shape[-1]), compute_uv=False)[0]
                   for k in (params["a"]["kernel"], params["b"]["Conv_0"]["kernel"]))
    chex.assert_trees_all_close(total, expected, rtol=1e-3)


def test_each_groups_prior_depends_only_on_the_groups_before_it():
    net = nvae_nn.NVAENet(4, 2, (1, 2), 1, 0, 1, 2, 1, (4, 4))
    shapes = nvae_nn.latent_shapes((8, 8, 1), (1, 2), 0, 2)
    eps = [jax.random.normal(jax.random.key(i), (2,) + s) for i, s in enumerate(shapes)]
    init = jax.jit(lambda eps: net.init(jax.random.key(9), eps, None, False,
                                        method=nvae_nn.NVAENet.decode))  # the prior path only
    v = init(eps)
    leaves, tree = jax.tree.flatten(v["params"])  # lift the near-zero prior convs
    keys = jax.random.split(jax.random.key(3), len(leaves))
    v = {**v, "params": jax.tree.unflatten(tree, [p + 0.3 * jax.random.normal(k, p.shape)
                                                  for p, k in zip(leaves, keys)])}

    def priors(eps):
        _, groups = net.apply(v, eps, None, False, method=nvae_nn.NVAENet.decode)
        return jnp.stack([jnp.sum(g.prior_mean ** 2 + g.prior_log_std ** 2) for g in groups])

    jac = jax.jit(jax.jacrev(priors))(eps)  # jac[k][j]: d prior_j / d eps_k
    for j in range(3):
        for k in range(3):
            norm = float(jnp.abs(jac[k][j]).sum())
            assert (norm > 1e-6) == (k < j), (j, k, norm)


def test_cells_keep_or_resample_their_shapes_and_depthwise_is_a_grouped_conv():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
    for module, shape in ((nvae_nn.SqueezeExcite(), (2, 8, 8, 6)),
                          (nvae_nn.DepthwiseConv(5), (2, 8, 8, 6)),
                          (nvae_nn.EncoderCell(6), (2, 8, 8, 6)),
                          (nvae_nn.EncoderCell(12, True), (2, 4, 4, 12)),
                          (nvae_nn.GenerativeCell(6, 3), (2, 8, 8, 6)),
                          (nvae_nn.GenerativeCell(3, 3, True), (2, 16, 16, 3))):
        args = (x,) if isinstance(module, (nvae_nn.SqueezeExcite, nvae_nn.DepthwiseConv)) \
            else (x, False)
        out, _ = jax.eval_shape(lambda: module.init_with_output(jax.random.key(1), *args))
        chex.assert_shape(out, shape)
    dw = nvae_nn.DepthwiseConv(5)
    v = dw.init(jax.random.key(2), x)
    grouped = nn.Conv(6, (5, 5), feature_group_count=6)
    chex.assert_trees_all_close(dw.apply(v, x), grouped.apply(v, x), atol=1e-5)


def test_a_step_with_non_finite_values_is_skipped_and_keeps_the_state():
    family = tiny_family()
    batch = {"image": jax.random.randint(jax.random.key(0), (4, 8, 8, 1), 0, 256)
             .astype(jnp.uint8), "label": jnp.zeros(4, jnp.int32)}
    state = jax.jit(family.init)(jax.random.key(1), batch)
    step = jax.jit(family.train_step)
    new, metrics = step(state, batch, jax.random.key(2))
    assert float(metrics["skipped"]) == 0.0 and np.isfinite(float(metrics["loss"]))
    broken = state.replace(params=jax.tree.map(lambda w: w.at[(0,) * w.ndim].set(jnp.nan),
                                               state.params))
    new, metrics = step(broken, batch, jax.random.key(2))
    assert float(metrics["skipped"]) == 1.0 and int(new.step) == 1
    chex.assert_trees_all_equal(jax.device_get((new.params, new.opt_state, new.model_state)),
                                jax.device_get((broken.params, broken.opt_state,
                                                broken.model_state)))


def test_bn_readjustment_estimates_the_decoders_stats_or_keeps_the_training_ones():
    family = tiny_family(groups=(2,))  # two groups: a generative cell (with batch norm) between
    batch = {"image": jax.random.randint(jax.random.key(0), (4, 8, 8, 1), 0, 256)
             .astype(jnp.uint8), "label": jnp.zeros(4, jnp.int32)}
    state = jax.jit(family.init)(jax.random.key(1), batch)
    trained = jax.device_get(state.model_state["batch_stats"])

    def per_temperature(st):
        return [jax.tree.map(lambda a: a[i], st.model_state["sample_stats"])
                for i in range(len(nvae.TEMPERATURES) + 1)]

    readjusted = family.finalize(state)
    for stats in per_temperature(readjusted):
        assert stats.keys() == trained.keys() and any(k.startswith("dec") for k in stats)
        for name in stats:  # the decoder's re-estimated, finite; the encoder's kept
            same = jax.tree.leaves(jax.tree.map(np.array_equal, stats[name], trained[name]))
            assert not any(same) if name.startswith("dec") else all(same), name
            assert all(np.isfinite(a).all() for a in jax.tree.leaves(stats[name]))
    images = family.sample(readjusted, jax.random.key(3), jnp.zeros(6, jnp.int32))
    assert np.isfinite(np.asarray(images)).all()
    # A decoder that overflows (one NaN weight) gives non-finite statistics: the trained ones stay.
    broken = state.replace(ema_params=jax.tree.map(lambda w: w.at[(0,) * w.ndim].set(jnp.nan),
                                                   base.eval_params(state)))
    for stats in per_temperature(family.finalize(broken)):
        chex.assert_trees_all_equal(stats, trained)


def test_kl_maps_place_each_groups_kl_over_the_pixels_it_covers():
    rng = jax.random.split(jax.random.key(0), 5)
    coarse = nvae_nn.Group(*(jax.random.normal(k, (3, 2, 2, 5)) for k in rng))
    fine = nvae_nn.Group(*(jax.random.normal(k, (3, 4, 4, 5)) for k in rng))
    silent = fine.replace(d_mean=jnp.zeros_like(fine.d_mean),
                          d_log_std=jnp.zeros_like(fine.d_log_std))  # q = p: no information
    maps = nvae.kl_maps([coarse, fine, silent], 8, 8)
    chex.assert_shape(maps, (3, 8, 8))
    np.testing.assert_allclose(maps[2], 0.0, atol=1e-6)
    kls = jnp.mean(nvae.group_kls([coarse, fine, silent]), 0)
    for g, f in enumerate((4, 2, 2)):  # pixels per latent position along each axis
        np.testing.assert_allclose(jnp.sum(maps[g]) / f**2, kls[g], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(maps[g], jnp.kron(maps[g][::f, ::f], jnp.ones((f, f))))


@pytest.mark.parametrize("flip", [False, True])
def test_a_flow_cell_is_autoregressive_with_a_unit_diagonal(flip):
    z = jax.random.normal(jax.random.key(0), (1, 3, 3, 2))
    context = jax.random.normal(jax.random.key(1), (1, 3, 3, 4))
    cell = nvae_nn.FlowCell(4, flip)
    v = cell.init(jax.random.key(2), z, context)
    jac = jax.jacobian(lambda a: cell.apply(v, a, context))(z).reshape(18, 18)
    order = np.repeat(np.arange(9), 2)  # each coordinate's latent position in raster order
    order = order[::-1] if flip else order
    moved = np.abs(np.asarray(jac) - np.eye(18)) > 1e-7
    before = order[None, :] < order[:, None]  # [out, in]: the input's position comes first
    assert moved.any() and not (moved & ~before).any()
    np.testing.assert_allclose(np.linalg.slogdet(np.asarray(jac)), (1.0, 0.0), atol=1e-5)


def test_with_flow_cells_the_posterior_density_stays_normalised():
    """E_q[p(z) / q(z)] = 1 for the prior p = N(0, I) when log q is right: the residual normal's
    density at the draw the two flow cells moved (by ~0.8 on average) into z."""
    n = 20_000
    k = jax.random.split(jax.random.key(0), 4)
    context = jnp.broadcast_to(jax.random.normal(k[0], (1, 2, 2, 3)), (n, 2, 2, 3))
    mean, log_std = 0.3, float(np.log(1.2))
    z = z_base = mean + np.exp(log_std) * jax.random.normal(k[1], (n, 2, 2, 1))
    for flip, key in zip((False, True), k[2:]):
        cell = nvae_nn.FlowCell(8, flip)
        v = jax.tree.map(lambda p: 3.0 * p, cell.init(key, z_base[:1], context[:1]))
        z = cell.apply(v, z, context)
    zero = jnp.zeros_like(z)
    group = nvae_nn.Group(z, zero, zero, zero + mean, zero + log_std, z_base)

    def ratio(g):  # p(z) / q(z) for each sample, and its standard error over the samples
        w = np.asarray(jnp.exp(-losses.sum_except_batch(nvae.kl_terms(g))))
        return w.mean(), w.std() / np.sqrt(n)

    mean_w, err = ratio(group)
    assert abs(mean_w - 1.0) < 3 * err < 0.1, (mean_w, err)
    mean_w, err = ratio(group.replace(z_base=z))  # the density at z itself: not normalised
    assert abs(mean_w - 1.0) > 10 * err, (mean_w, err)


def test_a_net_with_flow_cells_trains_and_evaluates_finite():
    family = tiny_family(flows=2)
    batch = {"image": jax.random.randint(jax.random.key(0), (4, 8, 8, 1), 0, 256)
             .astype(jnp.uint8), "label": jnp.zeros(4, jnp.int32)}
    state = jax.jit(family.init)(jax.random.key(1), batch)
    assert any("flow_cells" in name for name in state.params)
    state, metrics = jax.jit(family.train_step)(state, batch, jax.random.key(2))
    assert float(metrics["skipped"]) == 0.0 and np.isfinite(float(metrics["loss"]))
    out = jax.jit(family.eval_step)(state, batch, jax.random.key(3))
    assert all(np.isfinite(np.asarray(a)).all() for a in out.values())


@pytest.mark.parametrize("edit, needle", [
    (dict(groups=()), "one count of at least 1"),
    (dict(pre_blocks=3, groups=(1, 1)), "multiples of 16"),
    (dict(kl_warmup=1.5), "fraction of train.steps"),
    (dict(flows=-1), "flow cells per group"),
])
def test_bad_model_config_is_a_user_error(edit, needle):
    with pytest.raises(UserError, match=needle):
        tiny_family(**edit)


def test_an_iwae_chunk_that_does_not_divide_the_samples_is_a_user_error():
    c = family_config("nvae", "mnist", **TINY)
    c.eval.update(iwae_samples=10, iwae_chunk=3)
    with pytest.raises(UserError, match="must divide"):
        nvae.make_family(c, base.DataSpec((8, 8, 1), 10))
