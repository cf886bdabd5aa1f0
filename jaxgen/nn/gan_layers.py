"""What every GAN architecture shares: the label-conditioned generator and the critic's heads
around an architecture's body, and the critic extras that compose with any body.

A generator is a body (z -> images in [-1, 1]); `Generator` concatenates a label embedding to z
when it takes labels (classes, InfoGAN codes, clusters). A critic is a body (images -> features
[B, F]); `Critic` adds the linear score, the projection <embed(y), features> of a conditional
critic (Miyato & Koyama 2018) and InfoGAN's head Q (Chen et al. 2016), which guesses the code that
made an image.

Critic extras:
- spectral normalisation (Miyato et al. 2018): every weight matrix of the critic (a conv kernel
  as [k*k*in, out]) divided by its largest singular value, so dense layers are 1-Lipschitz and
  convs roughly so; it keeps scores per sample, so it goes with any loss or penalty;
- the minibatch standard deviation (Karras et al. 2018): a feature that lets the critic see how
  varied a group of samples is. It makes each score depend on its group, which the gradient
  penalties forbid.
Critics keep no batch statistics otherwise: each score depends only on its own image.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError
from jaxgen.nn.conv import Conv

Array = jax.Array


def num_stages(side: int) -> int:
    """How many 2x up/down stages an image side allows (28 -> 2, 32 -> 3, 64 -> 4)."""
    n = 0
    while side % 2 == 0 and side // 2 >= 4:
        side, n = side // 2, n + 1
    return n


class BatchNorm(nn.Module):
    """Batch norm with the current batch's statistics in training and sampling alike, as
    generators are usually run; it keeps no running averages, so an EMA generator needs no
    recomputed statistics."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        axes = tuple(range(x.ndim - 1))
        mean, var = jnp.mean(x, axes), jnp.var(x, axes)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias


def spectral_norm(w: Array) -> Array:
    """The largest singular value of a kernel [..., out] (as a matrix [-1, out]) or embedding,
    computed exactly, without the power-iteration state of Miyato et al.: the top eigenvector of
    the smaller Gram matrix (at most out x out, 128 x 128 here) is held constant and sigma =
    |W v|, whose gradient is then sigma's own, u v^T."""
    m = w.reshape(-1, w.shape[-1])
    if m.shape[0] < m.shape[1]:
        m = m.T
    _, vectors = jnp.linalg.eigh(jax.lax.stop_gradient(m.T @ m))
    return jnp.linalg.norm(m @ vectors[:, -1])


class SpectralNormed:
    """Mixin for a flax layer: its kernel or embedding is used divided by its spectral norm (the
    stored parameter stays unnormalised)."""

    def param(self, name: str, *args, **kwargs):
        value = super().param(name, *args, **kwargs)
        return value / spectral_norm(value) if name in ("kernel", "embedding") else value


class SNConv(SpectralNormed, Conv):
    pass


class SNDense(SpectralNormed, nn.Dense):
    pass


class SNEmbed(SpectralNormed, nn.Embed):
    pass


def critic_layers(normed: bool) -> tuple[type, type, type]:
    """The (Conv, Dense, Embed) classes of a critic, spectrally normalised or not."""
    return (SNConv, SNDense, SNEmbed) if normed else (Conv, nn.Dense, nn.Embed)


def minibatch_stddev(x: Array, group: int) -> Array:
    """Appends one feature to x [B, ..., F]: within each group of `group` consecutive rows, the
    standard deviation over the group of every feature, averaged over features (and positions)."""
    if x.shape[0] % group:
        raise UserError(f"model.d_mbstd ({group}) must divide the critic's batch ({x.shape[0]})")
    groups = x.reshape((x.shape[0] // group, group) + x.shape[1:])
    std = jnp.sqrt(jnp.var(groups, axis=1) + 1e-8)
    stat = jnp.mean(std, axis=tuple(range(1, std.ndim)), keepdims=True)  # [B / group, 1, ...]
    stat = jnp.broadcast_to(jnp.repeat(stat, group, axis=0), x.shape[:-1] + (1,))
    return jnp.concatenate([x, stat.astype(x.dtype)], axis=-1)


def before_last(x: Array, i: int, n: int, mbstd: int) -> Array:
    """A body's input to its layer i of n: with the minibatch stddev (group mbstd > 0), the last
    layer also reads the group's spread."""
    return minibatch_stddev(x, mbstd) if mbstd and i == n - 1 else x


class Generator(nn.Module):
    """(z [B, Z], labels [B]) -> body(z with the labels' embedding appended) [B, H, W, C]."""

    body: nn.Module
    num_labels: int = 0  # 0: the labels are ignored

    @nn.compact
    def __call__(self, z: Array, labels: Array) -> Array:
        if self.num_labels:
            z = jnp.concatenate([z, nn.Embed(self.num_labels, z.shape[-1])(labels)], axis=-1)
        return self.body(z)


class Critic(nn.Module):
    """(images [B, H, W, C] in [-1, 1], labels [B]) -> (scores [B], Q's code logits [B, K] or
    None): a linear score of the body's features, plus the projection of the label's embedding
    when conditional (num_classes > 0; labels are unused otherwise)."""

    body: nn.Module
    num_classes: int = 0
    info_codes: int = 0  # K > 0: a head Q (one hidden layer of 128) guesses a K-way code
    spectral_norm: bool = False  # of the heads; the body normalises its own layers

    @nn.compact
    def __call__(self, x: Array, labels: Array) -> tuple[Array, Array | None]:
        _, dense, embed = critic_layers(self.spectral_norm)
        features = self.body(x)
        score = dense(1)(features)[:, 0]
        if self.num_classes:
            score += jnp.sum(embed(self.num_classes, features.shape[-1])(labels) * features, -1)
        if not self.info_codes:
            return score, None
        return score, nn.Dense(self.info_codes)(nn.leaky_relu(nn.Dense(128)(features), 0.2))
