"""Normalizing flows: invertibility, exact log-dets, actnorm init, LU conv, identity bits/dim."""
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxgen import config as config_lib
from jaxgen.data.preprocess import to_model_space
from jaxgen.models import base, flows as flow_models
from jaxgen.nn import flows as fl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {
    "additive0": (fl.AdditiveCoupling(8, 1, 0), (1, 8)),
    "additive1": (fl.AdditiveCoupling(8, 1, 1), (1, 8)),
    "diag_scale": (fl.DiagScale(), (1, 8)),
    "checker_tanh": (fl.AffineCoupling("checkerboard", 0, 4), (1, 4, 4, 2)),
    "checker_sigmoid": (fl.AffineCoupling("checkerboard", 1, 4, "sigmoid"), (1, 4, 4, 2)),
    "channel0": (fl.AffineCoupling("channel", 0, 4), (1, 4, 4, 2)),
    "channel1_sigmoid": (fl.AffineCoupling("channel", 1, 4, "sigmoid"), (1, 4, 4, 2)),
    "squeeze": (fl.Squeeze(), (1, 4, 4, 2)),
    "actnorm": (fl.ActNorm(), (1, 4, 4, 2)),
    "invconv": (fl.InvConv1x1(), (1, 4, 4, 2)),
    "invconv_lu": (fl.InvConv1x1(lu=True), (1, 4, 4, 2)),
}


def perturbed(variables: dict, rng: jax.Array, scale: float = 0.3) -> dict:
    """Adds noise to every param, so zero-initialised layers are not the identity."""
    leaves, tree = jax.tree.flatten(variables.get("params", {}))
    keys = jax.random.split(rng, len(leaves))
    noisy = [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, noisy)}


def jac_logdet(f, x: jax.Array) -> jax.Array:
    """log|det df/dx| of a map on one example, by the dense Jacobian."""
    flat = lambda v: f(v.reshape(x.shape)).reshape(-1)
    return jnp.linalg.slogdet(jax.jacfwd(flat)(x.reshape(-1)))[1]


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_inverts_and_logdet_matches_jacobian(name):
    layer, shape = LAYERS[name]
    x = jax.random.normal(jax.random.key(0), shape)
    init_x = jax.random.normal(jax.random.key(2), (8,) + shape[1:])
    variables = perturbed(layer.init(jax.random.key(1), init_x), jax.random.key(3))
    y, logdet = layer.apply(variables, x)
    back, inv_logdet = layer.apply(variables, y, reverse=True)
    chex.assert_trees_all_close(back, x, atol=1e-5)
    chex.assert_shape(logdet, (1,))
    chex.assert_trees_all_close(logdet[0], jac_logdet(lambda v: layer.apply(variables, v)[0], x),
                                atol=1e-4)
    chex.assert_trees_all_close(inv_logdet, -logdet, atol=1e-4)


def test_actnorm_data_dependent_init_standardizes_its_batch():
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (16, 4, 4, 3)) * jnp.arange(1, 4)
    y, _ = fl.ActNorm().init_with_output(jax.random.key(1), x)[0]
    chex.assert_trees_all_close(y.mean((0, 1, 2)), jnp.zeros(3), atol=1e-5)
    chex.assert_trees_all_close(y.std((0, 1, 2)), jnp.ones(3), atol=1e-4)


def test_lu_invconv_agrees_with_plain_on_the_same_weight():
    w = scipy.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0].astype(np.float32)
    p, l, u = scipy.linalg.lu(w)
    x = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
    lu_vars = {"params": {"lower": l, "upper": u, "log_s": np.log(np.abs(np.diag(u)))},
               "constants": {"perm": p, "sign": np.sign(np.diag(u))}}
    y_lu, ld_lu = fl.InvConv1x1(lu=True).apply(lu_vars, x)
    y, ld = fl.InvConv1x1().apply({"params": {"kernel": w}}, x)
    chex.assert_trees_all_close(y_lu, y, atol=1e-5)
    chex.assert_trees_all_close(ld_lu, ld, atol=1e-5)


def smoke_model(flow: str) -> config_lib.ConfigDict:
    return config_lib.load(os.path.join(ROOT, "configs", f"{flow}_mnist.py:smoke")).model


def make_net(flow: str, shape: tuple[int, int, int]) -> flow_models.FlowNet:
    m = smoke_model(flow)
    return flow_models.FlowNet(m.flow, m.levels, m.steps, m.hidden, m.mlp_layers, m.lu, m.actnorm,
                               tuple(flow_models.latent_shapes(m.flow, m.levels, shape)))


@pytest.mark.parametrize("flow", flow_models.FLOWS)
def test_whole_smoke_model_inverts(flow):
    net = make_net(flow, (28, 28, 1))
    x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
    variables = perturbed(net.init(jax.random.key(1), x, method=net.encode), jax.random.key(2),
                          0.05)
    eps, _, _ = net.apply(variables, x, method=net.encode)
    back = net.apply(variables, eps, method=net.decode)
    chex.assert_trees_all_close(back.reshape(x.shape), x, atol=1e-4)


