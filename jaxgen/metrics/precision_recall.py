"""Improved precision and recall of generated samples (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its points, radius = distance to the k-th
nearest other point of the same set. Distances are computed in row blocks of `block` queries
against the whole reference set, so memory is block x N, not N x N.
"""
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
    sq = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_neighbour_sq(queries: jax.Array, points: jax.Array, k: int) -> jax.Array:
    """Squared distance to the (k+1)-th nearest point; for queries drawn from `points` the
    nearest is the query itself at distance 0, so this is its k-th nearest other point.

    k masked argmin passes rather than lax.top_k, which is about 10x slower on CPU; one entry
    is masked per pass, so tied distances are counted as often as they occur.
    """
    cols = jnp.arange(points.shape[0])

    def drop_nearest(_, d):
        return jnp.where(cols[None, :] == jnp.argmin(d, axis=1)[:, None], jnp.inf, d)

    return jax.lax.fori_loop(0, k, drop_nearest, _sq_dists(queries, points)).min(axis=1)


@jax.jit
def _inside_any(queries: jax.Array, points: jax.Array, radii_sq: jax.Array) -> jax.Array:
    return jnp.any(_sq_dists(queries, points) <= radii_sq[None, :], axis=1)


def _blocked(fn: Callable[..., jax.Array], queries: np.ndarray, block: int,
             *args: jax.Array) -> np.ndarray:
    """fn over fixed-size row blocks of queries (the last one zero-padded, so one compilation)."""
    n = len(queries)
    padded = np.zeros((-(-n // block) * block, queries.shape[1]), queries.dtype)
    padded[:n] = queries
    out = [np.asarray(fn(jnp.asarray(padded[i:i + block]), *args))
           for i in range(0, len(padded), block)]
    return np.concatenate(out)[:n]


def _radii_sq(points: np.ndarray, k: int, block: int) -> jax.Array:
    return jnp.asarray(_blocked(functools.partial(_kth_neighbour_sq, k=k), points,
                                block, jnp.asarray(points)))


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3,
                     block: int = 1000) -> tuple[float, float]:
    """(precision, recall) of fake features [M, F] against real features [N, F].

    precision = fraction of fake points inside at least one real ball;
    recall = fraction of real points inside at least one fake ball.
    """
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must be [N, F] and [M, F], got {real.shape}, {fake.shape}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} points per set, got {len(real)} and {len(fake)}")
    # Centring on the real mean shrinks the norms in |a|^2 + |b|^2 - 2ab, so less cancellation
    # in float32; distances are unchanged.
    dtype = jnp.result_type(float)
    center = real.mean(axis=0, dtype=np.float64)
    real = (real - center).astype(dtype)
    fake = (fake - center).astype(dtype)
    block = min(block, max(len(real), len(fake)))
    real_radii = _radii_sq(real, k, block)
    fake_radii = _radii_sq(fake, k, block)
    precision = _blocked(_inside_any, fake, block, jnp.asarray(real), real_radii).mean()
    recall = _blocked(_inside_any, real, block, jnp.asarray(fake), fake_radii).mean()
    return float(precision), float(recall)
