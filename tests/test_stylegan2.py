"""StyleGAN2: modulated convolutions, equalised learning rates, style mixing, truncation, the
path lengths and the lazy regularisers, on networks of 8x8 images."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import config as config_lib, losses, models, presets
from jaxgen.data.preprocess import crop_to
from jaxgen.errors import UserError
from jaxgen.models import base, stylegan2
from jaxgen.nn import diffaugment
from jaxgen.nn.conv import NHWC
from jaxgen.nn.stylegan2 import (EqConv, EqDense, Synthesis, blur, mix_styles,
                                 modulated_conv, num_ws)

SPEC = base.DataSpec((8, 8, 1), 10)
K_R1, K_PL, GAMMA, LR = 2, 3, 1.0, 0.1


def tiny_config(**model):
    """The smoke config shrunk to 8x8 images, batches of 4, R1 every 2 steps, PL every 3."""
    c = presets.stylegan2_config("digits", "smoke")
    c.model.update({**dict(z_dim=4, w_dim=4, mapping_layers=1, g_width=4, d_width=4,
                           mbstd_group=2, r1_every=K_R1, pl_every=K_PL, r1_gamma=GAMMA),
                    **model})
    c.train.batch_size = c.eval.batch_size = 4
    return c


def fake_batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.integers(0, 256, (n,) + SPEC.shape), jnp.uint8),
            "label": jnp.zeros(n, jnp.int32)}


def per_sample_conv(x, kernel, styles, demodulate, up):
    """The definition: each sample convolved by its own kernel, scaled and normalised."""
    out = []
    for xb, sb in zip(x, styles):
        k = kernel * sb[None, None, :, None]
        if demodulate:
            k = k / jnp.sqrt(jnp.sum(k * k, axis=(0, 1, 2)) + 1e-8)
        if up:
            y = 4.0 * blur(jax.lax.conv_transpose(xb[None], k, (2, 2), "VALID",
                                                  dimension_numbers=NHWC), (1, 1))
        else:
            y = jax.lax.conv_general_dilated(xb[None], k, (1, 1), "SAME",
                                             dimension_numbers=NHWC)
        out.append(y[0])
    return jnp.stack(out)


@pytest.mark.parametrize("demodulate, up", [(True, False), (True, True), (False, False)])
def test_modulated_conv_is_the_per_sample_scaled_kernel_conv(demodulate, up):
    kx, kk, ks = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 5, 5, 4))
    kernel = jax.random.normal(kk, (3, 3, 4, 6))
    styles = jax.random.normal(ks, (3, 4))
    got = modulated_conv(x, kernel, styles, demodulate, up)
    chex.assert_shape(got, (3, 10 if up else 5, 10 if up else 5, 6))
    np.testing.assert_allclose(got, per_sample_conv(x, kernel, styles, demodulate, up),
                               rtol=1e-4, atol=1e-5)


def test_demodulated_conv_keeps_unit_variance_at_init():
    kx, kk, kw, ka = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(kx, (2, 16, 16, 64))
    affine = EqDense(64, bias_init=1.0)  # the styles as SynthesisLayer makes them at init
    w = jax.random.normal(kw, (2, 32))
    styles = affine.apply(affine.init(ka, w), w)
    y = modulated_conv(x, jax.random.normal(kk, (3, 3, 64, 64)), styles)[:, 1:-1, 1:-1]
    assert abs(float(jnp.var(y)) - 1.0) < 0.05  # the zero-padded border left out


def test_equalised_learning_rate_scales_weights_and_their_adam_steps():
    lr_mul, fan_in, step = 0.01, 64, 0.1
    kx, ky, kp = jax.random.split(jax.random.key(2), 3)
    x, y = jax.random.normal(kx, (8, fan_in)), jax.random.normal(ky, (8, 32))
    layer = EqDense(32, lr_mul=lr_mul, bias_init=0.5)
    params = layer.init(kp, x)
    stored = params["params"]
    assert abs(float(jnp.std(stored["kernel"])) * lr_mul - 1.0) < 0.05  # N(0, 1 / lr_mul^2)
    np.testing.assert_allclose(stored["bias"], 0.5 / lr_mul)

    def used(p):  # the weights the layer multiplies by
        return {"kernel": p["params"]["kernel"] * lr_mul / math.sqrt(fan_in),
                "bias": p["params"]["bias"] * lr_mul}

    np.testing.assert_allclose(layer.apply(params, x),
                               x @ used(params)["kernel"] + used(params)["bias"], rtol=1e-5)
    # Adam's first step moves each stored weight by the learning rate (eps 0: exactly), so each
    # used one by the learning rate times its scale.
    opt = optax.adam(step, eps=0.0)
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, x) * y))(params)
    new = optax.apply_updates(params, opt.update(grads, opt.init(params))[0])
    moved = jax.tree.map(lambda a, b: jnp.abs(a - b), used(new), used(params))
    np.testing.assert_allclose(moved["kernel"], step * lr_mul / math.sqrt(fan_in), rtol=1e-3)
    np.testing.assert_allclose(moved["bias"], step * lr_mul, rtol=1e-3)
    conv = EqConv(6, 3, activate=False)  # a conv's scale is 1 / sqrt(k k in)
    images = jax.random.normal(kx, (2, 5, 5, 4))
    p = conv.init(kp, images)
    expected = jax.lax.conv_general_dilated(images, p["params"]["kernel"] / math.sqrt(36),
                                            (1, 1), "SAME", dimension_numbers=NHWC)
    np.testing.assert_allclose(conv.apply(p, images), expected, rtol=1e-4, atol=1e-6)


def test_style_mixing_takes_w1_below_the_crossover_and_w2_from_it():
    w1, w2 = jnp.ones((3, 2)), 2 * jnp.ones((3, 2))
    ws = mix_styles(w1, w2, jnp.array([0, 2, 4]), 4)
    np.testing.assert_array_equal(ws[..., 0], [[2, 2, 2, 2], [1, 1, 2, 2], [1, 1, 1, 1]])


def test_the_synthesis_network_reads_each_of_its_styles():
    net = Synthesis(8, 4, 1)
    ws = jax.random.normal(jax.random.key(3), (2, num_ws(8), 5))
    rngs = {"params": jax.random.key(4), "noise": jax.random.key(5)}
    params = net.init(rngs, ws)
    image = jax.jit(lambda v: net.apply(params, v, rngs={"noise": jax.random.key(5)}))
    chex.assert_shape(image(ws), (2, 8, 8, 1))
    for i in range(num_ws(8)):
        assert not np.allclose(image(ws.at[:, i].add(1.0)), image(ws)), i


def test_path_lengths_are_the_norms_of_j_transposed_y():
    net = Synthesis(8, 4, 1)
    kw, ky, kp = jax.random.split(jax.random.key(6), 3)
    ws = jax.random.normal(kw, (3, num_ws(8), 5))
    y = jax.random.normal(ky, (3, 8, 8, 1))
    params = net.init({"params": kp, "noise": kp}, ws)
    params = jax.tree_util.tree_map_with_path(  # noise on: each example's own draw is fixed
        lambda path, p: p + 0.3 if path[-1].key == "noise_strength" else p, params)
    generate = lambda v: net.apply(params, v, rngs={"noise": kp})
    lengths = jax.jit(lambda v: losses.path_lengths(generate, v, y))(ws)
    jac = jax.jit(jax.jacrev(generate))(ws)  # [3, 8, 8, 1, 3, L, W]: image i by every style
    for i in range(3):
        jty = jnp.einsum("hwc,hwclk->lk", y[i], jac[i, :, :, :, i])
        np.testing.assert_allclose(lengths[i], jnp.sqrt(jnp.mean(jnp.sum(jty**2, -1))),
                                   rtol=1e-4)


def test_truncation_at_psi_0_gives_the_mean_w_image_for_every_z():
    c = tiny_config(truncation_psi=0.0)
    fam = stylegan2.make_family(c, SPEC)
    state = jax.jit(fam.init)(jax.random.key(0), fake_batch())
    w_avg = jax.random.normal(jax.random.key(1), (4,))
    state = state.replace(model_state=dict(state.model_state, w_avg=w_avg))
    images = jax.jit(fam.sample)(state, jax.random.key(2), jnp.zeros(5, jnp.int32))
    _, synthesis, _ = stylegan2.networks(c.model, 8, 1)
    mean_image = synthesis.apply(state.ema_params["g"]["synthesis"],
                                 jnp.broadcast_to(w_avg, (1, num_ws(8), 4)),
                                 rngs={"noise": jax.random.key(3)})
    for image in images:  # the noise strengths are 0 at init: noise changes nothing yet
        np.testing.assert_allclose(image, jnp.clip((mean_image[0] + 1) / 2, 0, 1), atol=1e-6)


def test_mnist_digits_train_padded_with_black_and_samples_are_cropped_back():
    white = jnp.full((2, 28, 28, 1), 255, jnp.uint8)
    x = stylegan2.real_images(white, 32)
    chex.assert_shape(x, (2, 32, 32, 1))
    np.testing.assert_array_equal(x[:, 2:30, 2:30], 1.0)
    assert float(jnp.sum(x)) == 2 * (28 * 28 - (32 * 32 - 28 * 28))  # the border is -1
    np.testing.assert_array_equal(crop_to(x, 28, 28), 1.0)


@pytest.fixture(scope="module")
def lazy_run():
    """Four SGD steps of the tiny model from an init whose mapping sends every z to w = 0, so
    that G's first images are the same for any z (and, the noise strengths being 0 at init,
    any noise): D's first update is then a function of the states alone."""
    c = tiny_config()
    for optim in (c.optim, c.optim_d):
        optim.update(name="sgd", b1=0.0, learning_rate=LR)
    fam = stylegan2.make_family(c, SPEC)
    batch = fake_batch()
    state = jax.jit(fam.init)(jax.random.key(0), batch)
    g = state.params["g"]
    g["mapping"] = jax.tree.map(jnp.zeros_like, g["mapping"])
    states, metrics = [state.replace(params=dict(state.params, g=g))], []
    step = jax.jit(fam.train_step)
    for i in range(4):
        new, m = step(states[-1], batch, jax.random.key(10 + i))
        states.append(new)
        metrics.append({k: float(v) for k, v in m.items()})
    return c, batch, states, metrics


