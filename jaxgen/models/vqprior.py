"""The second stage of VQ-VAE and VQ-VAE-2: a Gated PixelCNN prior over the first stage's codes
(van den Oord et al. 2017; Razavi et al. 2019), one per level of codes.

model.first_stage names a trained vqvae run. Its encoder, decoder and codebooks are read when
the prior starts and kept, frozen, in model_state: the prior's checkpoints carry the first stage
they were trained on, so training the first stage further leaves a trained prior unchanged (its
workdir is still read for the shapes). Each training batch is encoded to codes on the fly. A level's prior reads
the codebook vectors of its codes in raster order; below the top, it also sees the level above's
vectors, upsampled to its size, at every position. log p(codes) is exact: eval reports code_nll
(nats per image's codes: no bound on the image likelihood) and bits_per_code (per level too,
with several levels).

Sampling draws the codes level by level, top first, one compiled loop over the positions each
(nn.autoregressive.sample_pixels), and decodes them with the first stage; model.temperature divides the
logits.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn import vq
from jaxgen.nn.autoregressive import inverse_cdf, sample_pixels
from jaxgen.nn.encoders import upsample
from jaxgen.nn.masked import GatedPixelCNN

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Categorical:
    """One code per position from K logits, as autoregressive.sample_pixels draws pixels."""

    num_outputs: int  # K
    temperature: float = 1.0
    colors: int = 1

    def draw(self, out: Array, u: Array) -> Array:
        probs = jax.nn.softmax(out / self.temperature)
        return inverse_cdf(probs, u[..., 0])[..., None].astype(jnp.float32)


DECLARATION = base.Declaration(
    model=dict(first_stage="", features=64, layers=12, out_hidden=256, dropout=0.0,
               conditional=False, temperature=1.0),
    spaces=(), who="the VQ prior", labels="conditional",  # it reads its first stage's pixels
    optim=dict(learning_rate=3e-4),
    eval=dict(batch_size=100, num_samples=1000, sample_grid=100))
INPUT_RUNS = {"first_stage": ("vqvae", "configs/vqvae_<dataset>.py")}


def make_family(config, spec: base.DataSpec, inputs: dict[str, base.Run]) -> base.Family:
    m = config.model
    if not m.temperature > 0:
        raise UserError(f"model.temperature must be positive, not {m.temperature}")
    first = inputs["first_stage"]
    first_config, first_state, first_spec = first.config, first.state, first.spec
    if first_config.data.name != config.data.name or first_spec.shape != spec.shape:
        raise UserError(f"model.first_stage {m.first_stage!r} was trained on "
                        f"{first_config.data.name} {first_spec.shape}, this prior on "
                        f"{config.data.name} {spec.shape}; set data.name to the first stage's")
    fm, space = first_config.model, first_config.data.space
    first_net = vq.vqvae_net(fm, spec.shape[-1])
    frozen = jax.tree.map(jnp.asarray, jax.device_get({
        "params": base.eval_params(first_state),
        "embeddings": vq.embeddings_of(first_state.model_state)}))
    levels, k, shapes = fm.levels, fm.num_codes, vq.code_shapes(fm.levels, spec.shape)
    num_codes = sum(h * w for h, w in shapes)
    classes = spec.num_classes if m.conditional else 0
    net = GatedPixelCNN(m.features, m.layers, m.out_hidden, k, 1, classes, m.dropout)
    optimizer = base.make_optimizer(config.optim)
    draw = Categorical(k, m.temperature)

    def encode(first: dict, images: Array) -> list[Array]:
        x = to_model_space(images, space)
        return first_net.apply(first["params"], x, first["embeddings"],
                               method=vq.VQVAE.encode)[1]

    def above(first: dict, codes: list, l: int) -> Array | None:
        """What level l's prior is conditioned on: the level above's vectors, upsampled."""
        if l + 1 == levels:
            return None
        return upsample(first["embeddings"][l + 1][codes[l + 1]])

    def inputs(first: dict, codes: list[Array]) -> list[tuple[Array, Array | None]]:
        """(the vectors of level l's codes, what conditions them) per level."""
        return [(first["embeddings"][l][codes[l]], above(first, codes, l)) for l in range(levels)]

    def code_nll(params: list, first: dict, codes: list[Array], labels: Array,
                 rng: Array | None = None) -> list[Array]:
        """-log p(codes of level l | levels above) [B] per level; with an rng, in training mode."""
        out = []
        for l, (x, cond) in enumerate(inputs(first, codes)):
            rngs = None if rng is None else {"dropout": jax.random.fold_in(rng, l)}
            logits = net.apply(params[l], x, labels, rng is not None, cond, rngs=rngs)
            log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), codes[l][..., None], -1)
            out.append(-losses.sum_except_batch(log_p))
        return out

    def metrics_of(nlls: list[Array]) -> dict:
        total = sum(nlls)
        out = {"code_nll": total, "bits_per_code": total / (num_codes * np.log(2.0))}
        if levels > 1:
            for l, (v, (h, w)) in enumerate(zip(nlls, shapes)):
                out[f"bits_per_code_{l}"] = v / (h * w * np.log(2.0))
        return out

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        codes = encode(frozen, batch["image"])
        params = [net.init(jax.random.fold_in(rng, l), x, batch["label"], False, cond)
                  for l, (x, cond) in enumerate(inputs(frozen, codes))]
        return base.new_state(params, optimizer, config.optim.ema_decay, model_state=frozen)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        codes = encode(state.model_state, batch["image"])

        def loss_fn(params):
            nlls = code_nll(params, state.model_state, codes, batch["label"], rng)
            return jnp.mean(sum(nlls)) / num_codes, nlls

        (loss, nlls), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        return state, {"loss": loss, **{k: jnp.mean(v) for k, v in metrics_of(nlls).items()}}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng
        codes = encode(state.model_state, batch["image"])
        return metrics_of(code_nll(base.eval_params(state), state.model_state, codes,
                                   batch["label"]))

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        first, params = state.model_state, base.eval_params(state)
        n, codes = labels.shape[0], [None] * levels
        for l in reversed(range(levels)):
            embeddings, cond = first["embeddings"][l], above(first, codes, l)

            def apply(v: Array) -> Array:
                return net.apply(params[l], embeddings[v[..., 0].astype(jnp.int32)], labels,
                                 False, cond)

            noise = jax.random.uniform(jax.random.fold_in(rng, l), (n,) + shapes[l] + (1,))
            start = jnp.zeros((n,) + shapes[l] + (1,))
            codes[l] = sample_pixels(apply, draw, start, noise)[..., 0].astype(jnp.int32)
        x = first_net.apply(first["params"], codes, first["embeddings"],
                            method=vq.VQVAE.decode_codes)
        return to_unit(x, space)

    return base.Family(init, train_step, eval_step, sample, conditional=m.conditional)
