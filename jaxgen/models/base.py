"""The family contract: a config becomes four pure functions over one TrainState type."""
import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgen.errors import UserError

Array = jax.Array
# image: uint8 [B, H, W, C], label: int32 [B], mask: bool [B] (in eval: the real examples of a
# padded batch), and the source's extras under their own names ([B, ...]: a condition image).
Batch = dict[str, Array]
Metrics = dict[str, Array]


@flax.struct.dataclass
class TrainState:
    step: Array  # int32 []
    params: Any  # trained by the optimizer
    opt_state: Any
    model_state: Any = None  # non-gradient state: batch stats, EMA codebooks, sufficient statistics
    ema_params: Any = None  # exponential moving average of params, for eval and sampling


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a family may know of its data before seeing it."""

    shape: tuple[int, int, int]  # H, W, C
    num_classes: int
    extras: tuple[tuple[str, tuple[int, ...], str], ...] = ()  # (name, shape of one, dtype)
    num_train: int = 0  # images in the training split (0: not recorded, runs saved before it was)


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run read from its workdir (jaxgen.runs.load_run), as another run's input."""

    workdir: str
    config: Any
    state: TrainState
    spec: DataSpec
    mesh: jax.sharding.Mesh


@dataclasses.dataclass(frozen=True)
class Family:
    """What train.py knows of a model family.

    init(rng, example_batch) -> TrainState
    train_step(state, batch, rng) -> (state, metrics): metrics are means over the global batch.
    eval_step(state, batch, rng) -> metrics: per-example values [B], so the loop can average the
        test split exactly over padded batches.
    sample(state, rng, labels) -> images: float [n, H, W, C] in [0, 1] for int32 labels [n];
        a conditional family draws image i of class labels[i], an unconditional one reads only
        n. None for a family that generates nothing (a classifier): the loop then writes no
        sample grids and refuses --mode sample and sample metrics.
    pictures(state, batch, rng) -> {name: images in [0, 1]} or {name: uint8 picture}: the
        family's own PNGs at each eval (reconstructions, interpolations, latent maps).
    finalize(state) -> state: host-side, on numpy arrays, before eval and sampling: derived
        state that is costly or needs float64 (the Gaussian model's eigendecomposition).
    check(state) -> None: host-side, at each log: raises a UserError that says what to do when
        the state shows training cannot go on (a collapsed mixture component), before the
        checkpoint of that step is saved.
    translate(state, batch, rng) -> images: float [B, H, W, C] in [0, 1], a translating
        family's outputs for the batch's `condition` images (pix2pix; None otherwise). Its
        "samples" (sample metrics, --mode sample) are then its outputs for the eval split's
        conditions, in order, labelled as their targets; --mode translate applies it to a folder.
    """

    init: Callable[[Array, Batch], TrainState]
    train_step: Callable[[TrainState, Batch, Array], tuple[TrainState, Metrics]]
    eval_step: Callable[[TrainState, Batch, Array], Metrics]
    sample: Callable[[TrainState, Array, Array], Array] | None
    pictures: Callable[[TrainState, Batch, Array], dict[str, Any]] | None = None
    finalize: Callable[[TrainState], TrainState] | None = None
    check: Callable[[TrainState], None] | None = None
    translate: Callable[[TrainState, Batch, Array], Array] | None = None
    conditional: bool = False  # samples follow their labels: grids get one row per class


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What a family module declares of itself (as DECLARATION), read before any data: its
    default config block, the model space it reads and whether it needs labels. jaxgen.presets
    builds new configs from it; jaxgen.models.make checks a config against it once, for every
    family, before the family's own checks.

    model: the default model block (model.family is added).
    spaces: the data.space values the model reads, the first being the default; or, when the
        space depends on a model key (`space_key`, e.g. a likelihood), {value of that key: its
        spaces}. Empty: data.space is not read (a VQ prior reads its first stage's).
    who: the model in words for errors; may name model keys, as in 'the {likelihood} decoder'.
    labels: 'always' (a classifier), 'conditional' (labels needed while model.conditional) or
        'never'.
    optim, train, eval: the family's changes to those sections of base_config.
    """

    model: dict
    spaces: tuple[str, ...] | dict[str, tuple[str, ...]]
    who: str
    space_key: str = ""
    labels: str = "never"
    optim: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    eval: dict = dataclasses.field(default_factory=dict)

    def allowed_spaces(self, model) -> tuple[str, ...]:
        """The data.space values a model block of this family reads (raises for an unknown
        value of space_key)."""
        if not self.space_key:
            return self.spaces
        value = model[self.space_key]
        if value not in self.spaces:
            raise UserError(f"unknown model.{self.space_key} {value!r}; use "
                            f"{', '.join(self.spaces)}")
        return self.spaces[value]

    def check(self, config, spec: DataSpec) -> None:
        """The one check of data.space and of labels, for every family."""
        allowed, m = self.allowed_spaces(config.model), config.model
        if allowed and config.data.space not in allowed:
            raise UserError(f"{self.who.format_map(m)} needs data.space {' or '.join(allowed)}, "
                            f"not {config.data.space!r}: set --config.data.space={allowed[0]}")
        needs = self.labels == "always" or (self.labels == "conditional" and m.conditional)
        if needs and spec.num_classes < 2:
            what = "model.conditional" if self.labels == "conditional" else self.who.format_map(m)
            raise UserError(f"{what} needs a labelled dataset (2 classes at least); this one has "
                            f"{spec.num_classes} classes")


def make_optimizer(optim) -> optax.GradientTransformation:
    """config.optim -> optax chain: optional clipping, Adam/AdamW/RMSProp/SGD, warmup then a
    constant, cosine or linear schedule. RMSProp's squared-gradient decay is b2; SGD uses
    Nesterov momentum b1 and adds weight_decay x params to the gradient (L2)."""
    if optim.schedule == "constant":
        lr = optax.warmup_constant_schedule(0.0, optim.learning_rate, max(optim.warmup_steps, 1)) \
            if optim.warmup_steps else optim.learning_rate
    elif optim.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, optim.learning_rate, max(optim.warmup_steps, 1), optim.decay_steps
        )
    elif optim.schedule == "linear":  # warmup, then linear decay to 0 at decay_steps
        warmup = max(optim.warmup_steps, 1)
        lr = optax.join_schedules([
            optax.linear_schedule(0.0, optim.learning_rate, warmup),
            optax.linear_schedule(optim.learning_rate, 0.0, optim.decay_steps - warmup)], [warmup])
    else:
        raise UserError(f"unknown optim.schedule {optim.schedule!r}; use constant, cosine or linear")
    if optim.name == "adam":
        opt = optax.adam(lr, b1=optim.b1, b2=optim.b2)
    elif optim.name == "adamw":
        opt = optax.adamw(lr, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
    elif optim.name == "rmsprop":
        opt = optax.rmsprop(lr, decay=optim.b2)
    elif optim.name == "sgd":
        opt = optax.chain(optax.add_decayed_weights(optim.weight_decay),
                          optax.sgd(lr, momentum=optim.b1, nesterov=True))
    else:
        raise UserError(f"unknown optim.name {optim.name!r}; use adam, adamw, rmsprop or sgd")
    if optim.grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(optim.grad_clip), opt)
    return opt


def ema_update(ema: Any, new: Any, decay: float | jax.Array) -> Any:
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)


def ema_decay_at(optim, step: jax.Array) -> float | jax.Array:
    """The EMA decay for the update after `step` updates: optim.ema_decay, or with
    optim.ema_warmup at most (1 + step) / (10 + step), so that the average of a short run
    forgets its first, untrained steps (the average of a 2,800-step DDPM at decay 0.999 without
    it still drew pure noise at step 1,000)."""
    if not optim.get("ema_warmup", False):  # configs saved before the key existed lack it
        return optim.ema_decay
    return jnp.minimum(optim.ema_decay, (1.0 + step) / (10.0 + step))


def keep_if_finite(new: Any, old: Any, checked: Any) -> tuple[Any, jax.Array]:
    """`new` if every value in `checked` is finite, else `old` (leaf by leaf); and that flag."""
    # Per leaf, a sum that is 0 when finite and NaN otherwise (sharded leaves reduce in place);
    # then one vector reduction. An `all` of per-leaf booleans becomes a chain of scalar ANDs that
    # XLA copies into every leaf's select: code quadratic in the number of leaves (Glow's train
    # step took minutes to compile).
    per_leaf = jnp.stack([jnp.sum(x * 0.0) for x in jax.tree.leaves(checked)])
    finite = jnp.all(jnp.isfinite(per_leaf))
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old), finite


def apply_gradients(
    state: TrainState, grads: Any, optimizer: optax.GradientTransformation, optim
) -> TrainState:
    """One optimizer update, the EMA of the params (config.optim `optim`), and step + 1."""
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = None if state.ema_params is None else \
        ema_update(state.ema_params, params, ema_decay_at(optim, state.step.astype(jnp.float32)))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)


def new_state(params: Any, optimizer: optax.GradientTransformation, ema_decay: float,
              model_state: Any = None) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model_state=model_state,
        ema_params=params if ema_decay else None,
    )


def eval_params(state: TrainState) -> Any:
    """The EMA params when the family keeps them, else the trained ones."""
    return state.ema_params if state.ema_params is not None else state.params
