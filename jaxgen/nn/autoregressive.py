"""Raster-order sampling from autoregressive (masked) nets, shared by the PixelCNNs and the VQ
priors. A `likelihood` here is any object with `colors` (the groups a pixel's channels are drawn
in: 1 for whole pixels), `num_outputs` (the net's outputs per position) and
`draw(outputs [..., F], uniforms [..., N]) -> values [..., C]`.
"""
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


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
