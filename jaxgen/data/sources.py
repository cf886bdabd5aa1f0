"""In-memory image sources: sklearn digits, one image file, a folder of images, an .npz file, or a
TFDS dataset.

Every source returns decoded uint8 NHWC arrays; `load_images` is the single entry point.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile

import numpy as np
from PIL import Image

from jaxgen.errors import UserError

SPECIAL_SOURCES = ("'digits', 'image:/path/to/file.png', 'folder:/path/to/images' or "
                   "'npz:/path/to/file.npz'")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DIGITS_TRAIN = 1497
READ_CHUNK = 2048


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Decoded images of one split, with their labels when the source has any."""

    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray | None  # int32 [N], or None when the source has no labels
    num_classes: int  # 0 when unlabelled
    # Per-example arrays beside the images, each [N, ...] (a condition image, a mask); batches
    # carry them under their own names.
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def load_images(
    name: str, split: str, data_dir: str | None = None, cache_dir: str | None = None
) -> ImageData:
    """Loads split `split` of source `name` ('digits', 'image:FILE', 'folder:DIR', 'npz:FILE' or a
    TFDS name).

    `data_dir` is the TFDS data dir (None: TFDS default, which honours TFDS_DATA_DIR). With
    `cache_dir`, decoded TFDS splits are stored there as .npz and reused on the next call.
    """
    if name == "digits":
        return _load_digits(split)
    if name.startswith("image:"):
        return _load_image(name[len("image:") :], split)
    if name.startswith("folder:"):
        return _load_folder(name[len("folder:") :], split)
    if name.startswith("npz:"):
        return _load_npz(name[len("npz:") :], split)
    if cache_dir is None:
        return _load_tfds(name, split, data_dir)
    return _load_tfds_cached(name, split, data_dir, cache_dir)


def _check_split(split: str, valid: list[str], what: str) -> None:
    if split not in valid:
        raise UserError(f"unknown split {split!r} for {what}; use one of {valid}")


def _split_indices(n: int, split: str, what: str) -> np.ndarray:
    """Deterministic 90/10 train/test split for sources that have no splits of their own."""
    _check_split(split, ["train", "test"], what)
    perm = np.random.default_rng(0).permutation(n)
    n_test = n // 10
    idx = perm[: n - n_test] if split == "train" else perm[n - n_test :]
    if idx.size == 0:
        raise UserError(
            f"{what} has {n} images, too few for a {split!r} split (the test split is 10%); "
            "add more images"
        )
    return idx


