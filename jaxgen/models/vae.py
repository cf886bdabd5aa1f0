"""Variational autoencoder (Kingma & Welling 2014) with the IWAE bound (Burda et al. 2016) for eval.

Encoder q(z|x) = N(mean, diag sigma^2), prior N(0, I), decoders:
  bernoulli         on binarized pixels {0, 1}           (data.space binarize or threshold)
  gaussian          fixed sigma, density on [0, 1]       (data.space dequantize)
  gaussian_learned  per-pixel sigma, density on [0, 1]   (data.space dequantize)
  logistic          discretized logistic on 256 levels   (data.space symmetric)
"""
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.models import base
from jaxgen.nn.encoders import Decoder, Encoder, check_arch

Array = jax.Array

SPACE_OF = {"bernoulli": ("binarize", "threshold"), "gaussian": ("dequantize",),
            "gaussian_learned": ("dequantize",), "logistic": ("symmetric",)}
DECLARATION = base.Declaration(
    model=dict(arch="mlp", hidden=(500, 500), latent_dim=50, act="relu", likelihood="bernoulli",
               decoder_log_std=0.0, beta=1.0, kl_warmup_steps=0),
    spaces=SPACE_OF, space_key="likelihood", who="the {likelihood} decoder",
    train=dict(steps=60_000, batch_size=100, log_every=1000, checkpoint_every=5000,
               eval_every=20_000, sample_every=5000),
    eval=dict(iwae_samples=5000, iwae_chunk=250))
MIN_LOG_STD = -7.0  # keeps learned decoder densities bounded on near-constant pixels


@flax.struct.dataclass
class Posterior:
    mean: Array  # [B, D]
    log_std: Array  # [B, D]


