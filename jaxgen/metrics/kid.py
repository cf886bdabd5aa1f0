"""Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel (Binkowski et al. 2018)."""
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike


def _kernel(a: jax.Array, b: jax.Array) -> jax.Array:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


@jax.jit
def _kernel_row_sums(x: jax.Array, y: jax.Array, ix: jax.Array, iy: jax.Array) -> jax.Array:
    """Row sums of Kxx and Kyy without their diagonals, and of Kxy, per subset: [S, 3, m].

    Subsets are processed one at a time (lax.map) so memory stays at three m x m kernels; the
    final sums over rows are left to the host in float64.
    """
    def one(idx):
        xs, ys = x[idx[0]], y[idx[1]]
        kxx, kyy, kxy = _kernel(xs, xs), _kernel(ys, ys), _kernel(xs, ys)
        return jnp.stack([kxx.sum(1) - jnp.diagonal(kxx),
                          kyy.sum(1) - jnp.diagonal(kyy),
                          kxy.sum(1)])
    return jax.lax.map(one, jnp.stack([ix, iy], axis=1))


def kid(x: ArrayLike, y: ArrayLike, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Mean and std over random subsets of the unbiased MMD^2 between features x [N, F], y [M, F].

    Kernel k(a, b) = (a.b / F + 1)^3. Each subset draws min(subset_size, N, M) rows of x and of y
    without replacement (numpy generator from `seed`). The estimator is unbiased, so values near 0
    can be negative; they are not clipped.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be [N, F] and [M, F], got {x.shape} and {y.shape}")
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    ix = np.stack([rng.choice(len(x), m, replace=False) for _ in range(num_subsets)])
    iy = np.stack([rng.choice(len(y), m, replace=False) for _ in range(num_subsets)])
    dtype = jnp.result_type(float)
    sums = np.asarray(_kernel_row_sums(jnp.asarray(x, dtype), jnp.asarray(y, dtype),
                                       jnp.asarray(ix), jnp.asarray(iy)), np.float64).sum(axis=2)
    mmd = (sums[:, 0] + sums[:, 1]) / (m * (m - 1)) - 2.0 * sums[:, 2] / (m * m)
    return float(mmd.mean()), float(mmd.std())
