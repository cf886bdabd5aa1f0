"""GAN family: adversarial losses, penalties, the two-player step, architectures, the CLI."""
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import config as config_lib, losses, models, presets, train
from jaxgen.errors import UserError
from jaxgen.main import main
from jaxgen.models import base, gan
from jaxgen.nn import vq
from jaxgen.nn.gan_layers import minibatch_stddev, num_stages, spectral_norm

from test_cli import cfg

MNIST = base.DataSpec((28, 28, 1), 10)


def family_and_state(spec=MNIST, batch_size=16, seed=0, **model):
    c = presets.gan_config("mnist", "smoke")
    c.model.update(model)
    c.train.batch_size = batch_size
    fam = gan.make_family(c, spec)
    batch = fake_batch(spec, batch_size, seed)
    return c, fam, jax.jit(fam.init)(jax.random.key(seed), batch), batch


def nets(arch, width=16, depth=2, shape=(28, 28, 1), classes=0, **model):
    """G and D of `arch` as the family builds them (D's width and depth = G's)."""
    c = presets.gan_config("mnist", "smoke", arch=arch, g_width=width, d_width=width,
                              g_depth=depth, d_depth=depth, **model)
    return gan.networks(c.model, shape, classes, classes)


def fake_batch(spec, n, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.integers(0, 256, (n,) + spec.shape), jnp.uint8),
            "label": jnp.asarray(rng.integers(0, spec.num_classes, n), jnp.int32)}


def test_loss_values_at_known_points():
    zero, big = jnp.zeros(4), jnp.full(4, 30.0)
    log2 = math.log(2.0)
    assert losses.gan_d_loss(zero, zero, "minimax") == pytest.approx(2 * log2)
    assert losses.gan_d_loss(big, -big, "nonsaturating") == pytest.approx(0.0, abs=1e-6)
    assert losses.gan_g_loss(zero, "minimax") == pytest.approx(-log2)
    assert losses.gan_g_loss(zero, "nonsaturating") == pytest.approx(log2)
    # The nonsaturating loss keeps a gradient where the minimax one vanishes (D sure it's fake).
    g_mm = jax.grad(lambda f: losses.gan_g_loss(f, "minimax"))(-big)
    g_ns = jax.grad(lambda f: losses.gan_g_loss(f, "nonsaturating"))(-big)
    assert float(jnp.abs(g_mm).max()) < 1e-10 < float(jnp.abs(g_ns).min())
    real, fake = jnp.array([2.0, 0.5]), jnp.array([-3.0, 0.0])
    assert losses.gan_d_loss(real, fake, "wasserstein") == pytest.approx(-1.5 - 1.25)
    assert losses.gan_d_loss(real, fake, "hinge") == pytest.approx(0.25 + 0.5)
    assert losses.gan_g_loss(fake, "hinge") == pytest.approx(1.5)


class SmallCritic(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        return nn.Dense(1)(h)[:, 0]


def per_example_grad_norms(critic, x):
    """||grad_x D(x_i)|| one example at a time: the explicit computation the penalties batch."""
    one = jax.grad(lambda xi: critic(xi[None])[0])
    return jnp.stack([jnp.linalg.norm(one(xi).ravel()) for xi in x])


def test_gradient_penalty_equals_the_explicit_computation():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    real = jax.random.normal(k1, (6, 4, 4, 1))
    fake = jax.random.normal(k2, (6, 4, 4, 1))
    net = SmallCritic()
    params = net.init(k3, real)
    critic = lambda x: net.apply(params, x)
    eps = jax.random.uniform(k4, (6, 1, 1, 1))  # the draw gradient_penalty makes from k4
    norms = per_example_grad_norms(critic, eps * real + (1 - eps) * fake)
    expected = jnp.mean((norms - 1.0) ** 2)
    np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, k4), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.r1_penalty(critic, real),
                               jnp.mean(per_example_grad_norms(critic, real) ** 2), rtol=1e-5)


