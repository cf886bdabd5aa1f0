"""StyleGAN2's networks (Karras et al. 2020): the mapping network, the skip-connection synthesis
network with modulated and demodulated convolutions and per-pixel noise, and the residual
discriminator with a minibatch-stddev layer.

Every weight has an equalised learning rate (Karras et al. 2018): it is stored N(0, 1 / lr_mul^2)
and used times lr_mul / sqrt(fan_in) (biases stored / lr_mul and used times lr_mul), so Adam,
which moves every stored weight by about the learning rate, moves every used weight in proportion
to its own scale: lr x lr_mul / sqrt(fan_in). Resampling is 2x with the [1, 3, 3, 1] filter
(bilinear); leaky ReLUs (0.2) are scaled by sqrt(2) to keep unit variance.

Latents: z [B, Z] -> w [B, W] (mapping) -> ws [B, L, W], one style per layer of the synthesis
network (`num_ws`: a conv takes ws[:, i], each toRGB the style of the conv after it).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxgen.nn.conv import canonical_conv, strided_conv, transposed_conv
from jaxgen.nn.gan_layers import minibatch_stddev

Array = jax.Array
FIR = (0.125, 0.375, 0.375, 0.125)  # [1, 3, 3, 1] / 8 per axis: the 2-D filter sums to 1


def lrelu(x: Array) -> Array:
    """Leaky ReLU (0.2) with StyleGAN's gain sqrt(2)."""
    return nn.leaky_relu(x, 0.2) * math.sqrt(2.0)


def blur(x: Array, pad: tuple[int, int]) -> Array:
    """x [B, H, W, C] zero-padded by (before, after) on both image axes and filtered by FIR along
    each: [B, H + before + after - 3, ...]."""
    x = jnp.pad(x, ((0, 0), pad, pad, (0, 0)))
    for axis in (1, 2):
        n = x.shape[axis] - len(FIR) + 1
        x = sum(f * lax.slice_in_dim(x, i, i + n, axis=axis) for i, f in enumerate(FIR))
    return x


def upsample_2x(x: Array) -> Array:
    """[B, H, W, C] -> [B, 2H, 2W, C]: zeros between the pixels, then the filter (gain 4)."""
    b, h, w, c = x.shape
    zero = jnp.zeros_like(x)
    spread = jnp.stack([jnp.stack([x, zero], 3), jnp.stack([zero, zero], 3)], 2)
    return 4.0 * blur(spread.reshape(b, 2 * h, 2 * w, c), (2, 1))


def downsample_2x(x: Array) -> Array:
    """[B, H, W, C] -> [B, H / 2, W / 2, C]: the filter, then every other pixel."""
    return blur(x, (1, 1))[:, ::2, ::2]


