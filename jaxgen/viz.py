"""Pictures of models: sample grids, 2-D latent maps, latent-space grids and interpolations.

Images are floats in [0, 1], NHWC with C = 1 or 3 (numpy or jax arrays); files are written with
Pillow.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import scipy.stats
from PIL import Image

PAD_VALUE = 128
# Tableau-10: distinguishable colours for up to ten classes.
PALETTE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ],
    dtype=np.uint8,
)
AXIS_COLOUR = (200, 200, 200)


def to_uint8(images) -> np.ndarray:
    """Maps floats in [0, 1] to uint8 0..255: clips, then rounds x * 255 (NaN becomes 0)."""
    x = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def grid(images, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles [N, H, W, C] images into one uint8 image [rows*(H+pad)+pad, ncol*(W+pad)+pad, C].

    Float images are converted with `to_uint8`, uint8 ones kept. `ncol` None gives a near-square
    grid; padding and unused cells are mid-gray.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"grid expects images [N, H, W, C], got shape {images.shape}")
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = max(1, math.ceil(n / ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), PAD_VALUE, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def montage(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Images in [0, 1] (HWC, any sizes, one C) laid out in rows, each top-aligned, on mid-gray:
    one uint8 picture."""
    heights = [max(im.shape[0] for im in row) for row in rows]
    width = max(sum(im.shape[1] + pad for im in row) for row in rows) + pad
    out = np.full((sum(heights) + pad * (len(rows) + 1), width, rows[0][0].shape[-1]), PAD_VALUE,
                  np.uint8)
    y = pad
    for row, height in zip(rows, heights):
        x = pad
        for im in row:
            out[y : y + im.shape[0], x : x + im.shape[1]] = to_uint8(im)
            x += im.shape[1] + pad
        y += height + pad
    return out


def reconstructions(x, recon, n: int = 32, ncol: int = 16) -> np.ndarray:
    """A grid of the first n images of x [N, H, W, C], each followed by its reconstruction."""
    x, recon = np.asarray(x), np.asarray(recon)
    n = min(n, len(x))
    return grid(np.stack([x[:n], recon[:n]], 1).reshape((2 * n,) + x.shape[1:]), ncol=ncol)


def save_image(image_or_grid: np.ndarray, path: str, scale: int = 1) -> None:
    """Writes a uint8 HWC (C = 1 or 3) or HW image to `path`, upscaled `scale` times (nearest).

    Parent directories are created; the file appears atomically (temp file, then rename).
    """
    image = np.asarray(image_or_grid)
    if image.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8, got {image.dtype}; convert with to_uint8")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"save_image expects HW, HW1 or HW3, got shape {image.shape}")
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    file_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(image).save(f, format=file_format)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_grid(images, path: str, ncol: int | None = None, min_size: int = 256) -> None:
    """Saves `grid(images, ncol)`, upscaled by the smallest integer making its long side >= min_size."""
    g = grid(images, ncol)
    save_image(g, path, scale=max(1, math.ceil(min_size / max(g.shape[:2]))))


def scatter(points: np.ndarray, labels: np.ndarray | None, size: int = 512) -> np.ndarray:
    """Draws 2-D codes [N, 2] as 3x3 dots on a white uint8 RGB canvas [size, size, 3].

    Each axis spans its 1st..99th percentile with a 5% margin (outliers are clipped to the
    canvas); dots are coloured by label mod 10, black without labels; gray lines mark the axes
    through 0 when 0 is in range. The second coordinate points up.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"scatter expects points [N, 2], got shape {points.shape}")
    colours = (
        np.zeros((len(points), 3), np.uint8)
        if labels is None
        else PALETTE[np.asarray(labels).astype(np.int64) % len(PALETTE)]
    )
    keep = np.all(np.isfinite(points), axis=1)
    points, colours = points[keep], colours[keep]
    canvas = np.full((size, size, 3), 255, np.uint8)
    if len(points) == 0:
        return canvas

    lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    flat = hi - lo <= 0
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    margin = 0.05 * (size - 1)

    def to_pixels(v: np.ndarray) -> np.ndarray:
        p = margin + (v - lo) / (hi - lo) * (size - 1 - 2 * margin)
        return np.clip(np.round(p), 0, size - 1).astype(np.int64)

    zero = to_pixels(np.zeros(2))
    if lo[0] <= 0 <= hi[0]:
        canvas[:, zero[0]] = AXIS_COLOUR
    if lo[1] <= 0 <= hi[1]:
        canvas[size - 1 - zero[1], :] = AXIS_COLOUR
    px = to_pixels(points)
    cols, rows = px[:, 0], size - 1 - px[:, 1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            canvas[np.clip(rows + dy, 0, size - 1), np.clip(cols + dx, 0, size - 1)] = colours
    return canvas


def manifold_points(n: int, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """Returns [n*n, 2] latent points on an n x n grid at standard-normal quantiles.

    As in Kingma & Welling (2014), Fig. 4. Row-major: within a row the first coordinate increases
    along the columns; the second decreases from the top row to the bottom one, so a decoded grid
    has the same orientation as `scatter`.
    """
    q = scipy.stats.norm.ppf(np.linspace(lo, hi, n))
    first, second = np.meshgrid(q, q[::-1])
    return np.stack([first.ravel(), second.ravel()], axis=1)


def interpolate(z0, z1, steps: int, spherical: bool = False) -> np.ndarray:
    """Interpolates [B, D] codes z0 -> z1 in `steps` steps, giving [B*steps, D].

    Rows i*steps .. (i+1)*steps-1 go from z0[i] to z1[i], endpoints included exactly.
    `spherical` uses slerp, falling back to linear for (anti)parallel pairs.
    """
    z0, z1 = np.asarray(z0), np.asarray(z1)
    if z0.ndim != 2 or z0.shape != z1.shape:
        raise ValueError(f"interpolate expects two [B, D] arrays, got {z0.shape} and {z1.shape}")
    dtype = np.result_type(z0.dtype, z1.dtype, np.float32)
    z0, z1 = z0.astype(dtype), z1.astype(dtype)
    t = np.linspace(0.0, 1.0, steps, dtype=dtype)[None, :]  # [1, steps]
    w0, w1 = 1 - t, t  # (1-t)*z0 + t*z1 hits both endpoints exactly; [B, steps] under slerp
    if spherical:
        n0 = np.linalg.norm(z0, axis=1, keepdims=True)
        n1 = np.linalg.norm(z1, axis=1, keepdims=True)
        cos = np.sum(z0 * z1, axis=1, keepdims=True) / np.maximum(n0 * n1, np.finfo(dtype).tiny)
        omega = np.arccos(np.clip(cos, -1.0, 1.0))  # [B, 1]
        sin = np.sin(omega)
        ok = sin > 1e-6
        safe = np.where(ok, sin, 1.0)
        w0 = np.where(ok, np.sin((1 - t) * omega) / safe, w0)
        w1 = np.where(ok, np.sin(t * omega) / safe, w1)
    out = w0[:, :, None] * z0[:, None, :] + w1[:, :, None] * z1[:, None, :]
    return out.reshape(-1, z0.shape[1]).astype(dtype)
