"""Tests for jaxgen.data.sources: digits, folder, npz and TFDS sources, caching, user errors."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from jaxgen.data import sources
from jaxgen.data.sources import load_images
from jaxgen.errors import UserError

TFDS_DIR = os.environ.get("TFDS_DATA_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "tfds"
)
needs_mnist = pytest.mark.skipif(
    not os.path.isdir(os.path.join(TFDS_DIR, "mnist")), reason=f"no mnist in {TFDS_DIR}"
)


def test_digits_shapes_range_and_splits():
    train, test = load_images("digits", "train"), load_images("digits", "test")
    assert train.images.shape == (1497, 8, 8, 1) and test.images.shape == (300, 8, 8, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    assert train.images.min() == 0 and train.images.max() == 255
    assert train.num_classes == test.num_classes == 10
    assert set(np.unique(train.labels)) == set(range(10))
    # Disjoint and together exactly the whole dataset (as multisets of image bytes).
    all_rows = sorted(im.tobytes() for im in np.concatenate([train.images, test.images]))
    from sklearn.datasets import load_digits

    ref = np.round(load_digits().images * 255 / 16).astype(np.uint8)[..., None]
    assert all_rows == sorted(im.tobytes() for im in ref)


def test_digits_deterministic():
    a, b = load_images("digits", "test"), load_images("digits", "test")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_digits_unknown_split_lists_valid_ones():
    with pytest.raises(UserError, match=r"\['train', 'test'\]"):
        load_images("digits", "validation")


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ("cat", "ant"):
        for i in range(10):
            _write(str(tmp_path / cls / f"{i}.png"), rng.integers(0, 256, (6, 5), dtype=np.uint8))
    train, test = load_images(f"folder:{tmp_path}", "train"), load_images(f"folder:{tmp_path}", "test")
    assert train.images.shape == (18, 6, 5, 1) and test.images.shape == (2, 6, 5, 1)
    assert train.num_classes == 2
    # Sorted class names: 'ant' -> 0, 'cat' -> 1; check one image really carries its folder's label.
    images = np.concatenate([train.images, test.images])
    labels = np.concatenate([train.labels, test.labels])
    ant0 = np.asarray(Image.open(tmp_path / "ant" / "0.png"))[..., None]
    (where,) = [i for i, im in enumerate(images) if np.array_equal(im, ant0)]
    assert labels[where] == 0
    assert sorted(labels.tolist()) == [0] * 10 + [1] * 10


def test_folder_flat_mixed_modes_unlabelled(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(9):
        _write(str(tmp_path / f"g{i}.png"), rng.integers(0, 256, (4, 4), dtype=np.uint8))
    _write(str(tmp_path / "c.jpg"), rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")
    data = load_images(f"folder:{tmp_path}", "train")
    assert data.images.shape == (10, 4, 4, 3) and data.labels is None and data.num_classes == 0


def test_image_source_is_one_image_in_both_splits(tmp_path):
    rng = np.random.default_rng(5)
    gray, rgb = rng.integers(0, 256, (6, 5), np.uint8), rng.integers(0, 256, (4, 7, 3), np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.pgm")
    _write(str(tmp_path / "c.png"), rgb)
    for split in ("train", "test"):
        data = load_images(f"image:{tmp_path / 'g.pgm'}", split)
        np.testing.assert_array_equal(data.images, gray[None, ..., None])
        assert data.labels is None and data.num_classes == 0
    np.testing.assert_array_equal(load_images(f"image:{tmp_path / 'c.png'}", "test").images,
                                  rgb[None])
    with pytest.raises(UserError, match="unknown split"):
        load_images(f"image:{tmp_path / 'c.png'}", "validation")


def test_image_source_missing_or_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"no such file; give 'image:' the path of an existing"):
        load_images(f"image:{tmp_path / 'none.png'}", "train")
    with pytest.raises(UserError, match=r"no such file"):
        load_images(f"image:{tmp_path}", "train")  # a directory
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"cannot read image .*bad\.png .*give 'image:' a"):
        load_images(f"image:{tmp_path / 'bad.png'}", "train")


def test_folder_size_mismatch_names_file(tmp_path):
    _write(str(tmp_path / "a.png"), np.zeros((4, 4), np.uint8))
    _write(str(tmp_path / "b.png"), np.zeros((5, 4), np.uint8))
    with pytest.raises(UserError, match=r"b\.png is 4x5 .*4x4.*resize"):
        load_images(f"folder:{tmp_path}", "train")


def test_npz_uint8_and_float(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (20, 3, 3), dtype=np.uint8)
    labels = np.arange(20) % 4
    np.savez(tmp_path / "u.npz", images=images, labels=labels)
    np.savez(tmp_path / "f.npz", images=images.astype(np.float64) / 255.0)
    u_train = load_images(f"npz:{tmp_path / 'u.npz'}", "train")
    u_test = load_images(f"npz:{tmp_path / 'u.npz'}", "test")
    f_train = load_images(f"npz:{tmp_path / 'f.npz'}", "train")
    assert u_train.images.shape == (18, 3, 3, 1) and u_test.images.shape == (2, 3, 3, 1)
    assert u_train.labels.dtype == np.int32 and u_train.num_classes == 4
    np.testing.assert_array_equal(f_train.images, u_train.images)  # same split, exact round trip
    assert f_train.labels is None and f_train.num_classes == 0


def test_npz_explicit_splits(tmp_path):
    np.savez(
        tmp_path / "s.npz",
        train_images=np.zeros((5, 2, 2, 3), np.uint8),
        train_labels=np.array([0, 1, 0, 1, 0]),
        test_images=np.ones((3, 2, 2, 3), np.uint8),
        test_labels=np.array([0, 2, 0]),
    )
    test = load_images(f"npz:{tmp_path / 's.npz'}", "test")
    assert test.images.shape == (3, 2, 2, 3) and test.images.max() == 1
    assert test.num_classes == 3  # counted over all splits
    with pytest.raises(UserError, match=r"\['test', 'train'\]"):
        load_images(f"npz:{tmp_path / 's.npz'}", "valid")


def test_a_file_that_is_not_npz_is_one_plain_line(tmp_path):
    (tmp_path / "x.npz").write_text("not an archive")
    with pytest.raises(UserError) as info:
        load_images(f"npz:{tmp_path / 'x.npz'}", "train")
    assert str(info.value).endswith("is not a NumPy .npz archive; write it with "
                                    "np.savez(path, images=...)")


def test_npz_extras_travel_with_their_images(tmp_path):
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)
    condition = images[..., [0, 0, 0]] + 100  # a paired image per example
    np.savez(tmp_path / "p.npz", images=images, condition=condition, masks=images > 4)
    train = load_images(f"npz:{tmp_path / 'p.npz'}", "train")
    assert sorted(train.extras) == ["condition", "masks"]
    np.testing.assert_array_equal(train.extras["condition"], train.images[..., [0, 0, 0]] + 100)
    np.testing.assert_array_equal(train.extras["masks"], train.images > 4)
    np.savez(tmp_path / "s.npz", train_images=images, train_condition=condition,
             test_images=images[:3], test_condition=condition[:3])
    assert load_images(f"npz:{tmp_path / 's.npz'}", "test").extras["condition"].shape == \
        (3, 2, 2, 3)
    for bad in (dict(mask=images), dict(condition=condition[:4])):
        np.savez(tmp_path / "bad.npz", images=images, **bad)
        with pytest.raises(UserError, match="one row per image"):
            load_images(f"npz:{tmp_path / 'bad.npz'}", "train")


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((4, 2, 2), np.int64), "dtype int64"),
        (np.full((4, 2, 2), 2.0), r"outside \[0, 1\]"),
        (np.zeros((4, 2, 2, 2), np.uint8), "shape"),
    ],
)
def test_npz_rejects_bad_images(tmp_path, images, match):
    np.savez(tmp_path / "bad.npz", images=images)
    with pytest.raises(UserError, match=match):
        load_images(f"npz:{tmp_path / 'bad.npz'}", "train")


def test_unknown_name_fails_fast():
    start = time.perf_counter()
    with pytest.raises(UserError, match="unknown dataset 'not_a_dataset'.*digits"):
        load_images("not_a_dataset", "train", data_dir=TFDS_DIR)
    assert time.perf_counter() - start < 5


def test_missing_tfds_dataset_fails_fast_without_download(tmp_path):
    start = time.perf_counter()
    with pytest.raises(UserError, match="'fashion_mnist' is not in TFDS data dir"):
        load_images("fashion_mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    assert os.listdir(tmp_path) == []  # no download attempt left files behind


@needs_mnist
def test_mnist_test_split_and_unknown_split():
    data = load_images("mnist", "test", data_dir=TFDS_DIR)
    assert data.images.shape == (10000, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.labels.shape == (10000,) and data.labels.dtype == np.int32
    assert data.num_classes == 10 and set(np.unique(data.labels)) == set(range(10))
    with pytest.raises(UserError, match=r"\['train', 'test'\]"):
        load_images("mnist", "validation", data_dir=TFDS_DIR)


@needs_mnist
def test_cache_round_trip_skips_tfds(tmp_path, monkeypatch):
    first = load_images("mnist", "test[:500]", data_dir=TFDS_DIR, cache_dir=str(tmp_path))
    assert os.listdir(tmp_path) == ["mnist_test_500_.npz"]

    def no_tfds(*args, **kwargs):
        raise AssertionError("TFDS was read although a cache exists")

    monkeypatch.setattr(sources, "_load_tfds", no_tfds)
    second = load_images("mnist", "test[:500]", data_dir=TFDS_DIR, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.num_classes == first.num_classes == 10
