"""The classifier's in-step augmentation: bounded shifts, mirror flips, identity when off."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.classifier import augment


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