def test_lazy_regularisers_run_on_their_steps_only(lazy_run):
    _, _, _, metrics = lazy_run
    assert [m["r1"] > 0 for m in metrics] == [i % K_R1 == 0 for i in range(4)]
    assert [m["pl_length"] > 0 for m in metrics] == [i % K_PL == 0 for i in range(4)]
    assert all(m["skipped"] == 0 for m in metrics)


def test_r1_is_weighted_by_its_interval_and_the_lazy_learning_rate(lazy_run):
    c, batch, states, _ = lazy_run
    mapping, synthesis, critic = stylegan2.networks(c.model, 8, 1)
    d, g = states[0].params["d"], states[0].params["g"]
    real = batch["image"] / 127.5 - 1.0
    w = mapping.apply(g["mapping"], jnp.ones((4, 4)))
    fake = synthesis.apply(g["synthesis"], jnp.repeat(w[:, None], num_ws(8), 1),
                           rngs={"noise": jax.random.key(0)})

    def objective(d):
        loss = losses.gan_d_loss(critic.apply(d, real), critic.apply(d, fake), "nonsaturating")
        grads = jax.grad(lambda x: jnp.sum(critic.apply(d, x)))(real)
        return loss + K_R1 * GAMMA / 2 * jnp.mean(jnp.sum(grads**2, axis=(1, 2, 3)))

    lr = LR * K_R1 / (K_R1 + 1)  # Adam's (here SGD's) rate adjusted for the lazy R1
    expected = jax.tree.map(lambda p, gr: p - lr * gr, d, jax.jit(jax.grad(objective))(d))
    chex.assert_trees_all_close(states[1].params["d"], expected, rtol=1e-4, atol=1e-6)


