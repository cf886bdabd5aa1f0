"""pix2pix: the PatchGAN's patches, the U-Net's skips, the loss terms apart, the paired tasks
and the paired folder source, SSIM."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import config as config_lib, models, presets
from jaxgen.data import pipeline, sources, tasks
from jaxgen.errors import UserError
from jaxgen.metrics import ssim
from jaxgen.metrics.ssim import gaussian_window
from jaxgen.models import base
from jaxgen.nn.pix2pix import PatchGAN, UNet, patch_grid, patch_receptive_field


def test_patchgan_scores_each_patch_from_its_receptive_field_alone():
    side, layers = 24, 1
    cond, image = jnp.ones((2, side, side, 1)), jax.random.normal(jax.random.key(0),
                                                                   (2, side, side, 3))
    net = PatchGAN(4, layers)
    params = net.init(jax.random.key(1), cond, image)
    scores = net.apply(params, cond, image)
    grid = patch_grid(side, layers)
    chex.assert_shape(scores, (2, grid, grid))
    centre = grid // 2
    grad = jax.jit(jax.grad(lambda x: net.apply(params, cond, x)[0, centre, centre]))(image)
    rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
    assert not np.abs(np.asarray(grad[1])).any()  # the other image's scores are its own
    assert 0 < rows.min() and rows.max() < side - 1 and 0 < cols.min() and cols.max() < side - 1
    rf = patch_receptive_field(layers)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (rf, rf) == (16, 16)
    assert patch_receptive_field(3) == 70  # the paper's, at 256x256


def test_unet_passes_a_one_pixel_impulse_to_the_same_place_through_its_skips():
    """Two levels down to 2x2 and back, with the output layer's reading of the decoder
    silenced: what is left of the output comes through the outermost skip, so an impulse at
    one input pixel reaches the output there and only within a conv's reach of it."""
    net = UNet(4, 2, 1)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 2))
    params = jax.jit(net.init)({"params": jax.random.key(1), "dropout": jax.random.key(2)}, x)
    last = params["params"]["ConvTranspose_1"]  # reads [decoder (4 channels), skip (4)]
    last["kernel"] = last["kernel"].at[:, :, :4].set(0.0)
    out = lambda v: net.apply(params, v, rngs={"dropout": jax.random.key(3)})
    impulse = jnp.zeros_like(x).at[0, 4, 3, 0].set(1.0)
    y, response = jax.jit(lambda v, t: jax.jvp(out, (v,), (t,)))(x, impulse)
    chex.assert_shape(y, (2, 8, 8, 1))
    response = np.abs(np.asarray(response[..., 0]))
    assert response[0, 4, 3] > 0
    near = np.zeros_like(response, bool)
    near[0, 1:8, 0:7] = True  # a 4x4 stride-2 conv and its transpose reach 3 pixels
    assert not response[~near].any()


def test_the_l1_and_cgan_terms_are_logged_apart_and_weighted_in_g_loss():
    rng = np.random.default_rng(0)
    data = tasks.apply_task("inpaint", sources.ImageData(
        rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8), None, 0), "train", "test")
    batch = pipeline.example_batch(data, 4)
    c = presets.pix2pix_config("digits", "inpaint", "smoke")
    c.model.update(g_width=4, d_width=4, depth=1, d_layers=0)
    family = models.make(c, base.DataSpec((8, 8, 1), 0, (("condition", (8, 8, 2),
                                                                    "|u1"),)))
    state = jax.jit(family.init)(jax.random.key(0), batch)
    _, metrics = jax.jit(family.train_step)(state, batch, jax.random.key(1))
    assert {"g_gan", "l1", "d_real", "d_fake"} <= set(metrics)
    assert 0 < metrics["l1"] < 1 and metrics["g_gan"] > 0
    np.testing.assert_allclose(metrics["g_loss"], metrics["g_gan"] + 100 * 2 * metrics["l1"],
                               rtol=1e-5)


def test_inpaint_keeps_the_known_pixels_exact_and_the_mask_in_the_batch():
    images = np.random.default_rng(0).integers(0, 256, (50, 12, 16, 3), dtype=np.uint8)
    data = tasks.apply_task("inpaint", sources.ImageData(images, None, 0), "train", "test")
    batch = next(pipeline.TrainIterator(data, 10, seed=0))
    hole, cond, image = batch["hole"], batch["condition"], batch["image"]
    chex.assert_shape([hole, cond], [(10, 12, 16, 1), (10, 12, 16, 4)])
    np.testing.assert_array_equal(cond[..., :3], np.where(hole, 0, image))
    np.testing.assert_array_equal(cond[..., 3:], 255 * hole)
    rows, cols = hole[..., 0].any(2).sum(1), hole[..., 0].any(1).sum(1)
    assert np.all((3 <= rows) & (rows <= 6) & (4 <= cols) & (cols <= 8))  # 1/4 to 1/2 a side
    assert hole.sum() == (rows * cols).sum()  # boxes
    last = list(pipeline.eval_batches(data, 32))[-1]  # the padding mask is a key of its own
    assert last["mask"].sum() == 50 - 32 and last["hole"].shape == (32, 12, 16, 1)