class VAE(flax.linen.Module):
    arch: str
    hidden: tuple[int, ...]
    latent_dim: int
    out_shape: tuple[int, int, int]  # H, W, decoder output channels
    act: str

    def setup(self):
        self.encoder = Encoder(self.arch, self.hidden, 2 * self.latent_dim, self.act)
        self.decoder = Decoder(self.arch, self.hidden, self.out_shape, self.act)

    def encode(self, x: Array) -> Posterior:
        mean, log_std = jnp.split(self.encoder(x), 2, axis=-1)
        return Posterior(mean, log_std)

    def decode(self, z: Array) -> Array:
        return self.decoder(z)

    def __call__(self, x: Array, z: Array) -> tuple[Posterior, Array]:
        return self.encode(x), self.decode(z)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m, space = config.model, config.data.space
    check_arch(m.arch, m.hidden, spec.shape)
    h, w, c = spec.shape
    num_dims = h * w * c
    params_per_pixel = 2 if m.likelihood in ("gaussian_learned", "logistic") else 1
    net = VAE(m.arch, tuple(m.hidden), m.latent_dim, (h, w, c * params_per_pixel), m.act)
    optimizer = base.make_optimizer(config.optim)

    def log_likelihood(out: Array, x: Array) -> Array:
        """log p(x|z) per example: [B, H, W, c * params_per_pixel], [B, H, W, C] -> [B]."""
        if m.likelihood == "bernoulli":
            return losses.sum_except_batch(losses.bernoulli_log_prob(out, x))
        if m.likelihood == "gaussian":
            return losses.sum_except_batch(losses.gaussian_log_prob(x, out, m.decoder_log_std))
        mean, log_scale = jnp.split(out, 2, axis=-1)
        log_scale = jnp.maximum(log_scale, MIN_LOG_STD)
        if m.likelihood == "gaussian_learned":
            return losses.sum_except_batch(losses.gaussian_log_prob(x, mean, log_scale))
        return losses.sum_except_batch(losses.discretized_logistic_log_prob(x, mean, log_scale))

    def mean_image(out: Array) -> Array:
        """Decoder output -> the mean image in [0, 1]."""
        if m.likelihood == "bernoulli":
            return jax.nn.sigmoid(out)
        return to_unit(out[..., :c], space)

    def bpd(nll: Array) -> Array:
        if space == "dequantize":
            return losses.dequantized_bits_per_dim(nll, num_dims)
        return losses.bits_per_dim(nll, num_dims)

    def sample_z(post: Posterior, rng: Array) -> Array:
        return post.mean + jnp.exp(post.log_std) * jax.random.normal(rng, post.mean.shape)

    def neg_elbo_terms(params, x: Array, rng: Array) -> tuple[Array, Array]:
        post = net.apply(params, x, method=VAE.encode)
        out = net.apply(params, sample_z(post, rng), method=VAE.decode)
        recon = -log_likelihood(out, x)
        kl = losses.gaussian_kl(post.mean, post.log_std).sum(-1)
        return recon, kl

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        x = to_model_space(batch["image"], space, rng)
        params = net.init(rng, x, jnp.zeros((x.shape[0], m.latent_dim)))
        return base.new_state(params, optimizer, config.optim.ema_decay)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        data_rng, z_rng = jax.random.split(rng)
        x = to_model_space(batch["image"], space, data_rng)
        warm = jnp.minimum(1.0, (state.step + 1) / max(m.kl_warmup_steps, 1))
        beta = m.beta * warm

        def loss_fn(params):
            recon, kl = neg_elbo_terms(params, x, z_rng)
            return jnp.mean(recon + beta * kl), (recon, kl)

        (loss, (recon, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        nelbo = recon + kl
        return state, {"loss": loss, "elbo": -jnp.mean(nelbo), "recon": jnp.mean(recon),
                       "kl": jnp.mean(kl), "beta": beta, "elbo_bpd": jnp.mean(bpd(nelbo))}

    def iwae_log_px(params, x: Array, rng: Array, k: int, chunk: int) -> Array:
        """The IWAE_k bound on log p(x) [B], drawing the k samples in chunks to bound memory."""
        post = net.apply(params, x, method=VAE.encode)

        def log_weights(_, chunk_rng):
            eps = jax.random.normal(chunk_rng, (chunk,) + post.mean.shape)
            z = post.mean + jnp.exp(post.log_std) * eps  # [chunk, B, D]
            out = net.apply(params, z.reshape(-1, m.latent_dim), method=VAE.decode)
            log_px_z = log_likelihood(out, jnp.tile(x, (chunk, 1, 1, 1)))
            log_pz = losses.gaussian_log_prob(z, 0.0, 0.0).sum(-1)
            log_qz = losses.gaussian_log_prob(z, post.mean, post.log_std).sum(-1)
            return None, log_px_z.reshape(chunk, -1) + log_pz - log_qz

        _, lw = jax.lax.scan(log_weights, None, jax.random.split(rng, k // chunk))
        return losses.iwae_bound(lw.reshape(k, -1), axis=0)

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        data_rng, z_rng, iw_rng = jax.random.split(rng, 3)
        params = base.eval_params(state)
        x = to_model_space(batch["image"], space, data_rng)
        recon, kl = neg_elbo_terms(params, x, z_rng)
        k = config.eval.iwae_samples
        nll = -iwae_log_px(params, x, iw_rng, k, min(config.eval.iwae_chunk, k))
        return {"elbo": -(recon + kl), "recon": recon, "kl": kl, "elbo_bpd": bpd(recon + kl),
                f"nll_iwae{k}": nll, "nll_bpd": bpd(nll)}

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        n = labels.shape[0]
        z = jax.random.normal(rng, (n, m.latent_dim))
        return mean_image(net.apply(base.eval_params(state), z, method=VAE.decode))

    @jax.jit
    def _pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict[str, Array]:
        params = base.eval_params(state)
        x = to_model_space(batch["image"], space, rng)
        post = net.apply(params, x, method=VAE.encode)
        recon = mean_image(net.apply(params, post.mean, method=VAE.decode))
        return {"originals": to_unit(x, space), "recon": recon, "codes": post.mean}

    @jax.jit
    def _decode(params, z: Array) -> Array:
        return mean_image(net.apply(params, z, method=VAE.decode))

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        out = jax.device_get(_pictures(state, batch, rng))
        codes = np.asarray(out["codes"])
        decode = functools.partial(_decode, base.eval_params(state))
        pairs = len(codes) // 2 if len(codes) < 16 else 8
        z = viz.interpolate(codes[:pairs], codes[pairs : 2 * pairs], steps=10)
        result = {"reconstructions": viz.reconstructions(out["originals"], out["recon"]),
                  "interpolations": viz.grid(np.asarray(decode(z)), ncol=10)}
        if m.latent_dim == 2:
            grid = decode(jnp.asarray(viz.manifold_points(20), jnp.float32))
            result["manifold"] = viz.grid(np.asarray(grid), ncol=20)
            result["latents"] = viz.scatter(codes, np.asarray(batch["label"]))
        return result

    return base.Family(init, train_step, eval_step, sample, pictures)

