"""VQ-VAE, VQ-VAE-2 and their prior: quantizer maths, the train step, the conditioned prior net."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import models
from jaxgen.config import base_config
from jaxgen.errors import UserError
from jaxgen.models import vqprior, vqvae
from jaxgen.models.base import DataSpec
from jaxgen.nn import vq
from jaxgen.nn.masked import GatedPixelCNN


def vq_config(**model) -> ml_collections.ConfigDict:
    c = base_config()
    c.data.space = "symmetric"
    c.model = ml_collections.ConfigDict(dict(
        family="vqvae", levels=1, features=8, hidden=4, blocks=1, num_codes=8, code_dim=3,
        beta=0.25, codebook_decay=0.9, codebook_eps=1e-5, dead_count=0.03) | model)
    return c


def images(n: int, shape: tuple[int, int, int], seed: int = 0) -> dict:
    """Flat images of random colours: learnable by a tiny VQ-VAE in a few dozen steps."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (n, 1, 1, shape[-1]))
    return {"image": jnp.asarray(np.broadcast_to(colours, (n,) + shape), jnp.uint8),
            "label": jnp.zeros(n, jnp.int32)}


def test_nearest_codes_is_the_brute_force_argmin():
    z = jax.random.normal(jax.random.key(0), (50, 4))
    e = jax.random.normal(jax.random.key(1), (7, 4))
    brute = np.argmin(((np.asarray(z)[:, None] - np.asarray(e)[None]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(vq.nearest_codes(z, e), brute)


def test_straight_through_passes_the_decoders_gradient_to_the_encoder_unchanged():
    z = jax.random.normal(jax.random.key(0), (6, 3))
    e = jax.random.normal(jax.random.key(1), (5, 3))
    z_q = e[vq.nearest_codes(z, e)]
    decoder_loss = lambda v: jnp.sum(jnp.sin(v) * jnp.arange(3.0))  # noqa: E731
    np.testing.assert_allclose(decoder_loss(vq.straight_through(z, z_q)), decoder_loss(z_q),
                               rtol=1e-6)
    through = jax.grad(lambda v: decoder_loss(vq.straight_through(v, z_q)))(z)
    np.testing.assert_allclose(through, jax.grad(decoder_loss)(z_q), rtol=1e-6)


def test_ema_codebook_update_equals_its_formula():
    rng = np.random.default_rng(0)
    k, d, decay, eps = 4, 3, 0.9, 1e-5
    book = vq.Codebook(jnp.asarray(rng.normal(size=(k, d)), jnp.float32),
                       jnp.asarray([2.0, 0.5, 1.0, 0.0]), jnp.asarray(rng.normal(size=(k, d)),
                                                                      jnp.float32))
    z = rng.normal(size=(10, d)).astype(np.float32)
    codes = np.array([0, 0, 1, 2, 2, 2, 0, 1, 0, 2])  # code 3 unused
    new = vq.ema_update(book, jnp.asarray(z), jnp.asarray(codes), decay, eps)
    for i in range(k):
        n_i = np.sum(codes == i)
        count = decay * float(book.counts[i]) + (1 - decay) * n_i
        total = sum(decay * float(book.counts[j]) + (1 - decay) * np.sum(codes == j)
                    for j in range(k))
        m_i = decay * np.asarray(book.sums[i]) + (1 - decay) * z[codes == i].sum(0)
        np.testing.assert_allclose(new.counts[i], count, rtol=1e-6)
        np.testing.assert_allclose(new.sums[i], m_i, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            new.embeddings[i], m_i / ((count + eps) / (total + k * eps) * total), rtol=1e-5)


def test_ema_codes_converge_to_the_means_of_their_clusters():
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]], np.float32)
    rng = np.random.default_rng(1)
    book = vq.codebook_from(jnp.asarray(centres + rng.normal(size=(3, 2)).astype(np.float32)))
    z = jnp.asarray(np.repeat(centres, 20, 0) + 0.1 * rng.normal(size=(60, 2)), jnp.float32)
    for _ in range(200):
        book = vq.ema_update(book, z, vq.nearest_codes(z, book.embeddings), 0.9, 1e-5)
    means = np.asarray(z).reshape(3, 20, 2).mean(1)
    np.testing.assert_allclose(book.embeddings, means, atol=1e-3)


def test_perplexity_is_k_for_uniform_use_and_1_for_one_code():
    np.testing.assert_allclose(vq.perplexity(jnp.arange(64) % 16, 16), 16.0, rtol=1e-5)
    np.testing.assert_allclose(vq.perplexity(jnp.full(64, 3), 16), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vq.perplexity(jnp.arange(64) % 4, 16), 4.0, rtol=1e-5)


def test_dead_codes_restart_at_batch_vectors_and_live_ones_stay():
    book = vq.Codebook(jnp.zeros((4, 2)), jnp.asarray([1.0, 0.01, 2.0, 0.0]), jnp.ones((4, 2)))
    z = jnp.asarray([[5.0, 6.0], [7.0, 8.0]])
    new, n = vq.reseed_dead(book, z, jax.random.key(0), 0.03)
    assert int(n) == 2
    for i in (1, 3):
        assert any(np.array_equal(new.embeddings[i], v) for v in np.asarray(z))
        np.testing.assert_array_equal(new.sums[i], new.embeddings[i])
        assert float(new.counts[i]) == 1.0
    for i in (0, 2):
        chex.assert_trees_all_equal(jax.tree.map(lambda a: a[i], new),
                                    jax.tree.map(lambda a: a[i], book))


