"""PixelCNN++ (Salimans et al. 2017): shifted convolutions instead of masks, two streams.

A down-shifted conv (kernel kh x kw, padded kh - 1 rows on top and (kw - 1) / 2 columns each side)
sees the rows up to its own; a down-right-shifted one (padded kh - 1 on top, kw - 1 on the left)
sees the rows above and its row up to its own column. The u stream (down-shifted, so it sees the
rows above) and the ul stream (down-right, the rows above and the pixels on the left) start one
row / column shifted, so no output sees its own pixel. Three scales with stride-2 convs down and
transposed convs up, gated resnet blocks (concat_elu, dropout, gate a * sigmoid(b)),
and shortcut connections from every up-pass block to its mirror in the down pass.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.conv import Conv, ConvTranspose
from jaxgen.nn.masked import down_shift, label_bias

Array = jax.Array


def right_shift(x: Array) -> Array:
    """Moves every column one right (a zero column on the left)."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def concat_elu(x: Array) -> Array:
    return nn.elu(jnp.concatenate([x, -x], axis=-1))


class ShiftedConv(nn.Module):
    """A down-shifted (right=False) or down-right-shifted conv, optionally of stride 2."""

    features: int
    kernel_size: tuple[int, int]
    right: bool
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kh, kw = self.kernel_size
        cols = (kw - 1, 0) if self.right else ((kw - 1) // 2, (kw - 1) // 2)
        x = jnp.pad(x, ((0, 0), (kh - 1, 0), cols, (0, 0)))
        return Conv(self.features, self.kernel_size, strides=self.stride, padding="VALID")(x)


class ShiftedDeconv(nn.Module):
    """Stride-2 transposed conv, cropped to twice the size so that it stays (down-right) shifted."""

    features: int
    kernel_size: tuple[int, int]
    right: bool

    @nn.compact
    def __call__(self, x: Array) -> Array:
        _, h, w, _ = x.shape
        y = ConvTranspose(self.features, self.kernel_size, strides=(2, 2), padding="VALID")(x)
        left = 0 if self.right else (self.kernel_size[1] - 1) // 2
        return y[:, :2 * h, left:left + 2 * w]


def stream_conv(features: int, right: bool, stride: int = 1) -> ShiftedConv:
    """The u stream's 2x3 conv or the ul stream's 2x2 conv."""
    return ShiftedConv(features, (2, 2) if right else (2, 3), right, stride)


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), (a, b) = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(aux)))),
    with a class bias on (a, b) when conditional."""

    right: bool
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, x: Array, aux: Array | None, labels: Array, train: bool) -> Array:
        f = x.shape[-1]
        c = stream_conv(f, self.right)(concat_elu(x))
        if aux is not None:
            c = c + nn.Dense(f)(concat_elu(aux))
        c = nn.Dropout(self.dropout, deterministic=not train)(concat_elu(c))
        c = stream_conv(2 * f, self.right)(c) + label_bias(labels, self.num_classes, 2 * f)
        a, b = jnp.split(c, 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


class PixelCNNPP(nn.Module):
    """The PixelCNN++ network: `resnets` blocks per scale up, `resnets` (+1 below the top scale)
    down, `features` channels everywhere, a 1x1 conv of elu(ul) to the outputs. H and W must be
    multiples of 4."""

    features: int
    resnets: int
    num_outputs: int
    num_classes: int = 0
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Array, labels: Array, train: bool = False) -> Array:
        f = self.features

        def block(right: bool, x: Array, aux: Array | None) -> Array:
            return GatedResnet(right, self.num_classes, self.dropout)(x, aux, labels, train)

        x = jnp.concatenate([x, jnp.ones_like(x[..., :1])], -1)  # marks the image inside padding
        us = [down_shift(ShiftedConv(f, (2, 3), False)(x))]
        uls = [down_shift(ShiftedConv(f, (1, 3), False)(x))
               + right_shift(ShiftedConv(f, (2, 1), True)(x))]
        for scale in range(3):
            for _ in range(self.resnets):
                us.append(block(False, us[-1], None))
                uls.append(block(True, uls[-1], us[-1]))
            if scale < 2:
                us.append(stream_conv(f, False, stride=2)(us[-1]))
                uls.append(stream_conv(f, True, stride=2)(uls[-1]))
        u, ul = us.pop(), uls.pop()
        for scale in range(3):
            for _ in range(self.resnets + (scale > 0)):
                u = block(False, u, us.pop())
                ul = block(True, ul, jnp.concatenate([u, uls.pop()], -1))
            if scale < 2:
                u = ShiftedDeconv(f, (2, 3), False)(u)
                ul = ShiftedDeconv(f, (2, 2), True)(ul)
        return nn.Dense(self.num_outputs)(nn.elu(ul))
