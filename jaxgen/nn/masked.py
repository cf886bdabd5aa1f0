"""Masked convolutions in raster order: PixelCNN (van den Oord et al. 2016a, "Pixel Recurrent
Neural Networks") and Gated PixelCNN (van den Oord et al. 2016b, "Conditional Image Generation
with PixelCNN Decoders").

The outputs at pixel (i, j) may depend on the pixels above it and on its left. With `colors` > 1
every layer's features are split into `colors` contiguous groups (R, G, B, ...); at the centre
pixel a mask-A connection goes from group g to the groups after g only, a mask-B connection to g
and after, so the outputs for G see R of the current pixel and those for B see R and G.
`colors` = 1 treats a pixel as a whole (mask A hides the centre pixel entirely), as a likelihood
over whole pixels, such as the coupled logistic mixture, needs.

Every network maps (x [B, H, W, C], labels int32 [B], train) -> features [B, H, W, num_outputs],
the outputs in `colors` contiguous groups; labels are read when num_classes > 0. The gated one
also takes a map `cond` [B, H, W, F] known in full (VQ-VAE-2's lower prior reads the codes above
it so): two unmasked 3x3 convs read it, and every gate adds it through a 1x1 conv, so each output
sees it at least in a 5x5 window around its own position, later positions included.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.nn.conv import Conv

Array = jax.Array


def channel_groups(n: int, colors: int) -> np.ndarray:
    """The color group of each of n features: `colors` contiguous blocks."""
    return np.arange(n) * colors // n


def causal_mask(kernel_size: tuple[int, int], center: tuple[int, int], in_groups: np.ndarray,
                out_groups: np.ndarray, mask_type: str) -> np.ndarray:
    """[kh, kw, in, out] 0/1 kernel mask: the taps before `center` in raster order, and at the
    centre the connections between color groups that `mask_type` ('A' or 'B') allows."""
    kh, kw = kernel_size
    rows, cols = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    before = (rows < center[0]) | ((rows == center[0]) & (cols < center[1]))
    mask = np.broadcast_to(before[:, :, None, None], (kh, kw, len(in_groups), len(out_groups)))
    mask = mask.astype(np.float32)
    diff = out_groups[None, :] - in_groups[:, None]
    mask[center] = (diff > 0) if mask_type == "A" else (diff >= 0)
    return mask


class MaskedConv(nn.Module):
    """A convolution whose kernel is masked by `causal_mask`; 'SAME' padding centres the kernel."""

    features: int
    kernel_size: tuple[int, int]
    mask_type: str  # 'A' or 'B'
    colors: int
    padding: str | tuple = "SAME"
    center: tuple[int, int] | None = None  # default: the middle of the kernel

    @nn.compact
    def __call__(self, x: Array) -> Array:
        center = self.center or (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        mask = causal_mask(self.kernel_size, center, channel_groups(x.shape[-1], self.colors),
                           channel_groups(self.features, self.colors), self.mask_type)
        return Conv(self.features, self.kernel_size, padding=self.padding, mask=mask)(x)


def label_bias(labels: Array, num_classes: int, features: int) -> Array | float:
    """A learned per-class vector [B, 1, 1, features] to add to a layer (0 when unconditional)."""
    if not num_classes:
        return 0.0
    return nn.Embed(num_classes, features)(labels)[:, None, None, :]


def output_head(h: Array, hidden: int, num_outputs: int, colors: int) -> Array:
    """ReLU, masked 1x1 conv, ReLU, masked 1x1 conv to the outputs (inside a compact module)."""
    h = MaskedConv(hidden, (1, 1), "B", colors)(nn.relu(h))
    return MaskedConv(num_outputs, (1, 1), "B", colors)(nn.relu(h))


class PixelCNN(nn.Module):
    """7x7 mask-A conv to 2h features, residual blocks (ReLU, 1x1 to h, ReLU, 3x3 mask B, ReLU,
    1x1 to 2h; van den Oord et al. 2016a Fig. 5), two 1x1 output layers."""

    features: int  # h
    blocks: int
    out_hidden: int
    num_outputs: int
    colors: int
    num_classes: int = 0
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: Array, labels: Array, train: bool = False) -> Array:
        f, colors = self.features, self.colors
        h = MaskedConv(2 * f, (7, 7), "A", colors)(x)
        for _ in range(self.blocks):
            y = MaskedConv(f, (1, 1), "B", colors)(nn.relu(h))
            y = nn.relu(y + label_bias(labels, self.num_classes, f))
            y = nn.relu(MaskedConv(f, (3, 3), "B", colors)(y))
            y = nn.Dropout(self.dropout, deterministic=not train)(y)
            h = h + MaskedConv(2 * f, (1, 1), "B", colors)(y)
        return output_head(h, self.out_hidden, self.num_outputs, colors)


def down_shift(x: Array) -> Array:
    """Moves every row one down (a zero row on top): row i then holds row i - 1."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def gate(x: Array, colors: int) -> Array:
    """tanh(a) * sigmoid(b), a and b the two halves of each color group: [..., 2n] -> [..., n]."""
    grouped = x.reshape(x.shape[:-1] + (colors, 2, x.shape[-1] // (2 * colors)))
    out = jnp.tanh(grouped[..., 0, :]) * jax.nn.sigmoid(grouped[..., 1, :])
    return out.reshape(x.shape[:-1] + (-1,))


class GatedLayer(nn.Module):
    """One layer of both stacks. The vertical stack sees the rows up to its own (an r+1 x k
    conv, r = k // 2) and reaches the horizontal one only shifted one row down, so the horizontal
    stack (a 1 x r+1 conv over its row up to its own pixel) sees no later pixel and has no blind
    spot. Gated units, class bias in every gate, a residual 1x1 on the horizontal stack."""

    features: int  # p
    kernel: int
    first: bool  # mask A on the horizontal stack, no residual
    colors: int
    num_classes: int
    dropout: float

    @nn.compact
    def __call__(self, v: Array, h: Array, labels: Array, train: bool,
                 cond: Array | None = None) -> tuple[Array, Array]:
        p, r = self.features, self.kernel // 2
        v_pre = Conv(2 * p, (r + 1, self.kernel), padding=((r, 0), (r, r)))(v)
        h_pre = MaskedConv(2 * p, (1, r + 1), "A" if self.first else "B", self.colors,
                           padding=((0, 0), (r, 0)), center=(0, r))(h)
        h_pre = h_pre + Conv(2 * p, (1, 1))(down_shift(v_pre))
        bias = label_bias(labels, self.num_classes, 4 * p)
        if cond is not None:
            bias = bias + Conv(4 * p, (1, 1))(cond)
        if self.num_classes or cond is not None:
            v_pre, h_pre = v_pre + bias[..., :2 * p], h_pre + bias[..., 2 * p:]
        gated = nn.Dropout(self.dropout, deterministic=not train)(gate(h_pre, self.colors))
        h_out = MaskedConv(p, (1, 1), "B", self.colors)(gated)
        return gate(v_pre, 1), h_out if self.first else h + h_out


class GatedPixelCNN(nn.Module):
    """`layers` gated layers (the first with a `first_kernel` receptive field), two 1x1 output
    layers on the horizontal stack."""

    features: int  # p, a multiple of colors
    layers: int
    out_hidden: int
    num_outputs: int
    colors: int
    num_classes: int = 0
    dropout: float = 0.0
    first_kernel: int = 7
    kernel: int = 3

    @nn.compact
    def __call__(self, x: Array, labels: Array, train: bool = False,
                 cond: Array | None = None) -> Array:
        v = h = x
        if cond is not None:  # known in full: unmasked convs may look ahead
            for _ in range(2):
                cond = nn.relu(Conv(self.features, (3, 3))(cond))
        for i in range(self.layers):
            v, h = GatedLayer(self.features, self.first_kernel if i == 0 else self.kernel, i == 0,
                              self.colors, self.num_classes, self.dropout)(v, h, labels, train,
                                                                           cond)
        return output_head(h, self.out_hidden, self.num_outputs, self.colors)
