"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): random colour, translation and
cutout applied to every image the discriminator sees, real and fake alike, and differentiable
in the image, so that G learns through them. Images are NHWC in [-1, 1]; each image gets its
own random parameters.

- color: brightness + U(-0.5, 0.5); saturation x U(0, 2) around each pixel's channel mean;
  contrast x U(0.5, 1.5) around the image mean;
- translation: a shift of up to 1/8 of the side on each axis, zeros filling in;
- cutout: a square of half the side, at a random centre, set to zero.
"""
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

Array = jax.Array
POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> (); a UserError for other names."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise UserError(f"unknown augmentation {', '.join(unknown)} in model.augment "
                        f"{policy!r}: use a comma-separated list of {', '.join(POLICIES)}, "
                        f"or '' for none")
    return names


def _color(rng: Array, x: Array) -> Array:
    b = x.shape[0]
    k1, k2, k3 = jax.random.split(rng, 3)
    x = x + jax.random.uniform(k1, (b, 1, 1, 1)) - 0.5
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * jax.random.uniform(k2, (b, 1, 1, 1), maxval=2.0) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * jax.random.uniform(k3, (b, 1, 1, 1), minval=0.5, maxval=1.5) + mean


def _translation(rng: Array, x: Array, ratio: float = 0.125) -> Array:
    b, h, w, c = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))
    starts = jax.random.randint(rng, (b, 2), 0, jnp.array([2 * sh + 1, 2 * sw + 1]))
    return jax.vmap(lambda im, s: jax.lax.dynamic_slice(im, (s[0], s[1], 0), (h, w, c)))(
        padded, starts)


def _cutout(rng: Array, x: Array, ratio: float = 0.5) -> Array:
    b, h, w, _ = x.shape
    size = (int(h * ratio + 0.5), int(w * ratio + 0.5))
    centres = jax.random.randint(rng, (b, 2), 0, jnp.array([h + 1 - size[0] % 2,
                                                            w + 1 - size[1] % 2]))
    inside = []
    for axis, n in enumerate((h, w)):
        first = centres[:, axis, None] - size[axis] // 2
        pos = jnp.arange(n)[None]
        inside.append((pos >= first) & (pos < first + size[axis]))  # [B, n]
    hole = inside[0][:, :, None] & inside[1][:, None, :]
    return jnp.where(hole[..., None], 0.0, x)


_AUGMENT = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(rng: Array, x: Array, policy: tuple[str, ...]) -> Array:
    """x [B, H, W, C] through each augmentation of `policy`, in order."""
    for name, key in zip(policy, jax.random.split(rng, max(len(policy), 1))):
        x = _AUGMENT[name](key, x)
    return x