def test_colorize_and_edges():
    flat = np.full((1, 6, 6, 3), 90, np.uint8)
    data = sources.ImageData(flat, None, 0)
    np.testing.assert_array_equal(tasks.apply_task("colorize", data, "train", "x")
                                  .extras["condition"], 90)
    assert not tasks.apply_task("edges", data, "train", "x").extras["condition"].any()
    step = np.zeros((1, 6, 6, 1), np.uint8)
    step[:, :, 3:] = 255  # a unit step: the full edge value beside it, none away from it
    edges = tasks.sobel_edges(step)[0, :, :, 0]
    np.testing.assert_array_equal(edges[:, [2, 3]], 255)
    np.testing.assert_array_equal(edges[:, [0, 5]], 0)
    with pytest.raises(UserError, match="colorize turns colour images gray"):
        tasks.apply_task("colorize", sources.ImageData(step, None, 0), "train", "mnist")


def test_the_paired_folder_source_splits_a_b_and_refuses_an_odd_width(tmp_path):
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 256, (20, 6, 10, 3), dtype=np.uint8)
    (tmp_path / "pairs").mkdir()
    for i, pair in enumerate(pairs):
        Image.fromarray(pair).save(tmp_path / "pairs" / f"{i:02d}.png")
    data = tasks.apply_task("paired", sources.load_images(f"folder:{tmp_path}/pairs", "train"),
                            "train", "folder")
    order = [int(np.flatnonzero((pairs == im[None]).all((1, 2, 3)))[0]) for im in
             np.concatenate([data.extras["condition"], data.images], axis=2)]
    np.testing.assert_array_equal(data.extras["condition"], pairs[order, :, :5])
    np.testing.assert_array_equal(data.images, pairs[order, :, 5:])
    odd = sources.ImageData(pairs[:, :, :9], None, 0)
    with pytest.raises(UserError, match="9 pixels wide: crop or pad them to an even width"):
        tasks.apply_task("paired", odd, "train", "folder:pairs")


def test_ssim_is_one_for_equal_images_and_the_luminance_term_for_flat_ones():
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    np.testing.assert_allclose(jax.jit(ssim)(x, x), 1.0, rtol=1e-5)
    a, b, c1 = 0.2, 0.7, 0.01**2  # flat: no variance, so SSIM is the luminance term
    got = jax.jit(ssim)(jnp.full((1, 16, 16, 1), a), jnp.full((1, 16, 16, 1), b))
    # float32 variances of flat windows are ~1e-8, not 0: a relative 1e-4 off here
    np.testing.assert_allclose(got, (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-3)


def test_ssim_equals_its_definition_window_by_window():
    x, y = np.random.default_rng(0).random((2, 1, 13, 12, 1))
    w = np.asarray(gaussian_window(11, 1.5))
    w2 = np.outer(w, w)
    c1, c2, values = 0.01**2, 0.03**2, []
    for i in range(3):
        for j in range(2):
            px, py = x[0, i:i + 11, j:j + 11, 0], y[0, i:i + 11, j:j + 11, 0]
            mx, my = (w2 * px).sum(), (w2 * py).sum()
            vx, vy = (w2 * (px - mx) ** 2).sum(), (w2 * (py - my) ** 2).sum()
            cov = (w2 * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2)
                          / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    np.testing.assert_allclose(jax.jit(ssim)(jnp.asarray(x), jnp.asarray(y)), [np.mean(values)],
                               rtol=1e-4)


def test_a_resume_with_another_task_is_refused_and_a_config_saved_before_data_task_is_not():
    saved = presets.pix2pix_config("cifar10", "colorize", "smoke")
    now = presets.pix2pix_config("cifar10", "inpaint", "smoke")
    with pytest.raises(UserError, match="data.task differs: data.task saved 'colorize', now "
                                        "'inpaint'"):
        config_lib.check_resumable(config_lib.to_json(saved), now, "w")
    del saved.data["task"]  # as written before the key existed
    config_lib.check_resumable(config_lib.to_json(saved), now, "w")
