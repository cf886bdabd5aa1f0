"""Denoising diffusion: DDPM (Ho et al. 2020) with DDIM sampling (Song et al. 2021), the cosine
schedule (Nichol & Dhariwal 2021), v-prediction (Salimans & Ho 2022) and classifier-free guidance
(Ho & Salimans 2022).

Model space: pixels in [-1, 1] (data.space symmetric). Timesteps are indices t = 0..T-1 standing
for the paper's 1..T; q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I). The U-Net predicts eps
or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (model.prediction) and trains on the simple loss
(MSE on that target, t uniform). Eval reports the variational bound L_T + sum L_{t-1} + L_0 in
bits/dim, with the discretized Gaussian decoder L_0 on 256 levels, so it bounds the 8-bit NLL; the
sum over t is exact (eval.bound_timesteps = 0 or >= T - 1) or a stratified Monte-Carlo estimate.
The reverse variance is fixed (model.variance): posterior beta~_t ("small") or beta_t ("large").
A conditional model (model.conditional) is bounded on log p(x | y) with the true labels.

Everything that samples or bounds takes a `Denoiser` (x_t, t, labels) -> eps, so the same code
runs the U-Net and, in the tests, analytic denoisers.
"""
from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import augment, to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn.unet import UNet, check_unet

Array = jax.Array
Denoiser = Callable[[Array, Array, Array], Array]  # (x_t [B,...], t int32 [B], labels [B]) -> eps

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")
VARIANCES = ("small", "large")
SAMPLERS = ("ancestral", "ddim")
DECLARATION = base.Declaration(  # the DDPM CIFAR-10 model (Ho et al. 2020)
    model=dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
               dropout=0.1, norm_groups=32, flip=False, timesteps=1000, schedule="linear",
               prediction="eps", variance="large", sampler="ancestral", sample_steps=50, eta=0.0,
               clip_denoised=True, conditional=False, guidance_scale=1.0, label_dropout=0.0),
    spaces=("symmetric",), who="diffusion ([-1, 1] pixels)", labels="conditional",
    optim=dict(learning_rate=2e-4, warmup_steps=5000, grad_clip=1.0, ema_decay=0.9999),
    eval=dict(bound_timesteps=32, num_examples=1000))
MAX_BETA = 0.999  # keeps the last cosine steps finite
CHAIN_SAMPLES, CHAIN_FRAMES = 8, 10  # the denoising-chain picture


@flax.struct.dataclass
class Schedule:
    """Per-timestep constants, float32, computed in float64."""

    betas: Array  # [T]
    alphas_bar: Array  # [T]  prod_{s <= t} (1 - beta_s)
    alphas_bar_prev: Array  # [T]  alphas_bar[t - 1], 1 at t = 0
    log_var_small: Array  # [T]  log beta~_t (posterior variance); beta~ at t = 1 for t = 0
    log_var_large: Array  # [T]  log beta_t; beta~ at t = 1 for t = 0 (Ho et al.'s decoder scale)


def make_schedule(name: str, num_steps: int) -> Schedule:
    """linear: betas from 1e-4 to 0.02 at T = 1000, both scaled by 1000 / T for other T (so
    abar_T stays ~ 4e-5); cosine: abar_t = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2)."""
    if num_steps < 2:
        raise UserError(f"model.timesteps must be at least 2, got {num_steps}")
    if name == "linear":
        scale = 1000.0 / num_steps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_steps)
    elif name == "cosine":
        f = np.cos((np.arange(num_steps + 1) / num_steps + 0.008) / 1.008 * np.pi / 2) ** 2
        betas = 1.0 - f[1:] / f[:-1]
    else:
        raise UserError(f"unknown model.schedule {name!r}; use {' or '.join(SCHEDULES)}")
    betas = np.minimum(betas, MAX_BETA)
    alphas_bar = np.cumprod(1.0 - betas)
    prev = np.append(1.0, alphas_bar[:-1])
    post_var = betas * (1.0 - prev) / (1.0 - alphas_bar)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return Schedule(f32(betas), f32(alphas_bar), f32(prev),
                    f32(np.log(np.append(post_var[1], post_var[1:]))),
                    f32(np.log(np.append(post_var[1], betas[1:]))))