def test_temperature_scales_every_latent_including_the_learned_prior_ones():
    net = make_net("glow", (8, 8, 1))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    variables = perturbed(net.init(jax.random.key(1), x, method=net.encode), jax.random.key(2),
                          0.05)
    eps, _, _ = net.apply(variables, x, method=net.encode)
    decode = lambda e, t: net.apply(variables, e, t, method=net.decode)
    chex.assert_trees_all_close(decode(eps, 0.5), decode([0.5 * e for e in eps], 1.0), atol=1e-5)
    assert not np.allclose(decode(eps, 0.5), decode(eps, 1.0), atol=1e-3)
    # at temperature 0 every level takes its prior's mean: the latents no longer matter
    chex.assert_trees_all_close(decode(eps, 0.0), decode([-e for e in eps], 0.0), atol=1e-6)


@pytest.mark.parametrize("flow", flow_models.FLOWS)
def test_whole_model_logdet_matches_jacobian(flow):
    """log p(z) + log-det = log N(eps) + log|det d eps/dx|, with the learned split prior too."""
    net = make_net(flow, (4, 4, 1))
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 1))
    init_x = jax.random.normal(jax.random.key(2), (8, 4, 4, 1))
    variables = perturbed(net.init(jax.random.key(1), init_x, method=net.encode),
                          jax.random.key(3), 0.2)
    encode = lambda v: net.apply(variables, v, method=net.encode)
    eps, logdet, log_prior = encode(x)
    flat_eps = lambda v: jnp.concatenate([e.reshape(-1) for e in encode(v)[0]])
    normal = sum(jnp.sum(-0.5 * e ** 2 - 0.5 * math.log(2 * math.pi)) for e in eps)
    chex.assert_trees_all_close(log_prior[0] + logdet[0], normal + jac_logdet(flat_eps, x),
                                atol=1e-3)


def glow_identity(params: dict) -> dict:
    """Glow's smoke params set to the identity up to a channel permutation, which leaves a
    standard normal unchanged: actnorm 0, LU weight = its permutation, couplings' shift 0 and
    sigmoid scale saturated at 1 (sigmoid(40 + 2) is 1 in float32)."""
    def one(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['bias']") and "Conv_2" in name:
            return leaf.at[leaf.shape[0] // 2:].set(40.0)
        return leaf if "priors" in name or "Conv_" in name else jnp.zeros_like(leaf)
    return jax.tree_util.tree_map_with_path(one, params)


@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow"])
def test_identity_flow_gives_base_bits_per_dim_under_preprocessing(flow):
    c = config_lib.load(os.path.join(ROOT, "configs", f"{flow}_mnist.py:smoke"))
    c.model.actnorm = False  # zero-initialised couplings and scaling: the identity at init
    family = flow_models.make_family(c, base.DataSpec((4, 4, 1), 10))
    images = jax.random.randint(jax.random.key(0), (3, 4, 4, 1), 0, 256).astype(jnp.uint8)
    state = family.init(jax.random.key(1), {"image": images})
    if flow == "glow":
        state = state.replace(params=glow_identity(state.params))
    got = family.eval_step(state, {"image": images}, jax.random.key(2))["nll_bpd"]
    y = np.asarray(to_model_space(images, "dequantize", jax.random.key(2)), np.float64)
    if flow == "realnvp":
        a = c.model.logit_alpha
        p = a + (1 - 2 * a) * y
        z, log_jac = np.log(p / (1 - p)), np.log((1 - 2 * a) / (p * (1 - p)))
    else:
        z, log_jac = y - (0.5 if flow == "glow" else 0.0), np.zeros_like(y)
    log_py = (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi) + log_jac).reshape(3, -1).sum(-1)
    expected = (-log_py + 16 * np.log(256)) / (16 * np.log(2))
    chex.assert_trees_all_close(got, expected.astype(np.float32), atol=1e-4)


def test_a_step_with_non_finite_values_is_skipped_not_applied():
    c = config_lib.load(os.path.join(ROOT, "configs", "glow_mnist.py:smoke"))
    family = flow_models.make_family(c, base.DataSpec((8, 8, 1), 10))
    batch = {"image": jax.random.randint(jax.random.key(0), (4, 8, 8, 1), 0, 256).astype(jnp.uint8)}
    state = family.init(jax.random.key(1), batch)
    step = jax.jit(family.train_step)
    new, metrics = step(state, batch, jax.random.key(2))
    assert float(metrics["skipped"]) == 0.0
    changed = lambda a, b: not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                                          jax.tree.leaves(b)))
    assert changed(new.opt_state, state.opt_state)  # the params wait for the lr warm-up
    broken = state.replace(params=jax.tree.map(lambda w: w.at[(0,) * w.ndim].set(jnp.nan),
                                               state.params))
    new, metrics = step(broken, batch, jax.random.key(2))
    assert float(metrics["skipped"]) == 1.0 and int(new.step) == 1
    assert all(float(v) == 0.0 for k, v in metrics.items() if k != "skipped")  # nothing to log
    chex.assert_trees_all_equal(jax.device_get((new.params, new.opt_state)),
                                jax.device_get((broken.params, broken.opt_state)))
