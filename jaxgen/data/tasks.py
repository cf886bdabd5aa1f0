"""Paired image-to-image tasks built from any image dataset (config data.task), for pix2pix.

A task turns a loaded split into pairs: `image` stays the target, and the split gains the extra
`condition` (uint8 [N, H, W, Cc], the input of the translation); `inpaint` also adds `hole`.

- colorize: the gray version of a colour image (ITU-R 601 luma), one channel.
- inpaint: the image with a random box (a quarter to a half of each side) blacked out, and the
  box as one more channel (255 inside); `hole` (uint8 [N, H, W, 1], 1 inside) marks it. Each
  image's box is drawn once, from the split's name, so every epoch and every eval sees the same.
- edges: the Sobel gradient magnitude of the gray image, / 4 and clipped to [0, 1] (a unit step
  between flat regions gives 1), one channel.
- paired: images that hold A|B side by side (the pix2pix datasets' convention, e.g. from a
  'folder:' source): A, the left half, is the condition and B, the right half, the target.
"""
import dataclasses
import zlib

import numpy as np

from jaxgen.data.sources import ImageData
from jaxgen.errors import UserError

TASKS = ("colorize", "inpaint", "edges", "paired")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def gray(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] -> float32 luma in [0, 1], [N, H, W] (a one-channel image as is)."""
    x = images.astype(np.float32) / 255.0
    return x[..., 0] if x.shape[-1] == 1 else x @ LUMA


def sobel_edges(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] -> the edge map uint8 [N, H, W, 1] (see the module docstring); the
    border is replicated, so a flat image has no edges."""
    g = np.pad(gray(images), ((0, 0), (1, 1), (1, 1)), mode="edge")
    # Sobel's kernels are separable: [1, 2, 1] smoothing across, [1, 0, -1] difference along.
    across = g[:, :-2] + 2.0 * g[:, 1:-1] + g[:, 2:]
    along = g[:, :, :-2] + 2.0 * g[:, :, 1:-1] + g[:, :, 2:]
    gx, gy = across[:, :, :-2] - across[:, :, 2:], along[:, :-2] - along[:, 2:]
    return np.round(np.clip(np.hypot(gx, gy) / 4.0, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]


def random_boxes(n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """n box masks uint8 [n, H, W, 1], 1 inside a box of a quarter to a half of each side."""
    def span(size: int) -> np.ndarray:
        """[n, size]: True on a random run of a quarter to a half of `size`."""
        length = rng.integers(max(size // 4, 1), max(size // 2, 1) + 1, n)
        start = rng.integers(0, size - length + 1)[:, None]
        return (np.arange(size) >= start) & (np.arange(size) < start + length[:, None])
    return (span(height)[:, :, None] & span(width)[:, None, :]).astype(np.uint8)[..., None]


def apply_task(task: str, data: ImageData, split: str, source: str) -> ImageData:
    """The split `data` of dataset `source` as the pairs of `task` ('' leaves it as it is)."""
    if not task:
        return data
    if task not in TASKS:
        raise UserError(f"unknown data.task {task!r}; use one of {', '.join(TASKS)}, or '' for "
                        f"none")
    images = data.images
    if task == "colorize":
        if images.shape[-1] != 3:
            raise UserError(f"data.task colorize turns colour images gray, and {source!r} images "
                            f"have {images.shape[-1]} channel(s); use a colour dataset (cifar10) "
                            f"or data.task edges or inpaint")
        extras = {"condition": np.round(gray(images) * 255.0).astype(np.uint8)[..., None]}
    elif task == "edges":
        extras = {"condition": sobel_edges(images)}
    elif task == "inpaint":
        rng = np.random.default_rng(zlib.crc32(split.encode()))
        hole = random_boxes(len(images), *images.shape[1:3], rng)
        extras = {"condition": np.concatenate([images * (1 - hole), hole * 255], axis=-1),
                  "hole": hole}
    else:
        width = images.shape[2]
        if width % 2:
            raise UserError(f"data.task paired reads each image as A|B side by side, so its width "
                            f"must be even; the images of {source!r} are {width} pixels wide: "
                            f"crop or pad them to an even width")
        images, extras = images[:, :, width // 2:], {"condition": images[:, :, :width // 2]}
    return dataclasses.replace(data, images=images, extras={**data.extras, **extras})
