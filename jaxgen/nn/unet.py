"""The U-Net of DDPM (Ho et al. 2020, Appendix B): wide ResNet blocks with GroupNorm and swish, a
sinusoidal timestep embedding through an MLP added in every block, single-head self-attention at
chosen resolutions, and an optional class embedding for classifier-free guidance.

Initialisation follows the paper's code: Xavier-uniform ("fan_avg") kernels, and zero kernels on
the last conv of each residual branch, the attention output and the output conv, so every block
starts as the identity.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError
from jaxgen.nn.conv import Conv
from jaxgen.nn.encoders import upsample

Array = jax.Array

default_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
zeros = nn.initializers.zeros


def timestep_embedding(t: Array, dim: int, max_period: float = 10_000.0) -> Array:
    """Sinusoidal embedding of timesteps [B] -> [B, dim]: sin and cos at geometric frequencies
    from 1 down to 1 / max_period (Vaswani et al. 2017, as in DDPM)."""
    if dim % 2 or dim < 4:
        raise UserError(f"the timestep embedding needs an even width >= 4, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / (half - 1))
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def check_unet(shape: tuple[int, int, int], ch: int, ch_mult: tuple[int, ...],
               attn_resolutions: tuple[int, ...], groups: int) -> None:
    """Raises a UserError when the U-Net cannot run on images of `shape` (H, W, C)."""
    h, w, _ = shape
    factor = 2 ** (len(ch_mult) - 1)
    if h % factor or w % factor:
        raise UserError(f"a U-Net with {len(ch_mult)} levels (model.ch_mult={tuple(ch_mult)}) "
                        f"halves the size {len(ch_mult) - 1} times, so H and W must be divisible "
                        f"by {factor}; the images are {h}x{w}: use fewer levels")
    if ch % groups:
        raise UserError(f"model.ch={ch} must be divisible by model.norm_groups={groups}")
    sizes = [h // 2 ** i for i in range(len(ch_mult))]
    missing = [r for r in attn_resolutions if r not in sizes]
    if missing:
        raise UserError(f"model.attn_resolutions {missing} are not among the U-Net's resolutions "
                        f"{sizes}; choose from those")


class ResBlock(nn.Module):
    """GroupNorm, swish, 3x3 conv, + projected embedding, GroupNorm, swish, dropout, 3x3 conv;
    a 1x1 conv on the shortcut when the width changes."""

    out_ch: int
    dropout: float = 0.0
    groups: int = 32

    @nn.compact
    def __call__(self, x: Array, emb: Array, train: bool) -> Array:
        h = nn.swish(nn.GroupNorm(self.groups)(x))
        h = Conv(self.out_ch, (3, 3), kernel_init=default_init)(h)
        h = h + nn.Dense(self.out_ch, kernel_init=default_init)(nn.swish(emb))[:, None, None, :]
        h = nn.swish(nn.GroupNorm(self.groups)(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = Conv(self.out_ch, (3, 3), kernel_init=zeros)(h)
        if x.shape[-1] != self.out_ch:
            x = nn.Dense(self.out_ch, kernel_init=default_init)(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions, residual:
    x + proj(softmax(q k^T / sqrt(C)) v)."""

    groups: int = 32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, h, w, c = x.shape
        qkv = nn.Dense(3 * c, kernel_init=default_init)(nn.GroupNorm(self.groups)(x))
        q, k, v = jnp.split(qkv.reshape(b, h * w, 3 * c), 3, axis=-1)
        weights = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) / math.sqrt(c), axis=-1)
        out = jnp.einsum("bqk,bkc->bqc", weights, v).reshape(b, h, w, c)
        return x + nn.Dense(c, kernel_init=zeros)(out)


class Downsample(nn.Module):
    """Halves H and W with a stride-2 3x3 conv."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return Conv(x.shape[-1], (3, 3), strides=(2, 2), kernel_init=default_init)(x)


class Upsample(nn.Module):
    """Doubles H and W: nearest-neighbour upsampling, then a 3x3 conv."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return Conv(x.shape[-1], (3, 3), kernel_init=default_init)(upsample(x))


class UNet(nn.Module):
    """(x_t [B, H, W, C], t [B], labels [B] or None) -> [B, H, W, out_ch].

    Level i works at width ch * ch_mult[i] with num_res_blocks blocks (num_res_blocks + 1 on the
    way up, each taking a skip connection); levels after the first halve the size. With
    num_classes > 0 an embedding of num_classes + 1 entries (the last: "no label", for
    classifier-free guidance) is added to the timestep embedding.
    """

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    dropout: float
    out_ch: int
    num_classes: int = 0
    groups: int = 32

    @nn.compact
    def __call__(self, x: Array, t: Array, labels: Array | None = None,
                 train: bool = False) -> Array:
        check_unet(x.shape[1:], self.ch, self.ch_mult, self.attn_resolutions, self.groups)
        emb = nn.Dense(4 * self.ch, kernel_init=default_init)(timestep_embedding(t, self.ch))
        emb = nn.Dense(4 * self.ch, kernel_init=default_init)(nn.swish(emb))
        if self.num_classes:
            emb = emb + nn.Embed(self.num_classes + 1, 4 * self.ch)(labels)

        def block(h: Array, width: int) -> Array:
            h = ResBlock(width, self.dropout, self.groups)(h, emb, train)
            return AttentionBlock(self.groups)(h) if h.shape[1] in self.attn_resolutions else h

        skips = [Conv(self.ch, (3, 3), kernel_init=default_init)(x)]
        for level, mult in enumerate(self.ch_mult):
            for _ in range(self.num_res_blocks):
                skips.append(block(skips[-1], self.ch * mult))
            if level < len(self.ch_mult) - 1:
                skips.append(Downsample()(skips[-1]))

        h = skips[-1]
        width = h.shape[-1]
        h = ResBlock(width, self.dropout, self.groups)(h, emb, train)
        h = AttentionBlock(self.groups)(h)
        h = ResBlock(width, self.dropout, self.groups)(h, emb, train)

        for level, mult in reversed(list(enumerate(self.ch_mult))):
            for _ in range(self.num_res_blocks + 1):
                h = block(jnp.concatenate([h, skips.pop()], axis=-1), self.ch * mult)
            if level > 0:
                h = Upsample()(h)
        h = nn.swish(nn.GroupNorm(self.groups)(h))
        return Conv(self.out_ch, (3, 3), kernel_init=zeros)(h)