def _at(a: Array, t: Array, x: Array) -> Array:
    """a[t] for t [B], shaped to broadcast against x [B, ...]."""
    return a[t].reshape((-1,) + (1,) * (x.ndim - 1))


def q_sample(s: Schedule, x0: Array, t: Array, noise: Array) -> Array:
    """x_t ~ q(x_t | x_0) given the standard normal `noise`."""
    ab = _at(s.alphas_bar, t, x0)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def q_posterior(s: Schedule, x0: Array, x_t: Array, t: Array) -> tuple[Array, Array]:
    """Mean and log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. eq. 7); the variance at t = 0,
    where it is 0, is the clipped value of `Schedule.log_var_small`."""
    beta, ab, ab_prev = (_at(a, t, x0) for a in (s.betas, s.alphas_bar, s.alphas_bar_prev))
    mean = (beta * jnp.sqrt(ab_prev) * x0 + (1.0 - ab_prev) * jnp.sqrt(1.0 - beta) * x_t) / (1 - ab)
    return mean, _at(s.log_var_small, t, x0)


def predict_x0(s: Schedule, x_t: Array, t: Array, eps: Array) -> Array:
    ab = _at(s.alphas_bar, t, x_t)
    return (x_t - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)


def v_target(s: Schedule, x0: Array, t: Array, eps: Array) -> Array:
    """v = sqrt(abar) eps - sqrt(1 - abar) x_0."""
    ab = _at(s.alphas_bar, t, x0)
    return jnp.sqrt(ab) * eps - jnp.sqrt(1.0 - ab) * x0


def eps_from_v(s: Schedule, x_t: Array, t: Array, v: Array) -> Array:
    ab = _at(s.alphas_bar, t, x_t)
    return jnp.sqrt(1.0 - ab) * x_t + jnp.sqrt(ab) * v


def guided(eps_fn: Denoiser, scale: float, null_label: int) -> Denoiser:
    """Classifier-free guidance: eps(x) + s (eps(x, y) - eps(x)), eps(x) the no-label prediction:
    s = 1 is the conditional model, s = 0 the unconditional one, s > 1 pushes towards y."""
    drop = lambda labels: jnp.full_like(labels, null_label)
    if scale == 1:
        return eps_fn
    if scale == 0:
        return lambda x, t, labels: eps_fn(x, t, drop(labels))

    def fn(x: Array, t: Array, labels: Array) -> Array:
        both = eps_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                      jnp.concatenate([labels, drop(labels)]))
        cond, uncond = jnp.split(both, 2)
        return uncond + scale * (cond - uncond)

    return fn


def _denoise(s: Schedule, eps_fn: Denoiser, x: Array, t: Array, labels: Array,
             clip: bool) -> tuple[Array, Array]:
    """(x_0 prediction, eps) at x_t; with clip, x_0 in [-1, 1] and eps made consistent with it."""
    eps = eps_fn(x, t, labels)
    x0 = predict_x0(s, x, t, eps)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
        ab = _at(s.alphas_bar, t, x)
        eps = (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1.0 - ab)
    return x0, eps


def _scan(step, x: Array, ts: np.ndarray, rng: Array, keep_chain: bool):
    """x <- step(x, t, t_prev, key) for t in ts (descending; t_prev = the next one, -1 at the
    end) in one compiled loop; returns x and, with keep_chain, x after every step [S, ...]."""
    prev = np.append(ts[1:], -1).astype(np.int32)

    def body(x, tt):
        x = step(x, tt[0], tt[1], jax.random.fold_in(rng, tt[0]))
        return x, x if keep_chain else None

    return jax.lax.scan(body, x, (jnp.asarray(ts, jnp.int32), jnp.asarray(prev)))


