"""Tests for jaxgen.viz: grids, PNG output, scatter maps, latent grids and interpolation."""

import numpy as np
import pytest
from PIL import Image

from jaxgen import viz


def test_to_uint8_clips_and_rounds():
    x = np.array([-0.5, 0.0, 0.5, 1.0, 1.7, np.nan])
    np.testing.assert_array_equal(viz.to_uint8(x), [0, 0, 128, 255, 255, 0])
    assert viz.to_uint8(x).dtype == np.uint8


@pytest.mark.parametrize("n, ncol, rows, cols", [(10, None, 3, 4), (16, None, 4, 4), (5, 5, 1, 5), (1, None, 1, 1)])
def test_grid_shape_arithmetic(n, ncol, rows, cols):
    h, w, pad = 3, 5, 2
    g = viz.grid(np.ones((n, h, w, 3)), ncol=ncol, pad=pad)
    assert g.shape == (rows * (h + pad) + pad, cols * (w + pad) + pad, 3) and g.dtype == np.uint8


def test_grid_places_images_and_pads_gray():
    images = np.stack([np.full((2, 2, 1), v) for v in (0.0, 1.0, 0.0)])
    g = viz.grid(images, ncol=2, pad=1)
    assert g[0, 0, 0] == 128 and g[1, 1, 0] == 0 and g[1, 4, 0] == 255
    assert np.all(g[4:6, 4:6] == 128)  # unused last cell stays gray


def test_montage_lays_out_rows_of_any_sizes_top_aligned():
    small, big = np.zeros((2, 3, 1)), np.ones((4, 5, 1))
    m = viz.montage([[small, small], [big]], pad=1)
    assert m.shape == (1 + 2 + 1 + 4 + 1, 1 + 3 + 1 + 3 + 1, 1) and m.dtype == np.uint8
    assert np.all(m[1:3, 1:4] == 0) and np.all(m[1:3, 5:8] == 0)
    assert np.all(m[4:8, 1:6] == 255)
    assert np.all(m[3] == 128) and np.all(m[4:8, 6:] == 128)  # padding and the unused right


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_grid_writes_readable_png(tmp_path, channels, mode):
    path = tmp_path / "nested" / "samples.png"
    viz.save_grid(np.random.default_rng(0).random((16, 8, 8, channels)), str(path), min_size=256)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == mode
        # grid is 37x37; the smallest integer scale reaching 256 is 7.
        assert im.size == (37 * 7, 37 * 7)
    assert [p.name for p in path.parent.iterdir()] == ["samples.png"]  # no temp files left


def test_save_image_nearest_upscaling(tmp_path):
    image = np.array([[0, 255], [255, 0]], np.uint8)
    viz.save_image(image, str(tmp_path / "x.png"), scale=3)
    back = np.asarray(Image.open(tmp_path / "x.png"))
    np.testing.assert_array_equal(back, np.kron(image, np.ones((3, 3), np.uint8)))


def test_scatter_colours_and_places_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal([-3.0, -3.0], 0.3, (200, 2))
    b = rng.normal([3.0, 3.0], 0.3, (200, 2))
    img = viz.scatter(np.concatenate([a, b]), np.repeat([0, 1], 200), size=256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    for label, expect_left_bottom in ((0, True), (1, False)):
        ys, xs = np.nonzero(np.all(img == viz.PALETTE[label], axis=-1))
        assert len(xs) > 50
        assert (xs.mean() < 128) == expect_left_bottom and (ys.mean() > 128) == expect_left_bottom
    assert np.all(img[0, 0] == 255)  # white background


def test_scatter_unlabelled_is_black_with_axes():
    img = viz.scatter(np.array([[-1.0, -1.0], [1.0, 1.0], [0.5, -0.5]]), None, size=64)
    assert np.any(np.all(img == 0, axis=-1))
    assert np.any(np.all(img == viz.AXIS_COLOUR, axis=-1))


def test_manifold_points_symmetric_quantile_grid():
    p = viz.manifold_points(5)
    assert p.shape == (25, 2)
    np.testing.assert_allclose(p, -p[::-1], atol=1e-12)  # symmetric around 0
    np.testing.assert_allclose(p[:5, 0], p[5:10, 0])  # first coordinate varies along columns
    assert np.all(p[:5, 1] == p[0, 1]) and p[0, 1] > p[5, 1]
    np.testing.assert_allclose(p[0, 0], -1.6448536269514729)  # Phi^-1(0.05)


def test_interpolate_linear_endpoints_exact():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    out = viz.interpolate(z0, z1, steps=5)
    assert out.shape == (15, 4) and out.dtype == np.float32
    blocks = out.reshape(3, 5, 4)
    np.testing.assert_array_equal(blocks[:, 0], z0)
    np.testing.assert_array_equal(blocks[:, -1], z1)
    np.testing.assert_allclose(blocks[:, 2], (z0 + z1) / 2, rtol=1e-6)


def test_interpolate_slerp_keeps_norm():
    rng = np.random.default_rng(1)
    z0, z1 = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    z1 *= np.linalg.norm(z0, axis=1, keepdims=True) / np.linalg.norm(z1, axis=1, keepdims=True)
    out = viz.interpolate(z0, z1, steps=7, spherical=True).reshape(4, 7, 8)
    np.testing.assert_array_equal(out[:, 0], z0)
    np.testing.assert_array_equal(out[:, -1], z1)
    np.testing.assert_allclose(
        np.linalg.norm(out, axis=-1), np.repeat(np.linalg.norm(z0, axis=1)[:, None], 7, 1), rtol=1e-10
    )
    parallel = viz.interpolate(z0[:1], 2 * z0[:1], steps=3, spherical=True)
    np.testing.assert_allclose(parallel[1], 1.5 * z0[0])  # linear fallback, no NaN