def test_the_path_length_mean_moves_by_its_decay_on_regularised_steps(lazy_run):
    _, _, states, metrics = lazy_run
    expected = 0.0
    for i, m in enumerate(metrics):
        if i % K_PL == 0:
            expected += stylegan2.PL_DECAY * (m["pl_length"] - expected)
        assert float(states[i + 1].model_state["pl_mean"]) == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def test_diff_augment_is_random_per_image_and_differentiable():
    x = jnp.tanh(jax.random.normal(jax.random.key(7), (6, 8, 8, 3)))
    policy = diffaugment.parse_policy("color,translation,cutout")
    augment = jax.jit(diffaugment.diff_augment, static_argnums=2)
    out = augment(jax.random.key(8), x, policy)
    chex.assert_shape(out, x.shape)
    assert not np.allclose(out[0] - x[0], out[1] - x[1])
    cut = augment(jax.random.key(8), x, ("cutout",))
    holes = np.mean(np.asarray(cut) == 0, axis=(1, 2, 3))  # 4x4 of 8x8, clipped at the border
    assert np.all((holes > 0) & (holes <= 0.25)) and np.any(holes == 0.25), holes
    grads = jax.jit(jax.grad(lambda v: jnp.sum(augment(jax.random.key(8), v, policy))))(x)
    assert float(jnp.abs(grads).sum()) > 0


@pytest.mark.parametrize("change, message", [
    ({"model.resolution": 24}, "power-of-two side"),
    ({"model.resolution": 4}, "at least 8"),
    ({"model.mbstd_group": 3}, r"model.mbstd_group \(3\) must divide train.batch_size \(4\)"),
    ({"model.r1_every": 0}, "model.r1_every must be at least 1"),
    ({"model.pl_weight": -1.0}, "0 \\(off\\) or more"),
    ({"model.style_mixing": 1.5}, "probability"),
    ({"model.augment": "color,blur"}, "unknown augmentation blur"),
    ({"optim.ema_decay": 0.999}, "set --config.optim.ema_decay=0"),
    ({"data.space": "unit"}, "data.space=symmetric"),
])
def test_bad_stylegan2_configs_are_refused_with_what_to_do(change, message):
    c = tiny_config()
    for key, value in change.items():
        config_lib.override(c, key, str(value))
    with pytest.raises(UserError, match=message):
        models.make(c, SPEC)