def conv(x: Array, kernel: Array) -> Array:
    """A 'same'-size stride-1 convolution, x [B, H, W, I] by kernel [k, k, I, O] (k odd): a
    matmul for 1x1, else `canonical_conv`, whose gradients stay fast inside lax.cond (the lazy
    regularisers' steps)."""
    k = kernel.shape[0]
    if k == 1:
        return x @ kernel[0, 0]
    return canonical_conv(x, kernel, [(k // 2, k // 2)] * 2)


def modulated_conv(x: Array, kernel: Array, styles: Array, demodulate: bool = True,
                   up: bool = False) -> Array:
    """Each sample's convolution by its own kernel: `kernel` [k, k, I, O] scaled by its styles
    [B, I] along the input channels and, demodulating, each output channel's kernel divided by
    its L2 norm (eq. 1 and 3 of the paper). x [B, H, W, I] -> [B, H', W', O] ('same' size, or
    2x with up: a stride-2 transposed conv then the filter). Computed as one shared-kernel
    convolution of x x styles whose outputs are scaled by the demodulation: the same numbers
    without per-sample kernels."""
    y = x * styles[:, None, None, :]
    k = kernel.shape[0]
    if up:
        y = 4.0 * blur(transposed_conv(y, kernel, 2, [(k - 1, k - 1)] * 2), (1, 1))
    else:
        y = conv(y, kernel)
    if demodulate:  # sum over k, k, I of (kernel x style)^2, per sample and output channel
        norms = jnp.square(styles) @ jnp.sum(jnp.square(kernel), axis=(0, 1))
        y = y * lax.rsqrt(norms + 1e-8)[:, None, None, :]
    return y


def mix_styles(w1: Array, w2: Array, crossover: Array, num_layers: int) -> Array:
    """Style mixing: ws [B, num_layers, W] taking w1 [B, W] at the layers below each sample's
    crossover [B] and w2 from it on."""
    below = jnp.arange(num_layers)[None, :, None] < crossover[:, None, None]
    return jnp.where(below, w1[:, None], w2[:, None])


def truncate(w: Array, w_avg: Array, psi: float | Array) -> Array:
    """The truncation trick in W: w_avg + psi (w - w_avg); psi 0 gives the mean w."""
    return w_avg + psi * (w - w_avg)


def num_ws(resolution: int) -> int:
    """The styles the synthesis network of a resolution takes: 8 at 32x32."""
    return 2 * int(math.log2(resolution)) - 2


class EqDense(nn.Module):
    """A dense layer with an equalised learning rate (lr_mul: the mapping network's 0.01)."""

    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    activate: bool = False  # lrelu

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul),
                            (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul),
                          (self.features,))
        y = x @ (kernel * (self.lr_mul / math.sqrt(x.shape[-1]))) + bias * self.lr_mul
        return lrelu(y) if self.activate else y


class EqConv(nn.Module):
    """The discriminator's convolution, equalised; `down`: the filter, then stride 2."""

    features: int
    kernel_size: int = 3
    down: bool = False
    use_bias: bool = True
    activate: bool = True  # lrelu
    gain: float = 1.0  # on the output (sqrt(1/2) on each branch of a residual block)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, x.shape[-1],
                                                                     self.features))
        kernel = kernel / math.sqrt(k * k * x.shape[-1])
        if self.down and k == 1:
            y = conv(downsample_2x(x), kernel)
        elif self.down:
            y = strided_conv(blur(x, (2, 2)), kernel, 2)
        else:
            y = conv(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return (lrelu(y) if self.activate else y) * self.gain


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 conv (2x up with `up`), per-pixel noise with a learned
    strength (0 at init), bias, lrelu. Noise comes from the 'noise' rng stream."""

    features: int
    up: bool = False

    @nn.compact
    def __call__(self, x: Array, w: Array) -> Array:
        styles = EqDense(x.shape[-1], bias_init=1.0, name="affine")(w)
        kernel = self.param("kernel", nn.initializers.normal(1.0),
                            (3, 3, x.shape[-1], self.features))
        x = modulated_conv(x, kernel, styles, demodulate=True, up=self.up)
        noise = jax.random.normal(self.make_rng("noise"), x.shape[:3] + (1,), x.dtype)
        x = x + self.param("noise_strength", nn.initializers.zeros, ()) * noise
        return lrelu(x + self.param("bias", nn.initializers.zeros, (self.features,)))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to the image channels, not demodulated (its weight equalised), bias."""

    channels: int

    @nn.compact
    def __call__(self, x: Array, w: Array) -> Array:
        styles = EqDense(x.shape[-1], bias_init=1.0, name="affine")(w) / math.sqrt(x.shape[-1])
        kernel = self.param("kernel", nn.initializers.normal(1.0),
                            (1, 1, x.shape[-1], self.channels))
        x = modulated_conv(x, kernel, styles, demodulate=False)
        return x + self.param("bias", nn.initializers.zeros, (self.channels,))


class Mapping(nn.Module):
    """z [B, Z] normalised to unit second moment -> `layers` equalised dense layers (lrelu) of
    w_dim at learning-rate multiplier lr_mul -> w [B, w_dim]."""

    w_dim: int
    layers: int
    lr_mul: float

    @nn.compact
    def __call__(self, z: Array) -> Array:
        x = z * lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
        for _ in range(self.layers):
            x = EqDense(self.w_dim, self.lr_mul, activate=True)(x)
        return x


class Synthesis(nn.Module):
    """ws [B, num_ws(resolution), W] -> images [B, resolution, resolution, channels], about
    [-1, 1]: a learned constant 4x4 input, then per resolution (4x4: one conv; above: a 2x-up
    conv and a conv) a toRGB whose output is added to the upsampled image so far (the skip
    generator). `width` channels at every resolution (config F has 512 up to 64x64)."""

    resolution: int
    width: int
    channels: int

    @nn.compact
    def __call__(self, ws: Array) -> Array:
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, self.width))
        x = SynthesisLayer(self.width)(jnp.broadcast_to(const, (ws.shape[0],) + const.shape),
                                       ws[:, 0])
        image = ToRGB(self.channels)(x, ws[:, 1])
        for i in range(1, num_ws(self.resolution) - 1, 2):
            x = SynthesisLayer(self.width, up=True)(x, ws[:, i])
            x = SynthesisLayer(self.width)(x, ws[:, i + 1])
            image = upsample_2x(image) + ToRGB(self.channels)(x, ws[:, i + 2])
        return image


class Discriminator(nn.Module):
    """images [B, R, R, C] -> scores [B] (logits): fromRGB, residual blocks (two 3x3 convs, the
    second down; a 1x1 down-conv shortcut; sum times sqrt(1/2)) down to 4x4, then the minibatch
    stddev over groups of `mbstd_group`, a 3x3 conv, a dense layer and the score."""

    width: int
    mbstd_group: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        half = math.sqrt(0.5)
        x = EqConv(self.width, 1)(x)
        while x.shape[1] > 4:
            shortcut = EqConv(self.width, 1, down=True, use_bias=False, activate=False,
                              gain=half)(x)
            x = EqConv(self.width, 3)(x)
            x = EqConv(self.width, 3, down=True, gain=half)(x) + shortcut
        x = minibatch_stddev(x, min(self.mbstd_group, x.shape[0]))
        x = EqConv(self.width, 3)(x)
        x = EqDense(self.width, activate=True)(x.reshape(x.shape[0], -1))
        return EqDense(1)(x)[:, 0]