@pytest.mark.parametrize("n_critic", [1, 3])
def test_one_step_updates_both_players_and_d_counts_n_critic_updates(n_critic):
    _, fam, state, batch = family_and_state(batch_size=8 * n_critic, n_critic=n_critic)
    new, metrics = jax.jit(fam.train_step)(state, batch, jax.random.key(1))
    for player in ("g", "d"):
        changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                               state.params[player], new.params[player])
        assert all(jax.tree.leaves(changed)), player
    counts = {p: [int(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(new.opt_state[p])
                  if "count" in jax.tree_util.keystr(path)] for p in ("g", "d")}
    assert set(counts["d"]) == {n_critic} and set(counts["g"]) == {1}
    assert int(new.step) == 1 and float(metrics["skipped"]) == 0.0
    for scores in fam.eval_step(new, batch, jax.random.key(2)).values():  # one per image
        chex.assert_shape(scores, (8 * n_critic,))
    # The EMA generator moved from the initial weights toward the new ones.
    ema, old, g = (jax.tree.leaves(t)[0] for t in
                   (new.ema_params["g"], state.params["g"], new.params["g"]))
    np.testing.assert_allclose(ema, 0.999 * old + 0.001 * g, rtol=1e-5, atol=1e-7)


def test_weight_clipping_keeps_every_critic_weight_in_range():
    c = 0.01
    _, fam, state, batch = family_and_state(batch_size=16, loss="wasserstein", clip=c,
                                            n_critic=2)
    state, _ = jax.jit(fam.train_step)(state, batch, jax.random.key(1))
    leaves = jax.tree.leaves(state.params["d"])
    assert all(float(jnp.abs(w).max()) <= c for w in leaves)
    assert any(float(jnp.abs(w).max()) == pytest.approx(c) for w in leaves)  # clipping bit


def train_on_one_batch(c, steps: int, metric: str):
    """Trains config c's family on a fixed fake batch: (family, first state, last state, batch,
    the metric at each step)."""
    fam = gan.make_family(c, MNIST)
    batch = fake_batch(MNIST, 16)
    first = state = jax.jit(fam.init)(jax.random.key(0), batch)
    step, values = jax.jit(fam.train_step), []
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.key(i))
        values.append(float(metrics[metric]))
    return fam, first, state, batch, values


def test_discriminator_loss_falls_against_a_fixed_generator():
    c = presets.gan_config("mnist", "smoke", arch="mlp")
    c.optim.learning_rate = 0.0  # G frozen
    c.optim_d.learning_rate = 1e-3
    _, first, state, _, d_losses = train_on_one_batch(c, 40, "d_loss")
    chex.assert_trees_all_equal(first.params["g"], state.params["g"])
    assert np.mean(d_losses[-5:]) < 0.5 * np.mean(d_losses[:5])


def test_infogan_codes_become_readable_from_the_images_only_through_the_info_term():
    """Q's cross-entropy starts at log K; the info term drives it down by shaping G and Q
    together. Without it, G has no reason to show its code, and Q cannot guess it."""
    k, final = 4, {}
    for weight in (0.0, 1.0):
        c = presets.gan_config("mnist", "smoke", arch="mlp", info_codes=k, info_weight=weight)
        c.optim.learning_rate = c.optim_d.learning_rate = 2e-3
        fam, _, state, batch, ce = train_on_one_batch(c, 90, "info_ce")
        assert abs(np.mean(ce[:3]) - math.log(k)) < 0.2, weight
        final[weight] = np.mean(ce[-10:])
    assert final[1.0] < 0.7 * math.log(k) and final[0.0] > 0.9 * math.log(k), final
    images = fam.pictures(state, batch, jax.random.key(0))["codes"]  # a row per code, 10 z's
    assert images.shape[:2] == (k * 29 + 1, 10 * 29 + 1)


def test_clusters_follow_the_real_images_and_their_frequencies():
    """Online k-means: from centroids near the middle, a batch of 12 black and 4 white images
    pulls one centroid towards black and the other towards white at the EMA's rate, and their
    counts (the odds of each cluster as a fake label) towards 12 and 4; G draws one grid row per
    cluster."""
    c = presets.gan_config("mnist", "smoke", arch="mlp", clusters=2)
    fam = gan.make_family(c, MNIST)
    batch = {"image": jnp.asarray(np.repeat([0, 255], [12, 4]).astype(np.uint8)[:, None, None, None]
                                  * np.ones((1, 28, 28, 1), np.uint8)),
             "label": jnp.zeros(16, jnp.int32)}  # never read
    state = jax.jit(fam.init)(jax.random.key(0), batch)
    chex.assert_shape(state.model_state.embeddings, (2, 28 * 28))
    start = jnp.array([-0.2, 0.2])
    state = state.replace(model_state=vq.codebook_from(jnp.repeat(start[:, None], 28 * 28, 1)))
    step, n = jax.jit(fam.train_step), 100
    for i in range(n):
        state, metrics = step(state, batch, jax.random.key(i))
    kept = gan.CLUSTER_DECAY ** n  # the weight left on the starting centroids, counted once
    counts = kept + (1 - kept) * np.array([12.0, 4.0])
    book = state.model_state
    np.testing.assert_allclose(book.counts, counts, rtol=1e-4)
    np.testing.assert_allclose(book.embeddings, np.repeat(
        ((kept * start + (1 - kept) * np.array([-12.0, 4.0])) / counts)[:, None], 28 * 28, 1),
        rtol=1e-3)
    # Every step labels 12 images 0 and 4 images 1: perplexity exp(H(3/4, 1/4)).
    assert float(metrics["cluster_perplexity"]) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-4)
    assert float(metrics["reseeded"]) == 0.0
    assert fam.pictures(state, batch, jax.random.key(0))["clusters"].shape[:2] == (2 * 29 + 1,
                                                                                   10 * 29 + 1)


