"""SSIM, the structural similarity of two images (Wang et al. 2004).

Per channel and per 11x11 window (Gaussian weights, sigma 1.5, only windows that fit, as in the
paper's code): luminance, contrast and structure compared through the local means mu, variances
sigma^2 and covariance sigma_xy,

    SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
           / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

with C1 = (0.01 L)^2, C2 = (0.03 L)^2 for data range L; the image's SSIM is the mean over windows
and channels. Images smaller than the window use a window of their smaller side.
"""
import jax
import jax.numpy as jnp

Array = jax.Array


def gaussian_window(size: int, sigma: float) -> Array:
    """The separable 1-D weights [size], summing to 1."""
    x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
    w = jnp.exp(-0.5 * (x / sigma) ** 2)
    return w / jnp.sum(w)


def _local_mean(x: Array, w: Array) -> Array:
    """The weighted means of x [B, H, W, C] over every window that fits: [B, H-k+1, W-k+1, C]."""
    k = w.shape[0]
    rows = sum(w[i] * x[:, i:x.shape[1] - k + 1 + i] for i in range(k))
    return sum(w[j] * rows[:, :, j:x.shape[2] - k + 1 + j] for j in range(k))


def ssim(x: Array, y: Array, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> Array:
    """The SSIM of each image pair, x and y [B, H, W, C] -> [B]; 1 for equal images."""
    w = gaussian_window(min(window, x.shape[1], x.shape[2]), sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _local_mean(x, w), _local_mean(y, w)
    var_x = _local_mean(x * x, w) - mu_x**2
    var_y = _local_mean(y * y, w) - mu_y**2
    cov = _local_mean(x * y, w) - mu_x * mu_y
    s = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return jnp.mean(s, axis=(1, 2, 3))
