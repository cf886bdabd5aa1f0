"""Normalizing flows with exact log-likelihood: NICE (Dinh et al. 2015), RealNVP (Dinh et al.
2017) and Glow (Kingma & Dhariwal 2018), chosen by model.flow.

Model space: uniformly dequantized pixels y = (x + u) / 256 in [0, 1] (data.space dequantize),
then NICE: y flattened; RealNVP: logit(alpha + (1 - 2 alpha) y); Glow: y - 0.5. The flow maps
that to latents eps; log p(y) = log N(eps) terms + every log-det from y to eps (preprocessing
included), and bits/dim adds the 8-bit discretization (losses.dequantized_bits_per_dim).

Image flows are multi-scale: each of model.levels levels squeezes, runs model.steps steps and
(except the last) factors out half its channels. RealNVP step: checkerboard couplings before the
squeeze and channel couplings after it (optional actnorm in place of batch norm); Glow step:
actnorm, invertible 1x1 conv (plain or LU), affine coupling; Glow's factored-out half has a
Gaussian prior conditioned on the kept half (a zero-initialised conv), RealNVP's and the final
latent are standard normal. Data-dependent actnorm init happens in `init` (see nn.flows.ActNorm).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn import flows as fl
from jaxgen.nn.conv import Conv

Array = jax.Array
FLOWS = ("nice", "realnvp", "glow")
DECLARATION = base.Declaration(
    model=dict(flow="realnvp", levels=2, steps=3, hidden=64, mlp_layers=0, lu=False,
               actnorm=True, logit_alpha=0.05, temperature=1.0, picture_temperature=0.7),
    spaces=("dequantize",), who="a flow (a density on dequantized pixels)",
    optim=dict(learning_rate=1e-3, warmup_steps=1000, grad_clip=50.0),
    train=dict(steps=50_000, batch_size=64, log_every=500, checkpoint_every=5000,
               eval_every=10_000, sample_every=5000),
    eval=dict(batch_size=500, num_samples=1000))


def latent_shapes(flow: str, levels: int, shape: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """Shapes (without batch) of the latents `FlowNet.encode` returns, in order."""
    h, w, c = shape
    if flow == "nice":
        return [(h * w * c,)]
    shapes = []
    for level in range(levels):
        h, w, c = h // 2, w // 2, 4 * c
        if level < levels - 1:
            shapes.append((h, w, c // 2))
            c //= 2
    return shapes + [(h, w, c)]


class FlowNet(nn.Module):
    flow: str
    levels: int
    steps: int
    hidden: int
    mlp_layers: int  # NICE coupling MLP depth
    lu: bool  # Glow: LU-decomposed 1x1 convs
    actnorm: bool  # RealNVP: actnorm after each coupling
    shapes: tuple[tuple[int, ...], ...]  # latent_shapes

    def setup(self):
        if self.flow == "nice":
            self.stages = [[fl.AdditiveCoupling(self.hidden, self.mlp_layers, k % 2)
                            for k in range(self.steps)] + [fl.DiagScale()]]
            self.priors = []
            return
        stages = []
        for _ in range(self.levels):
            if self.flow == "glow":
                layers = [fl.Squeeze()]
                for _ in range(self.steps):
                    layers += [fl.ActNorm(), fl.InvConv1x1(self.lu),
                               fl.AffineCoupling("channel", 0, self.hidden, "sigmoid")]
            else:
                layers = []
                for mask in ("checkerboard", "channel"):
                    layers += [fl.Squeeze()] if mask == "channel" else []
                    for k in range(self.steps):
                        layers.append(fl.AffineCoupling(mask, k % 2, self.hidden))
                        layers += [fl.ActNorm()] if self.actnorm else []
            stages.append(layers)
        self.stages = stages
        self.priors = [Conv(2 * s[-1], (3, 3), kernel_init=nn.initializers.zeros)
                       for s in self.shapes[:-1]] if self.flow == "glow" else []

    def _prior(self, level: int, kept: Array) -> tuple[Array, Array]:
        """Mean and log-std of the half factored out at `level`, given the kept half."""
        if not self.priors:
            return jnp.zeros(()), jnp.zeros(())
        return jnp.split(self.priors[level](kept), 2, axis=-1)

    def encode(self, x: Array) -> tuple[list[Array], Array, Array]:
        """x -> (standardized latents eps, log-det of x -> z [B], log p(z) [B])."""
        h = x.reshape(x.shape[0], -1) if self.flow == "nice" else x
        logdet = jnp.zeros(x.shape[0])
        log_prior = jnp.zeros(x.shape[0])
        eps = []
        for level, layers in enumerate(self.stages):
            for layer in layers:
                h, ld = layer(h)
                logdet += ld
            if level < len(self.stages) - 1:
                h, z = jnp.split(h, 2, axis=-1)
                mean, log_std = self._prior(level, h)
                e = (z - mean) * jnp.exp(-log_std)
                log_prior += losses.sum_except_batch(losses.gaussian_log_prob(e, 0.0, 0.0) - log_std)
                eps.append(e)
        log_prior += losses.sum_except_batch(losses.gaussian_log_prob(h, 0.0, 0.0))
        return eps + [h], logdet, log_prior

    def decode(self, eps: list[Array], temperature: float = 1.0) -> Array:
        """Latents -> x: z = mean + temperature * std * eps at each level, then the inverse."""
        h = temperature * eps[-1]
        for level in reversed(range(len(self.stages))):
            if level < len(self.stages) - 1:
                mean, log_std = self._prior(level, h)
                h = jnp.concatenate([h, mean + temperature * jnp.exp(log_std) * eps[level]], -1)
            for layer in reversed(self.stages[level]):
                h, _ = layer(h, reverse=True)
        return h


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    if m.flow not in FLOWS:
        raise UserError(f"unknown model.flow {m.flow!r}; use {', '.join(FLOWS)}")
    h, w, c = spec.shape
    if m.flow != "nice" and (h % 2 ** m.levels or w % 2 ** m.levels):
        raise UserError(f"{m.levels} flow levels need H and W divisible by {2 ** m.levels}; "
                        f"the images are {h}x{w}: lower model.levels")
    num_dims = h * w * c
    if m.flow == "nice" and num_dims % 2:
        raise UserError(f"nice couples pairs of values: H x W x C must be even, the images are "
                        f"{h}x{w}x{c}; crop or pad them to an even size")
    shapes = latent_shapes(m.flow, m.levels, spec.shape)
    net = FlowNet(m.flow, m.levels, m.steps, m.hidden, m.mlp_layers, m.lu, m.actnorm,
                  tuple(shapes))
    optimizer = base.make_optimizer(config.optim)
    alpha = m.logit_alpha

    def to_flow(y: Array) -> tuple[Array, Array]:
        """Dequantized [0, 1] pixels -> flow input and the log-det of that map [B]."""
        if m.flow == "realnvp":
            p = alpha + (1.0 - 2.0 * alpha) * y
            x = jnp.log(p) - jnp.log1p(-p)
            return x, losses.sum_except_batch(np.log(1.0 - 2.0 * alpha) - jnp.log(p) - jnp.log1p(-p))
        return (y - 0.5 if m.flow == "glow" else y), jnp.zeros(y.shape[0])

    def from_flow(x: Array) -> Array:
        """Flow input -> images in [0, 1]."""
        x = x.reshape((-1, h, w, c))
        if m.flow == "realnvp":
            x = (jax.nn.sigmoid(x) - alpha) / (1.0 - 2.0 * alpha)
        elif m.flow == "glow":
            x = x + 0.5
        return jnp.clip(x, 0.0, 1.0)

    def variables(params, state: base.TrainState) -> dict:
        return {"params": params, **(state.model_state or {})}

    def log_terms(variables_: dict, y: Array) -> tuple[list[Array], Array, Array]:
        """(latents, log p(z) [B], log|det dz/dy| [B] including the preprocessing)."""
        x, pre_logdet = to_flow(y)
        eps, logdet, log_prior = net.apply(variables_, x, method=FlowNet.encode)
        return eps, log_prior, logdet + pre_logdet

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        data_rng, param_rng = jax.random.split(rng)
        x, _ = to_flow(to_model_space(batch["image"], "dequantize", data_rng))
        variables_ = dict(net.init(param_rng, x, method=FlowNet.encode))
        params = variables_.pop("params")
        return base.new_state(params, optimizer, config.optim.ema_decay, variables_ or None)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        y = to_model_space(batch["image"], "dequantize", rng)

        def loss_fn(params):
            _, log_prior, logdet = log_terms(variables(params, state), y)
            bpd = losses.dequantized_bits_per_dim(-(log_prior + logdet), num_dims)
            return jnp.mean(bpd), (log_prior, logdet)

        (loss, (log_prior, logdet)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        new = base.apply_gradients(state, grads, optimizer, config.optim)
        metrics = {"loss": loss, "nll_bpd": loss, "log_prior": jnp.mean(log_prior),
                   "log_det": jnp.mean(logdet)}
        (kept, metrics), finite = base.keep_if_finite(  # a skipped step logs zeros
            (new, metrics), (state, jax.tree.map(jnp.zeros_like, metrics)), (grads, metrics))
        return kept.replace(step=new.step), {**metrics,
                                             "skipped": 1.0 - finite.astype(jnp.float32)}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        y = to_model_space(batch["image"], "dequantize", rng)
        _, log_prior, logdet = log_terms(variables(base.eval_params(state), state), y)
        nll = -(log_prior + logdet)
        return {"nll": nll, "nll_bpd": losses.dequantized_bits_per_dim(nll, num_dims),
                "log_prior": log_prior, "log_det": logdet}

    def decode(state: base.TrainState, eps: list[Array], temperature: float) -> Array:
        x = net.apply(variables(base.eval_params(state), state), eps, temperature,
                      method=FlowNet.decode)
        return from_flow(x)

    def draw(state: base.TrainState, rng: Array, n: int, temperature: float) -> Array:
        keys = jax.random.split(rng, len(shapes))
        return decode(state, [jax.random.normal(k, (n,) + s) for k, s in zip(keys, shapes)],
                      temperature)

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        return draw(state, rng, labels.shape[0], m.temperature)

    @jax.jit
    def _pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict[str, Array]:
        data_rng, sample_rng = jax.random.split(rng)
        images = batch["image"][:16]
        eps, _, _ = log_terms(variables(base.eval_params(state), state),
                              to_model_space(images, "dequantize", data_rng))
        pairs = len(images) // 2
        t = jnp.linspace(0.0, 1.0, 10)

        def lerp(e: Array) -> Array:  # [2 * pairs, ...] -> [pairs * 10, ...]
            t_ = t.reshape((1, 10) + (1,) * (e.ndim - 1))
            mixed = e[:pairs, None] * (1.0 - t_) + e[pairs:2 * pairs, None] * t_
            return mixed.reshape((-1,) + e.shape[1:])

        mixed = [lerp(e) for e in eps]
        return {"interpolations": decode(state, mixed, 1.0),
                "samples_cold": draw(state, sample_rng, 64, m.picture_temperature)}

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        out = jax.device_get(_pictures(state, batch, rng))
        return {"interpolations": viz.grid(np.asarray(out["interpolations"]), ncol=10),
                "samples_cold": viz.grid(np.asarray(out["samples_cold"]), ncol=8)}

    return base.Family(init, train_step, eval_step, sample, pictures)