def test_a_step_with_non_finite_values_is_skipped_not_applied():
    _, fam, state, batch = family_and_state()
    g = state.params["g"]
    broken = state.replace(params=dict(state.params, g=jax.tree.map(
        lambda w: w.at[(0,) * w.ndim].set(jnp.nan), g)))
    new, metrics = jax.jit(fam.train_step)(broken, batch, jax.random.key(1))
    assert float(metrics["skipped"]) == 1.0
    assert all(np.isfinite(float(v)) for v in metrics.values())
    chex.assert_trees_all_equal(jax.device_get(new), jax.device_get(broken))


@pytest.mark.parametrize("arch", gan.ARCHS)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_architectures_fit_mnist_and_cifar_shapes(arch, shape):
    z, labels = jnp.ones((4, 8)), jnp.arange(4) % 10
    g, d = nets(arch, shape=shape, classes=10)
    images, _ = g.init_with_output(jax.random.key(0), z, labels)
    chex.assert_shape(images, (4,) + shape)
    assert float(jnp.abs(images).max()) <= 1.0
    params = d.init(jax.random.key(1), images, labels)
    out, code_logits = d.apply(params, images, labels)
    chex.assert_shape(out, (4,))
    assert code_logits is None
    assert not np.allclose(out, d.apply(params, images, (labels + 1) % 10)[0])  # projection


def test_minibatch_stddev_is_the_group_spread():
    x = jax.random.normal(jax.random.key(0), (8, 5, 5, 3))
    out = minibatch_stddev(x, 4)
    chex.assert_shape(out, (8, 5, 5, 4))
    np.testing.assert_array_equal(out[..., :3], x)
    for g in range(2):  # the population std over the group, averaged over positions and channels
        expected = np.mean(np.std(np.asarray(x[4 * g:4 * g + 4]), axis=0))
        np.testing.assert_allclose(out[4 * g:4 * g + 4, ..., 3], expected, rtol=1e-5)


@pytest.mark.parametrize("arch", gan.ARCHS)
def test_a_minibatch_stddev_critic_lets_an_image_move_the_scores_of_its_own_group_only(arch):
    images = jnp.tanh(jax.random.normal(jax.random.key(1), (8, 8, 8, 1)))
    labels = jnp.zeros(8, jnp.int32)
    for mbstd in (0, 4):
        d = nets(arch, 8, shape=(8, 8, 1), d_mbstd=mbstd)[1]
        params = d.init(jax.random.key(2), images, labels)
        before = d.apply(params, images, labels)[0]
        after = d.apply(params, images.at[5].set(-images[5]), labels)[0]  # in the second group
        group = slice(4, 8) if mbstd else slice(5, 6)
        np.testing.assert_array_equal(np.delete(after, group), np.delete(before, group))
        assert not np.any(np.isclose(after[group], before[group])), (arch, mbstd)


def test_spectral_norm_is_the_top_singular_value_and_has_its_gradient():
    top = lambda w: jnp.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0]
    for shape in ((4, 4, 6, 10), (3, 40)):  # a conv kernel; a wide embedding (Gram of the rows)
        w = jax.random.normal(jax.random.key(0), shape)
        np.testing.assert_allclose(spectral_norm(w), top(w), rtol=1e-5)
        np.testing.assert_allclose(jax.grad(spectral_norm)(w), jax.grad(top)(w), atol=1e-5)


