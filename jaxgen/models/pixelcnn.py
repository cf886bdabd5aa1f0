"""Autoregressive models over pixels in raster order (and R, G, B within a pixel): PixelCNN
(van den Oord et al. 2016a), Gated PixelCNN with class conditioning (van den Oord et al. 2016b)
and PixelCNN++ (Salimans et al. 2017), chosen by model.arch.

log p(x) = sum_t log p(x_t | x_<t) is exact; eval reports it as nll (nats) and nll_bpd.
model.likelihood, with its model space:
  bernoulli         one logit per channel of binarized pixels         data.space binarize, threshold
  softmax           256-way softmax per channel of 8-bit pixels       data.space symmetric
  logistic_mixture  model.num_mixtures discretized logistics per      data.space symmetric
                    pixel, channel means coupled (PixelCNN++)
The masked nets (pixelcnn, gated) mask per channel for bernoulli and softmax (channel c sees the
channels before c of its own pixel) and per whole pixel for the mixture; pixelcnnpp sees whole
pixels only, so with more than one channel it needs the mixture.

Sampling is one compiled loop over the pixels (times the channels for the per-channel
likelihoods), a full forward pass per step. Every draw inverts a CDF at a uniform drawn up front
(noise [n, H, W, N]), so a sample is a deterministic function of its noise.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn.autoregressive import Likelihood, sample_pixels
from jaxgen.nn.masked import GatedPixelCNN, PixelCNN
from jaxgen.nn.shifted import PixelCNNPP

Array = jax.Array

ARCHS = ("pixelcnn", "gated", "pixelcnnpp")
SPACES_OF = {"bernoulli": ("binarize", "threshold"), "softmax": ("symmetric",),
             "logistic_mixture": ("symmetric",)}
DECLARATION = base.Declaration(
    model=dict(
        arch="pixelcnn", likelihood="bernoulli",
        features=32,  # pixelcnn: h (2h in the residual stream); gated: p; pixelcnnpp: all layers
        layers=12,  # pixelcnn: residual blocks; gated: gated layers; pixelcnnpp: blocks per scale
        out_hidden=64,  # width of the hidden 1x1 output layer (pixelcnn, gated)
        num_mixtures=10, dropout=0.0, conditional=False),
    spaces=SPACES_OF, space_key="likelihood", who="the {likelihood} likelihood",
    labels="conditional",
    # eval.batch_size is also the chunk train.py samples in: small, as every image costs H x W
    # passes
    eval=dict(batch_size=100, num_samples=1000, sample_grid=100,
              completions=8))  # test images in the completion picture (0: none)
COMPLETIONS = 3  # samples of each test image's bottom half in the completion picture


def check_model(m, spec: base.DataSpec) -> None:
    """Raises a UserError for a config the nets or likelihoods cannot run."""
    h, w, c = spec.shape
    if m.arch not in ARCHS:
        raise UserError(f"unknown model.arch {m.arch!r}; use {', '.join(ARCHS)}")
    if m.arch == "pixelcnnpp":
        if c > 1 and m.likelihood != "logistic_mixture":
            raise UserError(f"pixelcnnpp models whole pixels: with {c} channels set "
                            f"model.likelihood=logistic_mixture")
        if h % 4 or w % 4:
            raise UserError(f"pixelcnnpp downsamples twice: H and W must be multiples of 4, "
                            f"the images are {h}x{w}")
    elif m.likelihood != "logistic_mixture" and m.features % c:
        raise UserError(f"model.features ({m.features}) must be a multiple of the {c} channels "
                        f"(the features split into one group per channel)")
    if m.likelihood == "logistic_mixture" and m.num_mixtures < 1:
        raise UserError("model.num_mixtures must be at least 1")


def make_net(m, spec: base.DataSpec, likelihood: Likelihood) -> nn.Module:
    classes = spec.num_classes if m.conditional else 0
    if m.arch == "pixelcnnpp":
        return PixelCNNPP(m.features, m.layers, likelihood.num_outputs, classes, m.dropout)
    net = PixelCNN if m.arch == "pixelcnn" else GatedPixelCNN
    return net(m.features, m.layers, m.out_hidden, likelihood.num_outputs, likelihood.colors,
               classes, m.dropout)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m, space = config.model, config.data.space
    check_model(m, spec)
    h, w, c = spec.shape
    num_dims = h * w * c
    likelihood = Likelihood(m.likelihood, c, m.num_mixtures)
    net = make_net(m, spec, likelihood)
    optimizer = base.make_optimizer(config.optim)

    def nll(params, x: Array, labels: Array, rng: Array | None = None) -> Array:
        """-log p(x) [B]; with an rng, in training mode (dropout)."""
        out = net.apply(params, x, labels, rng is not None,
                        rngs=None if rng is None else {"dropout": rng})
        return -likelihood.log_prob(out, x)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        params = net.init(rng, to_model_space(batch["image"], space, rng), batch["label"])
        return base.new_state(params, optimizer, config.optim.ema_decay)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        data_rng, dropout_rng = jax.random.split(rng)
        x = to_model_space(batch["image"], space, data_rng)

        def loss_fn(params):
            values = nll(params, x, batch["label"], dropout_rng)
            return jnp.mean(losses.bits_per_dim(values, num_dims)), values

        (loss, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        return state, {"loss": loss, "nll": jnp.mean(values), "nll_bpd": loss}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        x = to_model_space(batch["image"], space, rng)
        values = nll(base.eval_params(state), x, batch["label"])
        return {"nll": values, "nll_bpd": losses.bits_per_dim(values, num_dims)}

    def fill(params, x: Array, labels: Array, rng: Array, start: int) -> Array:
        noise = jax.random.uniform(rng, x.shape[:-1] + (likelihood.noise_size,))
        return sample_pixels(lambda v: net.apply(params, v, labels), likelihood, x, noise, start)

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        x = jnp.zeros((labels.shape[0],) + spec.shape)
        return to_unit(fill(base.eval_params(state), x, labels, rng, 0), space)

    @jax.jit
    def _completions(state: base.TrainState, batch: base.Batch, rng: Array) -> Array:
        """Rows of a test image and COMPLETIONS samples of its bottom half given its top half."""
        data_rng, sample_rng = jax.random.split(rng)
        k = min(config.eval.completions, batch["image"].shape[0])
        x = to_model_space(batch["image"][:k], space, data_rng)
        filled = fill(base.eval_params(state), jnp.repeat(x, COMPLETIONS, 0),
                      jnp.repeat(batch["label"][:k], COMPLETIONS), sample_rng,
                      h // 2 * w * likelihood.colors)
        rows = jnp.concatenate([x[:, None], filled.reshape((k, COMPLETIONS) + spec.shape)], 1)
        return to_unit(rows.reshape((-1,) + spec.shape), space)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        images = np.asarray(jax.device_get(_completions(state, batch, rng)))
        return {"completions": viz.grid(images, ncol=1 + COMPLETIONS)}

    return base.Family(init, train_step, eval_step, sample,
                       pictures if config.eval.completions else None, conditional=m.conditional)
