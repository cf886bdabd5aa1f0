"""The networks of pix2pix (Isola et al. 2017): the U-Net generator and the PatchGAN critic.

Every convolution is 4x4; a stride-2 one halves the side (padding 1), a transposed one doubles it.
Widths double per level from `width` up to 8 x width, as in the paper (C64-C128-C256-C512-...).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError
from jaxgen.nn.conv import Conv, ConvTranspose
from jaxgen.nn.gan_layers import BatchNorm

Array = jax.Array
PAD = ((1, 1), (1, 1))


def level_width(width: int, level: int) -> int:
    return width * min(2**level, 8)


def check_unet(shape: tuple[int, ...], depth: int) -> None:
    """A U-Net of `depth` levels halves H and W `depth` times."""
    h, w = shape[:2]
    if depth < 1 or h % 2**depth or w % 2**depth:
        raise UserError(f"the U-Net halves the images model.depth times, so H and W must be "
                        f"divisible by 2**depth; the images are {h}x{w} and model.depth is "
                        f"{depth}: set model.depth between 1 and the number of times both halve")


def patch_receptive_field(layers: int) -> int:
    """The side, in pixels, of the input window each PatchGAN output sees: 4x4 convs, `layers`
    of stride 2, then two of stride 1 (70 for the paper's 3 at 256x256, 16 for 1)."""
    return 9 * 2**layers - 2


def patch_grid(side: int, layers: int) -> int:
    """The PatchGAN's output side for an input side: halved `layers` times, then 2 less."""
    return side // 2**layers - 2


class UNet(nn.Module):
    """condition [B, H, W, Cc] -> image [B, H, W, channels] in [-1, 1].

    Encoder: `depth` stride-2 convs, LeakyReLU(0.2) and BatchNorm (not on the first). Decoder:
    transposed convs back up, ReLU and BatchNorm, each output concatenated with the encoder map
    of its size (the skips), dropout on the `dropout_layers` maps nearest the bottleneck, and a
    tanh output. Dropout is the generator's only noise, on in training and sampling alike (the
    paper's test-time dropout), from the 'dropout' rng; BatchNorm uses the batch's statistics.
    """

    width: int
    depth: int
    channels: int
    dropout: float = 0.5
    dropout_layers: int = 3

    @nn.compact
    def __call__(self, x: Array) -> Array:
        skips = []
        for level in range(self.depth):
            x = Conv(level_width(self.width, level), (4, 4), (2, 2), PAD)(
                nn.leaky_relu(x, 0.2) if level else x)
            x = BatchNorm()(x) if level else x
            skips.append(x)
        for i, level in enumerate(reversed(range(self.depth - 1))):
            x = BatchNorm()(ConvTranspose(level_width(self.width, level), (4, 4), (2, 2))(
                nn.relu(x)))
            if i < self.dropout_layers and self.dropout:
                x = nn.Dropout(self.dropout, deterministic=False)(x)
            x = jnp.concatenate([x, skips[level]], axis=-1)
        return jnp.tanh(ConvTranspose(self.channels, (4, 4), (2, 2))(nn.relu(x)))


class PatchGAN(nn.Module):
    """(condition [B, H, W, Cc], image [B, H, W, C]) -> logits [B, h, w], one per patch of
    `patch_receptive_field(layers)` pixels: `layers` stride-2 convs, one stride-1 conv (each
    with LeakyReLU(0.2)) and a stride-1 conv to one channel. Without the paper's BatchNorm, as
    this repository's other critics: each score then depends on its own patch alone."""

    width: int
    layers: int

    @nn.compact
    def __call__(self, condition: Array, image: Array) -> Array:
        x = jnp.concatenate([condition, image], axis=-1)
        for level in range(self.layers + 1):
            stride = 2 if level < self.layers else 1
            x = nn.leaky_relu(Conv(level_width(self.width, level), (4, 4), stride, PAD)(x), 0.2)
        return Conv(1, (4, 4), padding=PAD)(x)[..., 0]
