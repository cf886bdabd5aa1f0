"""PixelCNNs: causality of every net, no blind spot, normalized likelihoods, exact sampler."""
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import losses, models
from jaxgen.config import base_config
from jaxgen.errors import UserError
from jaxgen.models import pixelcnn
from jaxgen.models.base import DataSpec
from jaxgen.nn import autoregressive
from jaxgen.nn.masked import causal_mask, channel_groups

# (arch, likelihood, image shape, model size)
NETS = {
    "pixelcnn_rgb": ("pixelcnn", "softmax", (5, 5, 3), dict(features=6, layers=2)),
    "gated_rgb": ("gated", "softmax", (5, 5, 3), dict(features=12, layers=3)),
    "gated_mixture": ("gated", "logistic_mixture", (5, 5, 3), dict(features=4, layers=3)),
    "gated_binary": ("gated", "bernoulli", (5, 5, 1), dict(features=4, layers=3)),
    "pixelcnnpp_rgb": ("pixelcnnpp", "logistic_mixture", (4, 4, 3), dict(features=8, layers=1)),
}
NO_BLIND_SPOT = ("gated", "pixelcnnpp")


def model_config(arch: str, likelihood: str, **size) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        family="pixelcnn", arch=arch, likelihood=likelihood, features=4, layers=1, out_hidden=12,
        num_mixtures=2, dropout=0.0, conditional=False) | size)


def make_config(arch: str, likelihood: str, space: str, **size) -> ml_collections.ConfigDict:
    c = base_config()
    c.data.space = space
    c.model = model_config(arch, likelihood, **size)
    c.eval.completions = 0
    return c


def build(name: str):
    """(apply: x [B, H, W, C] -> outputs, likelihood, image shape) of NETS[name], random init."""
    arch, likelihood, shape, size = NETS[name]
    lik = pixelcnn.Likelihood(likelihood, shape[-1], 2)
    net = pixelcnn.make_net(model_config(arch, likelihood, **size), DataSpec(shape, 0), lik)
    x = jax.random.uniform(jax.random.key(0), (1,) + shape, minval=-1.0, maxval=1.0)
    variables = jax.jit(net.init)(jax.random.key(1), x, jnp.zeros(1, jnp.int32))
    apply = jax.jit(lambda v: net.apply(variables, v, jnp.zeros(v.shape[0], jnp.int32)))
    return apply, lik, shape


def allowed_inputs(shape: tuple[int, int, int], colors: int) -> np.ndarray:
    """[H, W, colors, H, W, C]: may the outputs of group g at (i, j) depend on input (i', j', c)?"""
    h, w, c = shape
    pos = np.arange(h * w).reshape(h, w)
    earlier = pos[:, :, None, None, None, None] > pos[None, None, None, :, :, None]
    same = pos[:, :, None, None, None, None] == pos[None, None, None, :, :, None]
    groups = np.arange(colors)[None, None, :, None, None, None]
    channel = np.arange(c)[None, None, None, None, None, :] if colors > 1 else np.full(c, colors)
    return earlier | (same & (channel < groups))


