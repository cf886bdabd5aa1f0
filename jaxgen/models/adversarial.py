"""The adversarial core: one train step for any two-player game, shared by the GAN families.

A family describes its game (`Game`): how a batch is prepared, and each player's loss terms as
a function of both players' parameters. The core does what every GAN step does: `n_critic`
critic updates, each on its own slice of the batch (train.batch_size = n_critic x the
per-update batch), then one generator update; two optimizers; WGAN's weight clipping; the EMA of
G (config.optim); regularisers applied every k steps (lazy regularisation, Karras et al. 2020:
computed every k-th step only, weighted k times over); and a step whose losses, gradients or new
parameters are not finite is skipped (the state kept) and counted in the metric `skipped`.

State layout: params and opt_state {"g", "d"}, ema_params {"g"} or None, model_state the
family's (cluster centroids, a path-length mean), threaded through every term in order.
"""
import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from jaxgen.models import base

Array = jax.Array


class Terms(NamedTuple):
    """One player's objective at one update: `loss` (what it minimises every update), `penalty`
    (its regulariser, weighted, 0 where the term function was told not to regularise), metrics
    to log (the same names whether regularised or not), and the model_state after it."""

    loss: Array
    penalty: Array
    metrics: base.Metrics
    model_state: Any


# (own params, other player's params, model_state, batch slice, rng, regularise) -> Terms;
# `regularise` is a Python bool: the core traces each term function once per value it uses.
TermsFn = Callable[[Any, Any, Any, base.Batch, Array, bool], Terms]


def _identity(model_state: Any, batch: base.Batch, rng: Array):
    return batch, model_state, {}


@dataclasses.dataclass(frozen=True)
class Game:
    """critic(d, g, ...) and generator(g, d, ...) give each player's Terms; prepare(model_state,
    batch, rng) -> (batch, model_state, metrics) runs once per step before the updates (model
    space, labels of the real images)."""

    critic: TermsFn
    generator: TermsFn
    prepare: Callable[[Any, base.Batch, Array], tuple[base.Batch, Any, base.Metrics]] = _identity
    n_critic: int = 1
    critic_every: int = 1  # the critic's penalty every k steps (weighted k times)
    generator_every: int = 1  # the generator's
    clip: float = 0.0  # > 0: every critic weight clipped to [-clip, clip] after its update (WGAN)


def lazy_optim(optim: ConfigDict, every: int) -> ConfigDict:
    """A copy of config.optim `optim` for a player whose regulariser runs every k = `every` steps:
    the learning rate times c = k / (k + 1) and Adam's b1 and b2 to the power c, so that the
    optimizer's dynamics over k steps match those of a regulariser applied at every step
    (Karras et al. 2020, appendix B). Unchanged for k = 1."""
    c = every / (every + 1.0) if every > 1 else 1.0
    optim = optim.copy_and_resolve_references()
    optim.update(learning_rate=optim.learning_rate * c, b1=optim.b1**c, b2=optim.b2**c)
    return optim


def init_state(g: Any, d: Any, opt_g: optax.GradientTransformation,
               opt_d: optax.GradientTransformation, ema: bool, model_state: Any = None
               ) -> base.TrainState:
    return base.TrainState(step=jnp.zeros((), jnp.int32), params={"g": g, "d": d},
                           opt_state={"g": opt_g.init(g), "d": opt_d.init(d)},
                           model_state=model_state, ema_params={"g": g} if ema else None)


def _update(terms_fn: TermsFn, every: int, step: Array, own: Any, other: Any, model_state: Any,
            batch: base.Batch, rng: Array):
    """Gradients of loss (+ every x penalty on the steps the penalty is due) for `own`. With
    every > 1 they run inside lax.cond, where XLA's CPU backend computes a plain convolution's
    kernel gradient ~75x slower: nets regularised lazily convolve with
    jaxgen.nn.conv.canonical_conv."""
    def grads(regularise: bool):
        def objective(p):
            t = terms_fn(p, other, model_state, batch, rng, regularise)
            return t.loss + every * t.penalty, t
        return jax.grad(objective, has_aux=True)(own)

    if every == 1:
        return grads(True)
    return jax.lax.cond(step % every == 0, lambda: grads(True), lambda: grads(False))


def _slices(batch: base.Batch, k: int) -> list[base.Batch]:
    """k slices of every [B, ...] entry, keeping the sharded batch axis whole: slice i holds
    every k-th row, starting at row i."""
    def split(x):
        b = x.shape[0] // k
        return jnp.swapaxes(x.reshape((b, k) + x.shape[1:]), 0, 1)
    stacked = {name: split(x) for name, x in batch.items()}
    return [{name: x[i] for name, x in stacked.items()} for i in range(k)]


def train_step_of(game: Game, opt_g: optax.GradientTransformation,
                  opt_d: optax.GradientTransformation, optim_g
                  ) -> Callable[[base.TrainState, base.Batch, Array],
                                tuple[base.TrainState, base.Metrics]]:
    """The family's train_step(state, batch, rng) for `game`; optim_g is G's config.optim (its
    EMA decay)."""

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        prep_rng, d_rng, g_rng = jax.random.split(rng, 3)
        batch, model_state, step_metrics = game.prepare(state.model_state, batch, prep_rng)
        slices = _slices(batch, game.n_critic)
        g, d, d_opt = state.params["g"], state.params["d"], state.opt_state["d"]

        # A Python loop, not lax.scan: convolutions inside XLA CPU while-loops ran ~6x slower.
        d_metrics = []
        for piece, key in zip(slices, jax.random.split(d_rng, game.n_critic)):
            grads, t = _update(game.critic, game.critic_every, state.step, d, g, model_state,
                               piece, key)
            updates, d_opt = opt_d.update(grads, d_opt, d)
            d = optax.apply_updates(d, updates)
            if game.clip:
                d = jax.tree.map(lambda w: jnp.clip(w, -game.clip, game.clip), d)
            model_state = t.model_state
            d_metrics.append(dict(t.metrics, d_loss=t.loss, d_grad_norm=optax.tree.norm(grads)))

        g_grads, t = _update(game.generator, game.generator_every, state.step, g, d, model_state,
                             slices[0], g_rng)
        updates, g_opt = opt_g.update(g_grads, state.opt_state["g"], g)
        g = optax.apply_updates(g, updates)
        ema = None if state.ema_params is None else {"g": base.ema_update(
            state.ema_params["g"], g, base.ema_decay_at(optim_g, state.step.astype(jnp.float32)))}
        new = state.replace(step=state.step + 1, params={"g": g, "d": d},
                            opt_state={"g": g_opt, "d": d_opt}, model_state=t.model_state,
                            ema_params=ema)
        metrics = {name: jnp.mean(jnp.stack([m[name] for m in d_metrics]))  # over D's updates
                   for name in d_metrics[0]}
        metrics.update(t.metrics, g_loss=t.loss, g_grad_norm=optax.tree.norm(g_grads),
                       **step_metrics)
        (state, metrics), finite = base.keep_if_finite(
            (new, metrics), (state, jax.tree.map(jnp.zeros_like, metrics)), (metrics, new.params))
        metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
        return state, metrics

    return train_step
