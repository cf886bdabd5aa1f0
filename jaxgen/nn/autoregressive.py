"""Per-pixel likelihoods (Bernoulli, 256-way softmax, discretized logistic mixture: the
PixelCNNs' and NVAE's decoders) and raster-order sampling from autoregressive (masked) nets,
shared by the PixelCNNs and the VQ priors. A `likelihood` here is any object with `colors` (the
groups a pixel's channels are drawn in: 1 for whole pixels), `num_outputs` (the net's outputs
per position) and `draw(outputs [..., F], uniforms [..., N]) -> values [..., C]`.
"""
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxgen import losses

Array = jax.Array

NUM_BINS = 256
MIN_LOG_SCALE = -7.0


def to_bins(x: Array) -> Array:
    """[-1, 1] values -> the nearest of the NUM_BINS levels, int32."""
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * (NUM_BINS - 1) / 2).astype(jnp.int32)


def from_bins(k: Array) -> Array:
    return k * (2.0 / (NUM_BINS - 1)) - 1.0


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """The distribution of one pixel given the net's outputs there."""

    name: str
    channels: int
    num_mixtures: int = 1

    @property
    def colors(self) -> int:
        """Color groups the net masks by: the channels, or 1 for whole pixels."""
        return 1 if self.name == "logistic_mixture" else self.channels

    @property
    def num_outputs(self) -> int:
        c = self.channels
        if self.name == "bernoulli":
            return c
        if self.name == "softmax":
            return c * NUM_BINS
        return self.num_mixtures * (1 + 2 * c + c * (c - 1) // 2)

    @property
    def noise_size(self) -> int:
        """Uniforms per pixel: one per channel, one more for the mixture component."""
        return self.channels + (self.name == "logistic_mixture")

    def mixture(self, out: Array) -> tuple[Array, Array, Array, Array]:
        """Outputs [..., F] -> logits [..., K], means and log-scales [..., C, K], coupling
        coefficients in (-1, 1) [..., C (C - 1) / 2, K]."""
        rows = out.reshape(out.shape[:-1] + (-1, self.num_mixtures))
        c = self.channels
        return (rows[..., 0, :], rows[..., 1:1 + c, :],
                jnp.maximum(rows[..., 1 + c:1 + 2 * c, :], MIN_LOG_SCALE),
                jnp.tanh(rows[..., 1 + 2 * c:, :]))

    def log_prob(self, out: Array, x: Array) -> Array:
        """log p(x) [B] from the outputs [B, H, W, F] on x [B, H, W, C] (model space)."""
        if self.name == "bernoulli":
            return losses.sum_except_batch(losses.bernoulli_log_prob(out, x))
        if self.name == "softmax":
            log_p = jax.nn.log_softmax(out.reshape(x.shape + (NUM_BINS,)))
            return losses.sum_except_batch(jnp.take_along_axis(log_p, to_bins(x)[..., None], -1))
        return losses.sum_except_batch(
            losses.discretized_logistic_mixture_log_prob(x, *self.mixture(out), NUM_BINS))

    def draw(self, out: Array, u: Array) -> Array:
        """Pixels [..., C] in model space from the outputs [..., F] and uniforms [..., N]; with
        per-channel masking, channel c's value is right once the channels before it are."""
        if self.name == "bernoulli":
            return (u < jax.nn.sigmoid(out)).astype(jnp.float32)
        if self.name == "softmax":
            return from_bins(inverse_cdf(jax.nn.softmax(out.reshape(u.shape + (NUM_BINS,))), u))
        logits, means, log_scales, coeffs = self.mixture(out)
        pick = jax.nn.one_hot(inverse_cdf(jax.nn.softmax(logits), u[..., 0]), self.num_mixtures)
        means, log_scales, coeffs = (jnp.sum(a * pick[..., None, :], -1, keepdims=True)
                                     for a in (means, log_scales, coeffs))
        x = jnp.zeros(u.shape[:-1] + (self.channels,))
        for c in range(self.channels):  # the coupling needs the channels before c, quantized
            mean = losses.logistic_mixture_means(means, coeffs, x)[..., c, 0]
            uc = u[..., 1 + c]
            value = mean + jnp.exp(log_scales[..., c, 0]) * (jnp.log(uc) - jnp.log1p(-uc))
            x = x.at[..., c].set(from_bins(to_bins(value)))
        return x


def inverse_cdf(probs: Array, u: Array) -> Array:
    """The index drawn from probs [..., K] by the uniform u [...]."""
    return jnp.minimum(jnp.sum(jnp.cumsum(probs, -1) < u[..., None], -1), probs.shape[-1] - 1)


def sample_pixels(apply: Callable[[Array], Array], likelihood: Any, x: Array,
                  noise: Array, start: int = 0) -> Array:
    """Draws every pixel (every channel, with per-channel masking) from raster step `start` on,
    one forward pass `apply(x) -> outputs` each; x [n, H, W, C] holds the given pixels."""
    n, _, w, c = x.shape
    g = likelihood.colors

    def step(t: Array, x: Array) -> Array:
        i, j = t // g // w, t // g % w
        out = jax.lax.dynamic_slice(apply(x), (0, i, j, 0), (n, 1, 1, likelihood.num_outputs))
        u = jax.lax.dynamic_slice(noise, (0, i, j, 0), (n, 1, 1, noise.shape[-1]))
        new = likelihood.draw(out, u)
        if g > 1:  # step t draws channel t % g only
            old = jax.lax.dynamic_slice(x, (0, i, j, 0), (n, 1, 1, c))
            new = jnp.where(jnp.arange(c) == t % g, new, old)
        return jax.lax.dynamic_update_slice(x, new, (0, i, j, 0))

    return jax.lax.fori_loop(start, x.shape[1] * w * g, step, x)