def _take(
    images: np.ndarray, labels: np.ndarray | None, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    return images[idx], None if labels is None else labels[idx]


def _load_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    _check_split(split, ["train", "test"], "source 'digits'")
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    perm = np.random.default_rng(0).permutation(len(images))
    idx = perm[:DIGITS_TRAIN] if split == "train" else perm[DIGITS_TRAIN:]
    return ImageData(images[idx], labels[idx], 10)


def _read_image(path: str, advice: str) -> np.ndarray:
    """One image file as uint8 [H, W] (gray) or [H, W, 3]; a UserError with `advice` if it cannot
    be read."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L" if im.mode in GRAY_MODES else "RGB"))
    except OSError as e:
        raise UserError(f"cannot read image {path} ({e}); {advice}") from None


def _load_image(path: str, split: str) -> ImageData:
    """One image, which both splits hold (a texture exemplar is fitted and evaluated on it)."""
    what = f"image source {path!r}"
    _check_split(split, ["train", "test"], what)
    if not os.path.isfile(path):
        raise UserError(f"{what}: no such file; give 'image:' the path of an existing "
                        f"{'/'.join(IMAGE_EXTENSIONS)} file")
    image = _read_image(path, f"give 'image:' a {'/'.join(IMAGE_EXTENSIONS)} file")
    return ImageData(image.reshape((1,) + image.shape[:2] + (-1,)), None, 0)


def read_folder(root: str, what: str) -> tuple[list[str], np.ndarray]:
    """The paths of every image file under `root`, sorted, and the images, uint8 [N, H, W, C]
    (gray ones as RGB where the folder mixes both); UserErrors name `what`."""
    if not os.path.isdir(root):
        raise UserError(f"{what}: no such directory; give an existing directory of images")
    paths = sorted(
        os.path.join(dirpath, f)
        for dirpath, _, files in os.walk(root)
        for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise UserError(f"{what} holds no {'/'.join(IMAGE_EXTENSIONS)} files; add images to it")

    arrays = []
    for path in paths:
        arrays.append(_read_image(path, "fix or remove the file"))
        (h, w), (h0, w0) = arrays[-1].shape[:2], arrays[0].shape[:2]
        if (h, w) != (h0, w0):
            raise UserError(f"image {path} is {w}x{h} but {paths[0]} is {w0}x{h0}; all images of "
                            "a folder source must have the same size: resize them first")
    if any(a.ndim == 3 for a in arrays):
        # Mixed folder: gray images become RGB so all share one channel count.
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1) for a in arrays]
    images = np.stack(arrays)
    return paths, images[..., None] if images.ndim == 3 else images


def _load_folder(root: str, split: str) -> ImageData:
    what = f"folder source {root!r}"
    paths, images = read_folder(root, what)
    rel_dirs = [os.path.dirname(os.path.relpath(p, root)) for p in paths]
    labels, num_classes = None, 0
    if all(d and os.sep not in d for d in rel_dirs):
        classes = sorted(set(rel_dirs))
        labels = np.array([classes.index(d) for d in rel_dirs], dtype=np.int32)
        num_classes = len(classes)
    return ImageData(*_take(images, labels, _split_indices(len(images), split, what)), num_classes)


def _npz_images(array: np.ndarray, key: str, what: str) -> np.ndarray:
    expected = (
        f"{what}: '{key}' must be uint8 [N,H,W] or [N,H,W,C] with C 1 or 3, or floats in [0, 1]"
    )
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise UserError(f"{expected}; got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.all(np.isfinite(array)) and array.min() >= 0 and array.max() <= 1):
            raise UserError(f"{expected}; got floats outside [0, 1] (scale them into [0, 1])")
        return np.round(array * 255.0).astype(np.uint8)
    raise UserError(f"{expected}; got dtype {array.dtype} (convert with .astype(np.uint8))")


def _npz_labels(array: np.ndarray, key: str, n: int, what: str) -> np.ndarray:
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer) or np.any(array < 0):
        raise UserError(
            f"{what}: '{key}' must hold {n} non-negative integer labels (one per image); "
            f"got dtype {array.dtype} and shape {array.shape}"
        )
    return array.astype(np.int32)


def _load_npz(path: str, split: str) -> ImageData:
    what = f"npz source {path!r}"
    unreadable = f"{what} is not a NumPy .npz archive; write it with np.savez(path, images=...)"
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{what}: no such file; give 'npz:' the path of an existing .npz") from None
    except (OSError, ValueError):  # numpy's own reason speaks of pickles, which misleads
        raise UserError(unreadable) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
        raise UserError(unreadable)
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}

    splits = sorted(k[: -len("_images")] for k in arrays if k.endswith("_images"))
    if splits:
        _check_split(split, splits, what)
        image_key, label_key = f"{split}_images", f"{split}_labels"
    elif "images" in arrays:
        image_key, label_key = "images", "labels"
    else:
        raise UserError(
            f"{what} has keys {sorted(arrays)} but needs 'images' (and optionally 'labels'), "
            "or per-split keys such as 'train_images'/'test_images'"
        )
    images = _npz_images(arrays[image_key], image_key, what)
    if not len(images):
        raise UserError(f"{what}: '{image_key}' holds no images; give every split at least one")
    labels = None
    if label_key in arrays:
        labels = _npz_labels(arrays[label_key], label_key, len(images), what)
    extras = _npz_extras(arrays, f"{split}_" if splits else "", len(images), what)
    if not splits:
        idx = _split_indices(len(images), split, what)
        images, labels = _take(images, labels, idx)
        extras = {k: v[idx] for k, v in extras.items()}
    return ImageData(images, labels, 0 if labels is None else _npz_num_classes(arrays), extras)


RESERVED = ("image", "label", "mask")  # the batch keys the loop itself fills


def _npz_extras(arrays: dict[str, np.ndarray], prefix: str, n: int,
                what: str) -> dict[str, np.ndarray]:
    """The arrays of the split other than its images and labels: per-example extras."""
    split_names = {k[: -len("_images")] for k in arrays if k.endswith("_images")}
    extras = {}
    for key, array in arrays.items():
        if not key.startswith(prefix) or key in (prefix + "images", prefix + "labels"):
            continue
        name = key[len(prefix):]
        if not prefix and "_" in name and name.split("_")[0] in split_names:
            continue
        if name in RESERVED or array.ndim == 0 or len(array) != n:
            raise UserError(f"{what}: extra array '{key}' must have one row per image ({n}) and "
                            f"a name other than {', '.join(RESERVED)}; got shape {array.shape}")
        extras[name] = array
    return extras


def _npz_num_classes(arrays: dict[str, np.ndarray]) -> int:
    """Counts classes over every label array in the file, so that all splits agree."""
    maxima = [
        int(v.max())
        for k, v in arrays.items()
        if (k == "labels" or k.endswith("_labels")) and v.size and np.issubdtype(v.dtype, np.integer)
    ]
    return max(maxima) + 1


def _load_tfds(name: str, split: str, data_dir: str | None) -> ImageData:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise UserError(
            f"unknown dataset {name!r}: it is not a TFDS dataset; use a TFDS name such as 'mnist' "
            f"or 'cifar10', or one of the local sources {SPECIAL_SOURCES}"
        ) from None
    except (ValueError, AssertionError) as e:
        raise UserError(f"cannot open TFDS dataset {name!r}: {e}") from None
    # data_source() would try to download a missing dataset, which offline retries for minutes
    # and leaves partial files behind, so check first and never let TFDS download here.
    if not builder.is_prepared():
        raise UserError(
            f"dataset {name!r} is not in TFDS data dir {builder.data_dir_root}; point "
            "--config.data.data_dir or TFDS_DATA_DIR at a directory that holds it, or run once "
            "with internet access to download it"
        )
    try:
        source = builder.as_data_source(split=split)
    except NotImplementedError:
        raise UserError(
            f"dataset {name!r} in {builder.data_dir} is stored in {builder.info.file_format.value} "
            "format, which has no random access; prepare it again with "
            "file_format='array_record' or use another data dir"
        ) from None
    except ValueError as e:
        raise UserError(
            f"cannot read split {split!r} of {name!r} ({e}); use one of "
            f"{list(builder.info.splits.keys())}, optionally sliced like 'train[:1000]'"
        ) from None

    images, labels = [], []
    for start in range(0, len(source), READ_CHUNK):
        for record in source.__getitems__(list(range(start, min(start + READ_CHUNK, len(source))))):
            images.append(record["image"])
            if "label" in record:
                labels.append(record["label"])
    if not images:
        raise UserError(f"split {split!r} of {name!r} is empty; choose another split")
    if len({im.shape for im in images}) > 1:
        raise UserError(
            f"images of {name!r} have different sizes; resize them into a folder: or npz: source"
        )
    images = np.stack(images)
    if images.ndim == 3:
        images = images[..., None]
    if not labels:
        return ImageData(images, None, 0)
    labels = np.asarray(labels, dtype=np.int32)
    label_feature = builder.info.features["label"]
    num_classes = getattr(label_feature, "num_classes", None) or int(labels.max()) + 1
    return ImageData(images, labels, num_classes)


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _load_tfds_cached(name: str, split: str, data_dir: str | None, cache_dir: str) -> ImageData:
    path = os.path.join(cache_dir, f"{_sanitize(name)}_{_sanitize(split)}.npz")
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            labels = f["labels"] if "labels" in f.files else None
            return ImageData(f["images"], labels, int(f["num_classes"]))
    data = _load_tfds(name, split, data_dir)
    os.makedirs(cache_dir, exist_ok=True)
    arrays = {"images": data.images, "num_classes": np.int64(data.num_classes)}
    if data.labels is not None:
        arrays["labels"] = data.labels
    # Write-then-rename, so an interrupted run never leaves a truncated cache behind.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return data