@pytest.mark.parametrize("levels,shape", [(1, (8, 8, 1)), (2, (16, 16, 3))])
def test_train_step_shapes_updates_and_learning(levels, shape):
    config = vq_config(levels=levels)
    config.optim.learning_rate = 3e-3
    family = vqvae.make_family(config, DataSpec(shape, 10))
    batch = images(8, shape)
    state = jax.jit(family.init)(jax.random.key(0), batch)
    books = state.model_state["codebooks"]
    assert len(books) == levels
    for book in books:
        chex.assert_shape(book.embeddings, (8, 3))
    net = vq.vqvae_net(config.model, shape[-1])
    x = batch["image"].astype(jnp.float32) / 127.5 - 1
    _, codes, _ = net.apply(state.params, x, vq.embeddings_of(state.model_state),
                            method=vq.VQVAE.encode)
    assert [c.shape for c in codes] == [(8, shape[0] // 4 // 2**l, shape[1] // 4 // 2**l)
                                        for l in range(levels)]
    step = jax.jit(family.train_step)
    first, metrics = step(state, batch, jax.random.key(1))
    assert not np.allclose(first.model_state["codebooks"][0].counts, books[0].counts)
    assert jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                        first.params, state.params)).count(True) > 0
    state = first
    for i in range(60):
        state, later = step(state, batch, jax.random.key(2 + i))
    assert float(later["mse"]) < 0.5 * float(metrics["mse"])
    samples = jax.jit(family.sample)(state, jax.random.key(3), jnp.zeros(4, jnp.int32))
    chex.assert_shape(samples, (4,) + shape)
    assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0


def test_quantization_runs_top_down():
    """Level 0's vectors read the decoded codes of level 1: moving level 1's codebook moves them."""
    net = vq.vqvae_net(vq_config(levels=2).model, 3)
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
    books = [jax.random.normal(jax.random.key(i), (8, 3)) for i in (1, 2)]
    params = net.init(jax.random.key(3), x, books)
    z_e, _, _ = net.apply(params, x, books, method=vq.VQVAE.encode)
    moved, _, _ = net.apply(params, x, [books[0], books[1] + 1.0], method=vq.VQVAE.encode)
    np.testing.assert_array_equal(z_e[1], moved[1])  # the top level's own vectors stay
    assert not np.allclose(z_e[0], moved[0])


def test_train_step_reseeds_dead_codes_from_the_batch():
    config = vq_config(dead_count=1e9)  # every code counts as dead after the update
    family = vqvae.make_family(config, DataSpec((8, 8, 1), 10))
    batch = images(8, (8, 8, 1))
    state = jax.jit(family.init)(jax.random.key(0), batch)
    new, metrics = jax.jit(family.train_step)(state, batch, jax.random.key(1))
    assert float(metrics["reseeded_0"]) == 8
    net = vq.vqvae_net(config.model, 1)
    x = batch["image"].astype(jnp.float32) / 127.5 - 1
    z_e = net.apply(state.params, x, vq.embeddings_of(state.model_state),
                    method=vq.VQVAE.encode)[0][0].reshape(-1, 3)
    book = new.model_state["codebooks"][0]
    np.testing.assert_array_equal(book.counts, np.ones(8))
    gaps = np.abs(np.asarray(book.embeddings)[:, None] - np.asarray(z_e)[None]).max(-1).min(1)
    assert np.all(gaps < 1e-6), "every re-seeded code is one of the batch's encoder outputs"


def test_conditioned_gated_prior_is_causal_in_codes_and_reads_the_map_ahead():
    net = GatedPixelCNN(features=4, layers=2, out_hidden=8, num_outputs=5, colors=1)
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 3))
    cond = jax.random.normal(jax.random.key(1), (1, 4, 4, 2))
    params = net.init(jax.random.key(2), x, jnp.zeros(1, jnp.int32), False, cond)
    out = lambda a, c: net.apply(params, a, jnp.zeros(1, jnp.int32), False, c)[0]  # noqa: E731
    dx = np.asarray(jnp.any(jax.jacfwd(out, 0)(x, cond)[..., 0, :, :, :] != 0, (2, -1)))
    dc = np.asarray(jnp.any(jax.jacfwd(out, 1)(x, cond)[..., 0, :, :, :] != 0, (2, -1)))
    pos = np.arange(16).reshape(4, 4)
    earlier = pos[:, :, None, None] > pos[None, None]
    assert not np.any(dx & ~earlier), "a code's logits see its own or a later code"
    assert dc[0, 0, 1, 1], "the first position's logits see the conditioning map ahead"


@pytest.mark.parametrize("edit,needle", [
    (dict(levels=3), "multiples of 16"),
    (dict(levels=0), "at least 1"),
    (dict(num_codes=1), "num_codes"),
])
def test_bad_model_config_is_a_user_error(edit, needle):
    with pytest.raises(UserError, match=needle):
        vqvae.make_family(vq_config(**edit), DataSpec((8, 8, 1), 10))


def test_prior_refuses_a_non_positive_temperature():
    config = base_config()
    config.model = ml_collections.ConfigDict(dict(
        family="vqprior", first_stage="/nonexistent", features=4, layers=1, out_hidden=4,
        dropout=0.0, conditional=False, temperature=0.0))
    with pytest.raises(UserError, match="temperature must be positive"):
        vqprior.make_family(config, DataSpec((8, 8, 1), 10), {})


def test_non_pixel_space_and_parameter_ema_are_user_errors():
    config = vq_config()
    config.data.space = "binarize"
    with pytest.raises(UserError, match="data.space"):
        models.make(config, DataSpec((8, 8, 1), 10))
    config = vq_config()
    config.optim.ema_decay = 0.999
    with pytest.raises(UserError, match="ema_decay=0"):
        vqvae.make_family(config, DataSpec((8, 8, 1), 10))