def ancestral_sample(s: Schedule, eps_fn: Denoiser, x: Array, labels: Array, rng: Array,
                     variance: str = "small", clip: bool = True, keep_chain: bool = False):
    """DDPM sampling from x_T = x over all T steps: x_{t-1} = posterior mean at the predicted x_0
    + sigma_t z, with no noise on the last step. Returns (x_0, chain or None)."""
    log_var = s.log_var_small if variance == "small" else s.log_var_large

    def step(x, t, _, key):
        tb = jnp.full(x.shape[:1], t)
        mean, _ = q_posterior(s, _denoise(s, eps_fn, x, tb, labels, clip)[0], x, tb)
        noise = jnp.exp(0.5 * log_var[t]) * jax.random.normal(key, x.shape)
        return mean + jnp.where(t > 0, noise, 0.0)

    return _scan(step, x, np.arange(s.betas.shape[0])[::-1], rng, keep_chain)


def ddim_timesteps(num_steps: int, sample_steps: int) -> np.ndarray:
    """The S of T timesteps DDIM visits, evenly spaced from T - 1 down to 0 (S = T: all)."""
    if not 1 <= sample_steps <= num_steps:
        raise UserError(f"model.sample_steps={sample_steps} must be in 1..model.timesteps "
                        f"({num_steps})")
    return np.round(np.linspace(num_steps - 1, 0, sample_steps)).astype(np.int32)


def ddim_sample(s: Schedule, eps_fn: Denoiser, x: Array, labels: Array, rng: Array,
                sample_steps: int, eta: float = 0.0, clip: bool = True, keep_chain: bool = False):
    """DDIM (Song et al. eq. 12) over `ddim_timesteps`; eta = 0 is deterministic, eta = 1 with
    all T steps is ancestral sampling with the posterior variance. Returns (x_0, chain or None)."""

    def step(x, t, t_prev, key):
        x0, eps = _denoise(s, eps_fn, x, jnp.full(x.shape[:1], t), labels, clip)
        ab = s.alphas_bar[t]
        ab_prev = jnp.where(t_prev >= 0, s.alphas_bar[jnp.maximum(t_prev, 0)], 1.0)
        sigma = eta * jnp.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
        direction = jnp.sqrt(jnp.maximum(1.0 - ab_prev - sigma ** 2, 0.0)) * eps
        return jnp.sqrt(ab_prev) * x0 + direction + sigma * jax.random.normal(key, x.shape)

    return _scan(step, x, ddim_timesteps(s.betas.shape[0], sample_steps), rng, keep_chain)


@flax.struct.dataclass
class Bound:
    """Terms of -log p(x_0) <= prior + diffusion + decoder, in nats."""

    prior: Array  # [B]  L_T = KL(q(x_T | x_0) || N(0, I))
    diffusion: Array  # [B]  sum over t >= 1 of KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
    decoder: Array  # [B]  L_0 = -log p(x_0 | x_1)

    @property
    def total(self) -> Array:
        return self.prior + self.diffusion + self.decoder


def bound_terms(num_steps: int, num_terms: int) -> int:
    """How many KL terms the bound evaluates: all T - 1 for num_terms 0 (or >= T - 1), else
    num_terms."""
    return min(num_terms, num_steps - 1) if num_terms > 0 else num_steps - 1


