"""The classifier: in-step augmentation (bounded shifts, mirror flips, identity when off), the
frozen patch-whitening layer, pooling placement, and SGD's weight decay."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgen.models.base import make_optimizer
from jaxgen.models.classifier import CNN, augment, whitening_filters


def _dots(n: int) -> jnp.ndarray:
    x = np.zeros((n, 9, 9, 1), np.float32)
    x[:, 4, 2] = 1.0  # one bright pixel, left of centre
    return jnp.asarray(x)


def test_augment_off_is_identity():
    x = _dots(4)
    np.testing.assert_array_equal(augment(jax.random.key(0), x, 0, False), x)


def test_crops_shift_by_at_most_the_padding_and_vary_per_example():
    out = np.asarray(augment(jax.random.key(1), _dots(64), 2, False))
    ys, xs = np.unravel_index(out[..., 0].reshape(64, -1).argmax(1), (9, 9))
    assert np.all(out.reshape(64, -1).sum(1) == 1.0)  # the dot never leaves a 9x9 image here
    assert np.all(np.abs(ys - 4) <= 2) and np.all(np.abs(xs - 2) <= 2)
    assert len(set(zip(ys, xs))) > 10


def test_flip_mirrors_about_half_the_batch():
    out = np.asarray(augment(jax.random.key(2), _dots(200), 0, True))
    xs = out[..., 0].reshape(200, -1).argmax(1) % 9
    assert set(xs) == {2, 6} and 60 < np.sum(xs == 6) < 140


def _correlated_images(n: int, key: int = 0) -> jnp.ndarray:
    """Smooth random images with unequal channel scales, so the raw patches are far from white."""
    noise = jax.random.normal(jax.random.key(key), (n, 12, 12, 3))
    smooth = (noise + jnp.roll(noise, 1, 1) + jnp.roll(noise, 1, 2)) / 3.0
    return 0.5 + smooth * jnp.array([0.3, 0.1, 0.05])


def test_whitening_filters_give_white_patches_and_their_negatives():
    x = _correlated_images(64)
    kernel, mean = whitening_filters(x, 2, eps=0.0)
    assert kernel.shape == (2, 2, 3, 24) and mean.shape == (12,)
    out = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    out = out.reshape(-1, 24) - mean @ kernel.reshape(12, 24)
    np.testing.assert_allclose(jnp.cov(out[:, :12].T, bias=True), np.eye(12), atol=2e-3)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], atol=1e-6)


def test_whitening_is_frozen_from_the_init_batch_and_centred_by_its_bias():
    net = CNN((8,), 1, 16, 10, 0.0, pool_first=True, whiten=2)
    x = _correlated_images(16, key=1)
    variables = net.init(jax.random.key(0), x, train=False)
    kernel, mean = variables["batch_stats"]["whitening"]
    np.testing.assert_allclose(kernel, whitening_filters(x, 2)[0], atol=1e-6)
    np.testing.assert_allclose(variables["params"]["whitening_bias"],
                               -mean @ kernel.reshape(12, 24), atol=1e-6)
    other = _correlated_images(16, key=2)  # applying on other images keeps the filters
    _, updates = net.apply(variables, other, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(updates["batch_stats"]["whitening"][0], kernel)


def test_pool_first_runs_the_later_convs_at_the_lower_resolution():
    x = jnp.zeros((2, 16, 16, 3))
    for pool_first, second_conv_input in ((True, 8), (False, 16)):
        net = CNN((4,), 2, 8, 10, 0.0, pool_first=pool_first)
        _, state = net.apply(net.init(jax.random.key(0), x, train=False), x, train=False,
                             capture_intermediates=True, mutable=["intermediates"])
        conv1 = state["intermediates"]["Conv_1"]["__call__"][0]
        assert conv1.shape[1] == second_conv_input


def test_sgd_weight_decay_shrinks_params_without_gradient():
    optim = ml_collections.ConfigDict(dict(
        name="sgd", learning_rate=0.1, b1=0.9, b2=0.999, weight_decay=0.01, schedule="constant",
        warmup_steps=0, decay_steps=0, grad_clip=0.0, ema_decay=0.0))
    opt = make_optimizer(optim)
    params = {"w": jnp.ones(3)}
    updates, _ = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
    # Nesterov's first step moves by lr * (1 + momentum) * weight_decay * w
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], 1 - 0.1 * 1.9 * 0.01,
                               rtol=1e-6)
