"""VQ-VAE (van den Oord et al. 2017) and VQ-VAE-2 (Razavi et al. 2019, model.levels = 2):
the first stage of a two-stage model, a discrete autoencoder trained by

    loss = ||x - decoder(z_q)||^2 + beta * sum over levels ||z_e - sg[z_q]||^2

(reconstruction as a Gaussian log-likelihood with fixed variance, and the commitment loss), with
straight-through gradients through the quantizer and EMA codebooks in model_state (see
jaxgen.nn.vq). The second stage, a PixelCNN prior over the codes, is the vqprior family.

Alone, the model samples each code independently from the codebook's usage frequencies (its
EMA counts): the baseline that the learned prior improves on.
"""
import jax
import jax.numpy as jnp

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn import vq

Array = jax.Array
DECLARATION = base.Declaration(
    model=dict(levels=1, features=128, hidden=32, blocks=2, num_codes=512, code_dim=64,
               beta=0.25, codebook_decay=0.99, codebook_eps=1e-5,
               dead_count=0.03),  # EMA count (vectors per step) below which a code is re-seeded
    spaces=("symmetric", "unit"), who="the VQ-VAE (squared error on pixels)",
    optim=dict(learning_rate=2e-4))


def check_model(m, spec: base.DataSpec, ema_decay: float) -> None:
    if m.levels < 1:
        raise UserError("model.levels must be at least 1 (2 for VQ-VAE-2)")
    f = 2 ** (m.levels + 1)
    if spec.shape[0] % f or spec.shape[1] % f:
        raise UserError(f"{m.levels} levels of codes halve the image side {m.levels + 1} times: "
                        f"H and W must be multiples of {f}, the images are "
                        f"{spec.shape[0]}x{spec.shape[1]}; use fewer model.levels")
    if m.num_codes < 2:
        raise UserError("model.num_codes must be at least 2")
    if ema_decay:
        raise UserError("the codebooks follow the trained encoder, not an average of it: set "
                        "optim.ema_decay=0 for the vqvae family")


def make_family(config, spec: base.DataSpec) -> base.Family:
    m, space = config.model, config.data.space
    check_model(m, spec, config.optim.ema_decay)
    net = vq.vqvae_net(m, spec.shape[-1])
    optimizer = base.make_optimizer(config.optim)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        """The codebooks start at random encoder outputs of the example batch, top level first
        (the vectors of a level depend on the codes above it)."""
        x = to_model_space(batch["image"], space)
        net_rng, *pick_rngs = jax.random.split(rng, m.levels + 1)
        books = [jax.random.normal(r, (m.num_codes, m.code_dim)) for r in pick_rngs]
        params = net.init(net_rng, x, books)
        for l in reversed(range(m.levels)):
            z = net.apply(params, x, books, method=vq.VQVAE.encode)[0][l].reshape(-1, m.code_dim)
            books[l] = vq.random_picks(z, m.num_codes, pick_rngs[l])
        model_state = {"codebooks": [vq.codebook_from(b) for b in books]}
        return base.new_state(params, optimizer, config.optim.ema_decay, model_state=model_state)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        x = to_model_space(batch["image"], space)
        embeddings = vq.embeddings_of(state.model_state)

        def loss_fn(params):
            recon, z_e, codes = net.apply(params, x, embeddings)
            mse = jnp.mean((recon - x) ** 2)
            commit = sum(jnp.mean((z - jax.lax.stop_gradient(e[c])) ** 2)
                         for z, e, c in zip(z_e, embeddings, codes))
            return mse + m.beta * commit, (commit, recon, z_e, codes)

        (loss, (commit, recon, z_e, codes)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        errors = losses.reconstruction_errors(to_unit(x, space), to_unit(recon, space))
        metrics = {"loss": loss, "commitment": commit, "mse": jnp.mean(errors["mse"])}
        books = []
        for l, (book, z, c) in enumerate(zip(state.model_state["codebooks"], z_e, codes)):
            z = jax.lax.stop_gradient(z).reshape(-1, m.code_dim)
            book = vq.ema_update(book, z, c.reshape(-1), m.codebook_decay, m.codebook_eps)
            book, reseeded = vq.reseed_dead(book, z, jax.random.fold_in(rng, l), m.dead_count)
            books.append(book)
            metrics[f"perplexity_{l}"] = vq.perplexity(c, m.num_codes)
            metrics[f"reseeded_{l}"] = reseeded.astype(jnp.float32)
        return state.replace(model_state={"codebooks": books}), metrics

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng
        x = to_model_space(batch["image"], space)
        recon, _, _ = net.apply(base.eval_params(state), x, vq.embeddings_of(state.model_state))
        return losses.reconstruction_errors(to_unit(x, space), to_unit(recon, space))

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        n = labels.shape[0]
        books = state.model_state["codebooks"]
        shapes = vq.code_shapes(m.levels, spec.shape)
        codes = [jax.random.categorical(r, jnp.log(jnp.maximum(b.counts, 1e-12)), shape=(n,) + s)
                 for r, b, s in zip(jax.random.split(rng, m.levels), books, shapes)]
        x = net.apply(base.eval_params(state), codes, vq.embeddings_of(state.model_state),
                      method=vq.VQVAE.decode_codes)
        return to_unit(x, space)

    @jax.jit
    def _reconstruct(state: base.TrainState, batch: base.Batch):
        x = to_model_space(batch["image"], space)
        recon, _, _ = net.apply(base.eval_params(state), x, vq.embeddings_of(state.model_state))
        return to_unit(x, space), to_unit(recon, space)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        del rng
        x, recon = jax.device_get(_reconstruct(state, batch))
        return {"reconstructions": viz.reconstructions(x, recon)}

    return base.Family(init, train_step, eval_step, sample, pictures)