def test_mask_a_and_b_centre_connections_for_rgb():
    rgb = channel_groups(3, 3)
    a = causal_mask((3, 3), (1, 1), rgb, rgb, "A")
    b = causal_mask((3, 3), (1, 1), rgb, rgb, "B")
    np.testing.assert_array_equal(a[1, 1], [[0, 1, 1], [0, 0, 1], [0, 0, 0]])  # [in, out]
    np.testing.assert_array_equal(b[1, 1], [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(a[:, :, 0, 0], [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(channel_groups(6, 3), [0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize("name", ["pixelcnn_rgb", "gated_rgb", "gated_mixture", "pixelcnnpp_rgb"])
def test_outputs_depend_only_on_earlier_pixels_and_channels(name):
    """On a few random images, so that no dependence hides behind a ReLU that is off."""
    apply, lik, shape = build(name)
    x = jax.random.uniform(jax.random.key(2), (8,) + shape, minval=-1.0, maxval=1.0)
    jac = jax.jit(jax.vmap(jax.jacfwd(lambda v: apply(v[None])[0])))(x)  # [8, H, W, F, H, W, C]
    h, w, f = jac.shape[1:4]
    groups = jac.reshape(8, h, w, lik.colors, f // lik.colors, *shape)  # contiguous groups
    depends = np.asarray(jnp.any(groups != 0, axis=(0, 4)))
    allowed = allowed_inputs(shape, lik.colors)
    assert not np.any(depends & ~allowed), "an output sees its own or a later pixel / channel"
    if NETS[name][0] in NO_BLIND_SPOT:  # the receptive field covers these images entirely
        np.testing.assert_array_equal(depends, allowed)
    elif lik.colors > 1:  # G sees R of its pixel, B sees R and G (ReLUs may cut some pixels)
        own_pixel = np.eye(h * w, dtype=bool).reshape(h, w, h, w)
        for g in range(1, lik.colors):
            assert np.all(np.any(depends[:, :, g, :, :, :g][own_pixel], axis=0))


@pytest.mark.parametrize("channels,num_bins", [(1, 256), (3, 16)])
def test_logistic_mixture_sums_to_one_with_channel_coupling(channels, num_bins):
    k = 3
    keys = jax.random.split(jax.random.key(0), 4)
    logits = jax.random.normal(keys[0], (k,))
    means = jax.random.uniform(keys[1], (channels, k), minval=-1.0, maxval=1.0)
    log_scales = jax.random.uniform(keys[2], (channels, k), minval=-3.0, maxval=0.0)
    coeffs = jax.random.uniform(keys[3], (channels * (channels - 1) // 2, k), minval=-1, maxval=1)
    levels = jnp.linspace(-1.0, 1.0, num_bins)
    x = jnp.array(list(itertools.product(levels, repeat=channels)))  # every pixel value
    log_p = jax.jit(losses.discretized_logistic_mixture_log_prob, static_argnums=5)(
        x, logits, means, log_scales, coeffs, num_bins)
    chex.assert_trees_all_close(jnp.exp(log_p).sum(), 1.0, atol=1e-4)


@pytest.mark.parametrize("arch,likelihood,space,shape", [
    ("pixelcnn", "bernoulli", "threshold", (2, 2, 1)),
    ("gated", "bernoulli", "threshold", (2, 2, 1)),
    ("gated", "softmax", "symmetric", (1, 2, 1)),
    ("pixelcnnpp", "bernoulli", "threshold", (4, 4, 1)),
])
def test_likelihood_of_every_image_sums_to_one_and_bits_per_dim_is_nll(
        arch, likelihood, space, shape):
    """sum_x p(x) = 1 over all images holds only for a causal model with normalized conditionals."""
    levels = (0, 255) if likelihood == "bernoulli" else range(256)
    images = np.array(list(itertools.product(levels, repeat=math.prod(shape))), np.uint8)
    batch = {"image": jnp.asarray(images.reshape((-1,) + shape)),
             "label": jnp.zeros(len(images), jnp.int32)}
    layers = 0 if arch == "pixelcnnpp" else 2  # pixelcnnpp has blocks at the lower scales still
    family = pixelcnn.make_family(make_config(arch, likelihood, space, features=4, layers=layers),
                                  DataSpec(shape, 10))
    state = jax.jit(family.init)(jax.random.key(0), batch)
    out = jax.jit(family.eval_step)(state, batch, jax.random.key(1))
    chex.assert_trees_all_close(jnp.exp(-out["nll"]).sum(), 1.0, atol=1e-4)
    chex.assert_trees_all_close(out["nll_bpd"], out["nll"] / (math.prod(shape) * math.log(2)))


def test_softmax_nll_is_the_sum_of_per_channel_log_softmax():
    apply, lik, shape = build("gated_rgb")
    images = jax.random.randint(jax.random.key(3), (2,) + shape, 0, 256)
    x = images / 127.5 - 1.0
    logits = np.asarray(apply(x), np.float64).reshape(x.shape + (256,))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_p, np.asarray(images)[..., None], -1).reshape(2, -1).sum(-1)
    chex.assert_trees_all_close(lik.log_prob(apply(x), x), expected.astype(np.float32), rtol=1e-5)


@pytest.mark.parametrize("name", ["gated_rgb", "pixelcnnpp_rgb", "gated_binary"])
def test_sampler_draws_what_the_model_predicts_on_its_own_sample(name):
    """One pass of the net on a finished sample, drawn with the same noise, gives the sample back;
    later noise never changes earlier pixels; the values lie on the data grid."""
    apply, lik, shape = build(name)
    h, w, c = shape
    noise = jax.random.uniform(jax.random.key(4), (2, h, w, lik.noise_size))
    fill = jax.jit(lambda x, u, start: autoregressive.sample_pixels(apply, lik, x, u, start),
                   static_argnums=2)
    x = fill(jnp.zeros((2,) + shape), noise, 0)
    chex.assert_trees_all_close(jax.jit(lik.draw)(apply(x), noise), x)
    if lik.name == "bernoulli":
        assert set(np.unique(x)) <= {0.0, 1.0}
    else:
        np.testing.assert_allclose(autoregressive.from_bins(autoregressive.to_bins(x)), x, atol=1e-6)
    t = h * w // 2
    changed = noise.reshape(2, h * w, -1).at[:, t].set(1.0 - noise.reshape(2, h * w, -1)[:, t])
    x2 = fill(jnp.zeros((2,) + shape), changed.reshape(noise.shape), 0)
    np.testing.assert_array_equal(x2.reshape(2, h * w, c)[:, :t], x.reshape(2, h * w, c)[:, :t])
    given = jnp.ones((2,) + shape)  # completion: pixels before `start` are kept
    kept = fill(given, noise, t * lik.colors)
    np.testing.assert_array_equal(kept.reshape(2, h * w, c)[:, :t], 1.0)


def test_sharded_sampling_matches_one_device_and_conditional_follows_labels():
    c = make_config("gated", "bernoulli", "binarize", features=4, layers=2, conditional=True)
    shape = (4, 4, 1)
    family = pixelcnn.make_family(c, DataSpec(shape, 10))
    assert family.conditional
    batch = {"image": jnp.zeros((8,) + shape, jnp.uint8), "label": jnp.zeros(8, jnp.int32)}
    state = jax.jit(family.init)(jax.random.key(0), batch)
    labels = jnp.arange(8, dtype=jnp.int32)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    one = jax.jit(family.sample)(state, jax.random.key(1), labels)
    many = jax.jit(family.sample, out_shardings=sharded)(
        state, jax.random.key(1), jax.device_put(labels, sharded))
    chex.assert_trees_all_close(one, many)
    assert float(one.min()) >= 0.0 and float(one.max()) <= 1.0
    nll = jax.jit(family.eval_step)
    other = dict(batch, label=jnp.ones(8, jnp.int32))
    assert not np.allclose(nll(state, batch, jax.random.key(2))["nll"],
                           nll(state, other, jax.random.key(2))["nll"])


@pytest.mark.parametrize("edit,needle", [
    (dict(arch="lstm"), "unknown model.arch"),
    (dict(likelihood="gauss"), "unknown model.likelihood"),
    (dict(arch="pixelcnnpp"), "set model.likelihood=logistic_mixture"),
    (dict(features=4), "multiple of the 3 channels"),
    (dict(conditional=True), "labelled dataset"),
])
def test_bad_model_config_is_a_user_error(edit, needle):
    c = make_config("pixelcnn", "softmax", "symmetric", features=6)
    c.model.update(edit)
    with pytest.raises(UserError, match=needle):
        models.make(c, DataSpec((8, 8, 3), 0))
    with pytest.raises(UserError, match="needs data.space"):
        models.make(make_config("pixelcnn", "bernoulli", "symmetric"), DataSpec((8, 8, 1), 0))