def variational_bound(s: Schedule, eps_fn: Denoiser, x0: Array, labels: Array, rng: Array,
                      num_terms: int, log_prob, variance: str = "small") -> Bound:
    """The bound of Ho et al. eq. 5 per example, with the reverse variance `variance` and the
    decoder log_prob(x_0, mean, log_std) (elementwise). The KL sum over t = 1..T-1 is split into
    `bound_terms` equal strata with one uniform t per stratum, weighted by the stratum's size: an
    unbiased estimate, exact when every stratum is one timestep."""
    num_steps, batch = s.betas.shape[0], x0.shape[0]
    log_var = s.log_var_small if variance == "small" else s.log_var_large
    edges = np.round(np.linspace(1, num_steps, bound_terms(num_steps, num_terms) + 1))
    edges = edges.astype(np.int32)
    keys = jax.random.split(rng, len(edges))

    def reverse(x_t: Array, t: Array) -> tuple[Array, Array]:
        x0_hat, _ = _denoise(s, eps_fn, x_t, t, labels, clip=False)
        return q_posterior(s, x0_hat, x_t, t)[0], 0.5 * _at(log_var, t, x0)

    def kl_term(_, inputs):
        lo, width, key = inputs
        t_key, noise_key = jax.random.split(key)
        t = lo + jax.random.randint(t_key, (batch,), 0, width)
        x_t = q_sample(s, x0, t, jax.random.normal(noise_key, x0.shape))
        mean_q, log_var_q = q_posterior(s, x0, x_t, t)
        kl = losses.gaussian_kl(mean_q, 0.5 * log_var_q, *reverse(x_t, t))
        return None, width * losses.sum_except_batch(kl)

    _, kls = jax.lax.scan(kl_term, None, (edges[:-1], np.diff(edges), keys[1:]))
    t0 = jnp.zeros((batch,), jnp.int32)
    x1 = q_sample(s, x0, t0, jax.random.normal(keys[0], x0.shape))
    decoder = -losses.sum_except_batch(log_prob(x0, *reverse(x1, t0)))
    ab_last = s.alphas_bar[-1]
    prior = losses.gaussian_kl(jnp.sqrt(ab_last) * x0, 0.5 * jnp.log1p(-ab_last))
    return Bound(losses.sum_except_batch(prior), kls.sum(0), decoder)


