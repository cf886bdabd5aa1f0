"""Image classifier (a small batch-norm CNN) trained by cross-entropy on [0, 1] pixels.

It generates nothing (Family.sample is None); it exists to be the feature network of the sample
metrics: its penultimate layer (`model.feature_dim` wide, after ReLU) is the feature space and its
softmax the class probabilities (jaxgen.evaluation).
"""
from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgen.data.preprocess import augment, to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn.conv import Conv

Array = jax.Array
DECLARATION = base.Declaration(
    model=dict(
        whiten=0, widths=(32, 64), convs_per_stage=1, pool_first=False, feature_dim=128,
        dropout=0.25, crop_pad=2,
        flip=False,  # mirrored digits are other symbols
        label_smoothing=0.0),
    spaces=("unit",), who="the classifier ([0, 1] pixels)", labels="always",
    optim=dict(learning_rate=3e-3, schedule="cosine", warmup_steps=100, decay_steps=3000),
    train=dict(steps=3000, batch_size=128, log_every=100, checkpoint_every=1000,
               eval_every=1000, sample_every=1000))
nn = flax.linen


def whitening_filters(x: Array, patch: int, eps: float = 5e-4) -> tuple[Array, Array]:
    """(kernel [p, p, C, 2 p^2 C], mean patch [p^2 C]) from the patches of x [B, H, W, C]: the
    eigenvectors of the patch covariance scaled to unit output variance, and their negatives (so
    a ReLU after them keeps both signs)."""
    _, h, w, c = x.shape
    shifted = [x[:, i:h - patch + 1 + i, j:w - patch + 1 + j] for i in range(patch)
               for j in range(patch)]
    patches = jnp.stack(shifted, axis=3).reshape(-1, patch * patch * c)  # (row, col, chan) order
    mean = patches.mean(0)
    centred = patches - mean
    eigvals, eigvecs = jnp.linalg.eigh(centred.T @ centred / patches.shape[0])
    filters = eigvecs / jnp.sqrt(jnp.maximum(eigvals, 0.0) + eps)
    filters = jnp.concatenate([filters, -filters], axis=1)
    return filters.reshape(patch, patch, c, -1), mean


class CNN(nn.Module):
    """Optionally a frozen patch-whitening conv (`whiten` > 0: its patch size; the filters are
    computed from the batch the network is initialised on and kept with the batch statistics)
    with a learned bias and ReLU. Then per stage: (3x3 conv, batch norm, ReLU) x convs_per_stage,
    a 2x2 max-pool after the first conv (`pool_first`: the later convs run at the lower
    resolution) or after the last, and dropout."""

    widths: tuple[int, ...]
    convs_per_stage: int
    feature_dim: int
    num_classes: int
    dropout: float
    pool_first: bool = False
    whiten: int = 0

    @nn.compact
    def __call__(self, x: Array, train: bool) -> tuple[Array, Array]:
        """x [B, H, W, C] in [0, 1] -> (features [B, F], logits [B, K])."""
        if self.whiten:
            inputs = x
            frozen = self.variable("batch_stats", "whitening",
                                   lambda: whitening_filters(inputs, self.whiten))
            kernel, mean = frozen.value
            bias = self.param("whitening_bias",
                              lambda _: -mean @ kernel.reshape(mean.shape[0], -1))
            x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = nn.relu(x + bias)
        for width in self.widths:
            for i in range(self.convs_per_stage):
                x = Conv(width, (3, 3), use_bias=False)(x)
                if self.pool_first and i == 0:
                    x = nn.max_pool(x, (2, 2), strides=(2, 2))
                x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
            if not self.pool_first:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1))
        features = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        h = nn.Dropout(self.dropout, deterministic=not train)(features)
        return features, nn.Dense(self.num_classes)(h)


def _network(config, spec: base.DataSpec) -> CNN:
    m = config.model
    if min(spec.shape[:2]) < 2 ** len(m.widths):
        raise UserError(f"{len(m.widths)} pooling stages (model.widths) need images of at least "
                        f"{2 ** len(m.widths)} pixels a side, got {spec.shape[:2]}")
    return CNN(tuple(m.widths), m.convs_per_stage, m.feature_dim, spec.num_classes, m.dropout,
               m.pool_first, m.whiten)


def _predict(net: CNN, state: base.TrainState, images: Array) -> tuple[Array, Array]:
    """Eval-mode (features [N, F], logits [N, K]) of images in [0, 1]."""
    variables = {"params": base.eval_params(state), "batch_stats": state.model_state}
    return net.apply(variables, images, train=False)


def make_embed(config, spec: base.DataSpec) -> Callable[[base.TrainState, Array],
                                                        tuple[Array, Array]]:
    """(state, images in [0, 1] [N, H, W, C]) -> (features [N, F], class probabilities [N, K])."""
    net = _network(config, spec)

    def embed(state: base.TrainState, images: Array) -> tuple[Array, Array]:
        features, logits = _predict(net, state, images)
        return features, jax.nn.softmax(logits)

    return embed


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    net = _network(config, spec)
    optimizer = base.make_optimizer(config.optim)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        variables = net.init(rng, to_model_space(batch["image"], "unit"), train=False)
        return base.new_state(variables["params"], optimizer, config.optim.ema_decay,
                              model_state=variables["batch_stats"])

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        aug_rng, dropout_rng = jax.random.split(rng)
        x = augment(aug_rng, to_model_space(batch["image"], "unit"), m.crop_pad, m.flip)

        def loss_fn(params):
            (_, logits), updates = net.apply(
                {"params": params, "batch_stats": state.model_state}, x, train=True,
                rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
            targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], spec.num_classes),
                                          m.label_smoothing)
            loss = optax.softmax_cross_entropy(logits, targets).mean()
            return loss, (logits, updates["batch_stats"])

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        accuracy = jnp.mean(logits.argmax(-1) == batch["label"])
        return state.replace(model_state=stats), {"loss": loss, "accuracy": accuracy}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng  # deterministic at eval
        _, logits = _predict(net, state, to_model_space(batch["image"], "unit"))
        labels = batch["label"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).astype(jnp.float32)}

    return base.Family(init, train_step, eval_step, sample=None)
