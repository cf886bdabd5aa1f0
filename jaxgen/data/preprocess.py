"""Model spaces: how uint8 pixels become model inputs, inside the jitted step.

Preprocessing runs on the device so the input pipeline only moves uint8 batches, and its
randomness (dynamic binarization, dequantization noise, augmentation) comes from the step's
JAX key.
"""
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

Array = jax.Array

SPACES = ("unit", "symmetric", "binarize", "threshold", "dequantize")


def check_space(space: str) -> None:
    """Raises a UserError for an unknown model-space name."""
    if space not in SPACES:
        raise UserError(f"unknown data.space {space!r}; choose one of {', '.join(SPACES)}")


def to_model_space(images: Array, space: str, rng: Array | None = None) -> Array:
    """uint8 [B, H, W, C] -> float32 in the model space `space`.

    unit: x/255 in [0, 1]; symmetric: [-1, 1]; binarize: dynamic Bernoulli(x/255) draws in {0, 1};
    threshold: static x > 127; dequantize: (x + u)/256 with u ~ U[0, 1), a density on [0, 1].
    """
    x = images.astype(jnp.float32)
    if space == "unit":
        return x / 255.0
    if space == "symmetric":
        return x / 127.5 - 1.0
    if space == "threshold":
        return (x > 127.5).astype(jnp.float32)
    if space == "binarize":
        return jax.random.bernoulli(_need(rng, space), x / 255.0).astype(jnp.float32)
    if space == "dequantize":
        return (x + jax.random.uniform(_need(rng, space), x.shape)) / 256.0
    check_space(space)
    raise AssertionError("unreachable")


def to_unit(x: Array, space: str) -> Array:
    """Model-space values -> [0, 1] floats for pictures and sample metrics."""
    if space == "symmetric":
        x = (x + 1.0) / 2.0
    return jnp.clip(x, 0.0, 1.0)


def pad_to(images: Array, side: int) -> Array:
    """Images [B, H, W, C] zero-padded (black, for uint8) to [B, side, side, C], centred: MNIST's
    28x28 as 32x32 for a model whose side is a power of two."""
    h, w = images.shape[1:3]
    return jnp.pad(images, ((0, 0), ((side - h) // 2, side - h - (side - h) // 2),
                            ((side - w) // 2, side - w - (side - w) // 2), (0, 0)))


def crop_to(images: Array, height: int, width: int) -> Array:
    """The inverse of pad_to: the centred [B, height, width, C] of images [B, H, W, C]."""
    top, left = (images.shape[1] - height) // 2, (images.shape[2] - width) // 2
    return images[:, top:top + height, left:left + width]


def _need(rng: Array | None, space: str) -> Array:
    if rng is None:
        raise ValueError(f"data space {space!r} is random and needs an rng")
    return rng


def augment(rng: Array, x: Array, crop_pad: int, flip: bool) -> Array:
    """Per-example random translation by up to crop_pad pixels (zero padding) and, with flip,
    random horizontal flips. x [B, H, W, C]."""
    b, h, w, c = x.shape
    crop_rng, flip_rng = jax.random.split(rng)
    if crop_pad:
        padded = jnp.pad(x, ((0, 0), (crop_pad, crop_pad), (crop_pad, crop_pad), (0, 0)))
        offsets = jax.random.randint(crop_rng, (b, 2), 0, 2 * crop_pad + 1)
        x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(
            padded, offsets)
    if flip:
        x = jnp.where(jax.random.bernoulli(flip_rng, 0.5, (b, 1, 1, 1)), x[:, :, ::-1], x)
    return x