def _check(config, spec: base.DataSpec) -> None:
    m = config.model
    for key, allowed in (("prediction", PREDICTIONS), ("variance", VARIANCES),
                         ("sampler", SAMPLERS)):
        if m[key] not in allowed:
            raise UserError(f"unknown model.{key} {m[key]!r}; use {' or '.join(allowed)}")
    if m.guidance_scale != 1 and not m.conditional:
        raise UserError("model.guidance_scale other than 1 needs model.conditional=true")
    if m.guidance_scale < 0 or not 0 <= m.label_dropout < 1:
        raise UserError("model.guidance_scale must be >= 0 and model.label_dropout in [0, 1)")
    if m.guidance_scale != 1 and not m.label_dropout:
        raise UserError("a guidance scale other than 1 needs an unconditional model too: set "
                        "model.label_dropout > 0 (e.g. 0.1) for training")
    ddim_timesteps(m.timesteps, m.sample_steps)
    check_unet(spec.shape, m.ch, tuple(m.ch_mult), tuple(m.attn_resolutions), m.norm_groups)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    _check(config, spec)
    h, w, c = spec.shape
    num_classes = spec.num_classes if m.conditional else 0
    net = UNet(m.ch, tuple(m.ch_mult), m.num_res_blocks, tuple(m.attn_resolutions), m.dropout,
               c, num_classes, m.norm_groups)
    sched = make_schedule(m.schedule, m.timesteps)
    optimizer = base.make_optimizer(config.optim)
    num_terms = bound_terms(m.timesteps, config.eval.bound_timesteps)

    def denoiser(params, guidance: float) -> Denoiser:
        def eps_fn(x: Array, t: Array, labels: Array) -> Array:
            out = net.apply({"params": params}, x, t, labels)
            return out if m.prediction == "eps" else eps_from_v(sched, x, t, out)

        return guided(eps_fn, guidance, num_classes)

    def simple_loss(params, x0: Array, labels: Array, rng: Array, train: bool):
        """Per-example MSE on the prediction target at a uniform t: ([B], t [B])."""
        t_rng, noise_rng, dropout_rng = jax.random.split(rng, 3)
        t = jax.random.randint(t_rng, x0.shape[:1], 0, m.timesteps)
        noise = jax.random.normal(noise_rng, x0.shape)
        target = noise if m.prediction == "eps" else v_target(sched, x0, t, noise)
        out = net.apply({"params": params}, q_sample(sched, x0, t, noise), t, labels, train=train,
                        rngs={"dropout": dropout_rng})
        return losses.sum_except_batch((out - target) ** 2) / (h * w * c), t

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        x = to_model_space(batch["image"], "symmetric")
        t = jnp.zeros(x.shape[:1], jnp.int32)
        # Under threefry each of the U-Net's ~100 initialisers compiles to its own unrolled
        # hash (15 s of XLA CPU compile for the smoke net); an "rbg" key draws them from XLA's
        # RngBitGenerator, which compiles in a fraction of that.
        key = jax.random.wrap_key_data(jnp.tile(jax.random.key_data(rng), 2), impl="rbg")
        params = net.init(key, x, t, batch["label"])["params"]
        return base.new_state(params, optimizer, config.optim.ema_decay)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        flip_rng, label_rng, loss_rng = jax.random.split(rng, 3)
        x0 = to_model_space(batch["image"], "symmetric")
        if m.flip:
            x0 = augment(flip_rng, x0, 0, True)
        labels = batch["label"]
        if num_classes:  # label dropout trains the unconditional model (label num_classes)
            drop = jax.random.bernoulli(label_rng, m.label_dropout, labels.shape)
            labels = jnp.where(drop, num_classes, labels)

        def loss_fn(params):
            mse, t = simple_loss(params, x0, labels, loss_rng, train=True)
            return jnp.mean(mse), (mse, t)

        (loss, (mse, t)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = base.apply_gradients(state, grads, optimizer, config.optim)
        quarter = t * 4 // m.timesteps
        by_quarter = {  # 0 when no example of the batch fell in that quarter of the timesteps
            f"mse_t{q}": jnp.sum(jnp.where(quarter == q, mse, 0.0))
            / jnp.maximum(jnp.sum(quarter == q), 1) for q in range(4)}
        return state, {"loss": loss, **by_quarter}

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        bound_rng, loss_rng = jax.random.split(rng)
        params = base.eval_params(state)
        x0 = to_model_space(batch["image"], "symmetric")
        labels = batch["label"]
        b = variational_bound(sched, denoiser(params, 0.0), x0, labels, bound_rng, num_terms,
                              losses.discretized_gaussian_log_prob, m.variance)
        bpd = lambda nats: losses.bits_per_dim(nats, h * w * c)
        return {"elbo_bpd": bpd(b.total), "prior_bpd": bpd(b.prior),
                "diffusion_bpd": bpd(b.diffusion), "decoder_bpd": bpd(b.decoder),
                "loss": simple_loss(params, x0, labels, loss_rng, train=False)[0],
                "bound_timesteps": jnp.full(x0.shape[:1], float(num_terms))}

    def generate(params, rng: Array, labels: Array, keep_chain: bool):
        init_rng, loop_rng = jax.random.split(rng)
        x = jax.random.normal(init_rng, (labels.shape[0], h, w, c))
        eps_fn = denoiser(params, m.guidance_scale)
        if m.sampler == "ancestral":
            return ancestral_sample(sched, eps_fn, x, labels, loop_rng, m.variance,
                                    m.clip_denoised, keep_chain)
        return ddim_sample(sched, eps_fn, x, labels, loop_rng, m.sample_steps, m.eta,
                           m.clip_denoised, keep_chain)

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        return to_unit(generate(base.eval_params(state), rng, labels, False)[0], "symmetric")

    @jax.jit
    def _chain(state: base.TrainState, rng: Array) -> Array:
        labels = jnp.arange(CHAIN_SAMPLES, dtype=jnp.int32) % max(num_classes, 1)
        _, chain = generate(base.eval_params(state), rng, labels, True)  # [S, n, H, W, C]
        frames = np.round(np.linspace(0, chain.shape[0] - 1, CHAIN_FRAMES)).astype(int)
        return to_unit(chain[frames].swapaxes(0, 1).reshape(-1, h, w, c), "symmetric")

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """The denoising chain: one row per sample, x_t from t = T - 1 (left) to x_0 (right)."""
        return {"denoising": viz.grid(np.asarray(_chain(state, rng)), ncol=CHAIN_FRAMES)}

    return base.Family(init, train_step, eval_step, sample, pictures,
                       conditional=bool(num_classes))
