"""Deterministic autoencoder (MLP or conv) trained by mean squared error on [0, 1] pixels.

It has no prior, so sampling decodes draws from a diagonal Gaussian fitted to the training codes
(a running average kept in model_state): a baseline against which the VAE's prior is compared.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space
from jaxgen.models import base
from jaxgen.nn.encoders import Decoder, Encoder, check_arch

Array = jax.Array
DECLARATION = base.Declaration(
    model=dict(arch="mlp", hidden=(512, 256), latent_dim=2, act="relu",
               code_ema=0.99),  # the running average of the training codes
    spaces=("unit",), who="the autoencoder ([0, 1] pixels)",
    train=dict(steps=10_000, batch_size=128, log_every=500, checkpoint_every=2500,
               eval_every=2500, sample_every=2500))


class Autoencoder(flax.linen.Module):
    arch: str
    hidden: tuple[int, ...]
    latent_dim: int
    shape: tuple[int, int, int]
    act: str

    def setup(self):
        self.encoder = Encoder(self.arch, self.hidden, self.latent_dim, self.act)
        self.decoder = Decoder(self.arch, self.hidden, self.shape, self.act)

    def encode(self, x: Array) -> Array:
        return self.encoder(x)

    def decode(self, z: Array) -> Array:
        return jax.nn.sigmoid(self.decoder(z))

    def __call__(self, x: Array) -> tuple[Array, Array]:
        z = self.encode(x)
        return z, self.decode(z)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    check_arch(m.arch, m.hidden, spec.shape)
    net = Autoencoder(m.arch, tuple(m.hidden), m.latent_dim, spec.shape, m.act)
    optimizer = base.make_optimizer(config.optim)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        params = net.init(rng, to_model_space(batch["image"], "unit"))
        codes = {"mean": jnp.zeros(m.latent_dim), "var": jnp.ones(m.latent_dim)}
        return base.new_state(params, optimizer, config.optim.ema_decay, model_state=codes)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng  # deterministic model
        x = to_model_space(batch["image"], "unit")

        def loss_fn(params):
            z, recon = net.apply(params, x)
            return jnp.mean((recon - x) ** 2), z

        (loss, z), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        d = m.code_ema
        codes = {"mean": d * state.model_state["mean"] + (1 - d) * z.mean(0),
                 "var": d * state.model_state["var"] + (1 - d) * z.var(0)}
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        return state.replace(model_state=codes), {"loss": loss, "mse": loss}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng
        x = to_model_space(batch["image"], "unit")
        _, recon = net.apply(base.eval_params(state), x)
        return losses.reconstruction_errors(x, recon)

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        n = labels.shape[0]
        codes = state.model_state
        z = codes["mean"] + jnp.sqrt(codes["var"]) * jax.random.normal(rng, (n, m.latent_dim))
        return net.apply(base.eval_params(state), z, method=Autoencoder.decode)

    @jax.jit
    def _encode_decode(state: base.TrainState, batch: base.Batch):
        x = to_model_space(batch["image"], "unit")
        return net.apply(base.eval_params(state), x), x

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        del rng
        (z, recon), x = jax.device_get(_encode_decode(state, batch))
        result = {"reconstructions": viz.reconstructions(x, recon)}
        if m.latent_dim == 2:
            result["latents"] = viz.scatter(np.asarray(z), np.asarray(batch["label"]))
        return result

    return base.Family(init, train_step, eval_step, sample, pictures)