@pytest.mark.parametrize("arch", gan.ARCHS)
def test_a_spectrally_normed_critic_ignores_the_scale_of_every_weight(arch):
    images = jnp.tanh(jax.random.normal(jax.random.key(1), (4, 16, 16, 1)))
    labels = jnp.arange(4) % 3
    for normed in (False, True):
        d = nets(arch, 8, shape=(16, 16, 1), classes=3, d_spectral_norm=normed)[1]
        params = d.init(jax.random.key(2), images, labels)
        scaled = jax.tree_util.tree_map_with_path(  # kernels and the projection embedding
            lambda path, p: 5 * p if path[-1].key in ("kernel", "embedding") else p, params)
        same = np.allclose(d.apply(scaled, images, labels)[0], d.apply(params, images, labels)[0],
                           rtol=1e-4, atol=1e-5)
        assert same == normed, (arch, normed)


def test_a_spectrally_normed_mlp_critic_is_1_lipschitz():
    x = jax.random.normal(jax.random.key(1), (16, 8, 8, 1))
    for normed in (False, True):
        d = nets("mlp", 64, 3, shape=(8, 8, 1), d_spectral_norm=normed)[1]
        params = jax.tree.map(lambda p: 3 * p, d.init(jax.random.key(2), x, jnp.zeros(16, int)))
        norms = per_example_grad_norms(lambda v: d.apply(params, v, jnp.zeros(len(v), int))[0], x)
        assert (np.max(norms) <= 1 + 1e-5) == normed, (normed, np.max(norms))


def test_subpixel_and_transposed_upsampling_give_the_same_shapes():
    z, labels = jnp.ones((2, 8)), jnp.zeros(2, jnp.int32)
    for up in ("subpixel", "transposed"):
        images, _ = nets("dcgan", shape=(32, 32, 3), upsample=up)[0].init_with_output(
            jax.random.key(0), z, labels)
        chex.assert_shape(images, (2, 32, 32, 3))
    assert (num_stages(28), num_stages(32), num_stages(64)) == (2, 3, 4)


@pytest.mark.parametrize("change, message", [
    ({"model.loss": "softmax"}, "unknown model.loss"),
    ({"model.penalty": "l2"}, "unknown model.penalty"),
    ({"model.arch": "vit"}, "unknown model.arch"),
    ({"model.n_critic": 3}, "multiple of model.n_critic"),
    ({"data.space": "unit"}, "data.space=symmetric"),
    ({"model.d_mbstd": 4, "model.penalty": "gp"}, "model.d_mbstd=0 or model.penalty=none"),
    ({"model.d_mbstd": 3}, r"model.d_mbstd \(3\) must divide the per-update batch \(16\)"),
    ({"model.d_mbstd": 4, "eval.batch_size": 18},
     r"model.d_mbstd \(4\) must divide the eval.batch_size \(18\)"),
    ({"model.penalty_every": 0}, "at least 1, not 0"),
    ({"model.upsample": "bilinear"}, "unknown model.upsample"),
    ({"model.info_codes": 1}, "0 \\(none\\) or at least 2"),
    ({"model.info_codes": 10, "model.conditional": True},
     "model.conditional and model.info_codes each set G's label input: keep one"),
    ({"model.clusters": 10, "model.info_codes": 10}, "model.info_codes and model.clusters each"),
    ({"model.clusters": 1}, "clusters of the real images: 0 \\(none\\) or at least 2, not 1"),
    ({"model.info_weight": 1.0}, "set model.info_codes"),
])
def test_bad_gan_configs_are_refused_with_what_to_do(change, message):
    c = presets.gan_config("mnist", "smoke")
    for key, value in change.items():
        config_lib.override(c, key, str(value))
    with pytest.raises(UserError, match=message):
        models.make(c, MNIST)


def test_conditional_samples_come_in_class_blocks_one_grid_row_per_class(tmp_path, capsys):
    code = main(["--config", cfg("cgan_mnist.py:smoke"), "--workdir", str(tmp_path),
                 "--config.eval.sample_grid=20"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "samples" / "interpolations_000006.png").exists()
    exp = train.Experiment(config_lib.load(cfg("cgan_mnist.py:smoke")), str(tmp_path))
    try:
        assert exp.family.conditional
        state = exp.restore(required=True)[0]
        images, labels = exp.outputs.generate(state, 20)
        np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))
        chex.assert_shape(images, (20, 28, 28, 1))
        # The grid is 10 rows of 2 (28-pixel cells, 1-pixel gaps): row i holds class i.
        grid = np.asarray(Image.open(tmp_path / "samples" / "samples_000006.png"))
        assert grid.shape[:2] == (10 * 29 + 1, 2 * 29 + 1)
    finally:
        exp.close()
