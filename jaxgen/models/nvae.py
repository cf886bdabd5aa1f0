"""NVAE (Vahdat & Kautz 2020): a deep hierarchical VAE (jaxgen.nn.nvae.NVAENet) with the measures
that make it train.

Decoders: bernoulli on binarized pixels (data.space binarize or threshold), logistic_mixture
(model.num_mixtures discretized logistics per pixel, channel means coupled as in PixelCNN++) on
8-bit pixels (data.space symmetric). The loss per image is recon + beta * sum_g gamma_g KL_g:
- KL warm-up: beta rises linearly from model.kl_min to 1 over the first model.kl_warmup of
  train.steps;
- KL balancing (model.kl_balance), during the warm-up only, as the paper's code:
  gamma_g = G c_g / sum c, c_g = (batch mean of KL_g + 0.01) / size_g, so groups that carry
  little information per latent are charged less (the paper's appendix says "proportional to
  the size"; its authors corrected that to "inversely", NVlabs/NVAE issue 26);
- plus model.spectral_reg x the sum of every conv kernel's largest singular value (one power
  iteration a step, the vectors in model_state) and model.bn_reg x the sum of every batch
  norm's largest |scale|; gradients clipped at optim.grad_clip; a step whose gradients or
  metrics are not finite is skipped (state kept) and counted in the metric `skipped`.
Eval: the ELBO and the IWAE bound (eval.iwae_samples, drawn in chunks of eval.iwae_chunk) in
nats and bits/dim, and the KL of each group (kl_group<g>: which groups carry information; the
picture `kl_maps` shows where in the image each group spends it).
Sampling uses batch-norm statistics re-estimated from model.readjust_batches batches of prior
samples at the sampling temperature (finalize; the paper's BN readjustment), kept as they were
if the estimate is not finite. model.flows > 0 adds that many flow cells (volume-preserving
inverse autoregressive shifts, jaxgen.nn.nvae.FlowCell) to each group's posterior; the KL is
then estimated from the sample (log q - log p) instead of computed in closed form.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import base
from jaxgen.nn.autoregressive import Likelihood
from jaxgen.nn.nvae import (Group, NVAENet, batchnorm_penalty, init_spectral_vectors,
                            latent_shapes, spectral_penalty)

Array = jax.Array
SPACES_OF = {"bernoulli": ("binarize", "threshold"), "logistic_mixture": ("symmetric",)}
DECLARATION = base.Declaration(
    # The paper's MNIST model (its Table 6) on 28x28: latent scales 14x14 and 7x7 (the paper
    # pads to 32x32 and uses 8x8 and 4x4).
    model=dict(likelihood="bernoulli", num_mixtures=10, ch=32, latent_ch=20, groups=(5, 5),
               cells=1, pre_blocks=1, outer_cells=2, expand=6, kl_warmup=0.3, kl_min=1e-4,
               kl_balance=True, spectral_reg=1e-2, bn_reg=1e-2, temperature=1.0,
               readjust_batches=20, flows=0),
    spaces=SPACES_OF, space_key="likelihood", who="the {likelihood} decoder",
    optim=dict(learning_rate=1e-2, warmup_steps=1500, schedule="cosine", decay_steps=120_000,
               grad_clip=200.0, ema_decay=0.999, ema_warmup=True),
    train=dict(steps=120_000, batch_size=200, log_every=1000, checkpoint_every=5000,
               eval_every=20_000, sample_every=10_000),
    eval=dict(iwae_samples=1000, iwae_chunk=50, batch_size=200))
TEMPERATURES = (0.6, 0.7, 0.8, 0.9, 1.0)  # the rows of the samples picture
READJUST_BATCH = 64
KL_BALANCE_EPS = 0.01


def kl_warmup(step: Array, steps: int, fraction: float, minimum: float) -> Array:
    """The KL weight beta at `step`: linear from `minimum` to 1 over the first `fraction` of
    `steps`, then 1."""
    ramp = jnp.asarray(step, jnp.float32) / max(fraction * steps, 1e-8)
    return jnp.clip(ramp, minimum, 1.0) if fraction > 0 else jnp.ones(())


def kl_balance(kl: Array, sizes: Array) -> Array:
    """The balancing coefficients [G] (held constant) of the group KLs kl [B, G] of groups of
    `sizes` [G] latents: proportional to each group's batch-mean KL per latent, summing to G."""
    c = (jnp.mean(jnp.abs(kl), axis=0) + KL_BALANCE_EPS) / sizes
    return jax.lax.stop_gradient(kl.shape[-1] * c / jnp.sum(c))


def log_q(g: Group) -> Array:
    """log q(z) of a posterior group, elementwise: the residual normal's density at its draw
    (the flow cells preserve volume, so at z_base when they moved it to z)."""
    return losses.gaussian_log_prob(g.z if g.z_base is None else g.z_base,
                                    g.prior_mean + g.d_mean, g.prior_log_std + g.d_log_std)


def kl_terms(g: Group) -> Array:
    """KL(q || p) of a posterior group, elementwise: analytic, or with flow cells the
    one-sample estimate log q(z) - log p(z)."""
    if g.z_base is None:
        return losses.residual_normal_kl(g.d_mean, g.d_log_std, g.prior_log_std)
    return log_q(g) - losses.gaussian_log_prob(g.z, g.prior_mean, g.prior_log_std)


def group_kls(groups: list[Group]) -> Array:
    """The KL(q || p) of each group, [B, G] (see kl_terms)."""
    return jnp.stack([losses.sum_except_batch(kl_terms(g)) for g in groups], axis=-1)


def kl_maps(groups: list[Group], height: int, width: int) -> Array:
    """Where each group spends its KL: per group, the batch-mean KL of each latent position
    (summed over channels), spread over the pixels it covers, [G, height, width] in nats per
    latent position (a map's sum over its latent positions is the group's mean KL)."""
    maps = []
    for g in groups:
        kl = jnp.mean(jnp.sum(kl_terms(g), -1), 0)
        maps.append(jnp.repeat(jnp.repeat(kl, height // kl.shape[0], 0),
                               width // kl.shape[1], 1))
    return jnp.stack(maps)


def check_model(config, spec: base.DataSpec) -> None:
    """Raises a UserError for a config the net or the eval cannot run."""
    m, h, w = config.model, spec.shape[0], spec.shape[1]
    if not m.groups or min(m.groups) < 1:
        raise UserError(f"model.groups needs one count of at least 1 per latent scale, got "
                        f"{tuple(m.groups)}")
    f = 2 ** (m.pre_blocks + len(m.groups) - 1)
    if h % f or w % f:
        raise UserError(f"model.pre_blocks ({m.pre_blocks}) and {len(m.groups)} latent scales "
                        f"need H and W multiples of {f}, the images are {h}x{w}: lower "
                        f"model.pre_blocks or use fewer scales")
    if m.pre_blocks and m.outer_cells < 1:
        raise UserError("model.outer_cells must be at least 1 (the last cell of a block resamples)")
    if min(m.ch, m.latent_ch, m.cells, m.expand) < 1:
        raise UserError("model.ch, latent_ch, cells and expand must be at least 1")
    if m.flows < 0:
        raise UserError(f"model.flows counts flow cells per group: 0 (none) or more, not "
                        f"{m.flows}")
    if not 0.0 <= m.kl_warmup <= 1.0:
        raise UserError(f"model.kl_warmup is a fraction of train.steps in [0, 1], got "
                        f"{m.kl_warmup}")
    if config.eval.iwae_samples % config.eval.iwae_chunk:
        raise UserError(f"eval.iwae_chunk ({config.eval.iwae_chunk}) must divide "
                        f"eval.iwae_samples ({config.eval.iwae_samples})")
    if m.likelihood == "logistic_mixture" and m.num_mixtures < 1:
        raise UserError("model.num_mixtures must be at least 1")


def make_family(config, spec: base.DataSpec) -> base.Family:
    m, space = config.model, config.data.space
    check_model(config, spec)
    h, w, c = spec.shape
    num_dims = h * w * c
    likelihood = Likelihood(m.likelihood, c, m.num_mixtures)
    shapes = latent_shapes(spec.shape, m.groups, m.pre_blocks, m.latent_ch)
    sizes = jnp.asarray([np.prod(s) for s in shapes], jnp.float32)
    net = NVAENet(m.ch, m.latent_ch, tuple(m.groups), m.cells, m.pre_blocks, m.outer_cells,
                  m.expand, likelihood.num_outputs, shapes[0][:2], flows=m.flows)
    readjust_net = net.clone(bn_momentum=0.0)  # its batch_stats are one batch's statistics
    sample_temperatures = TEMPERATURES + (m.temperature,)  # the last for `sample`
    optimizer = base.make_optimizer(config.optim)

    def noise(rng: Array, n: int) -> list[Array]:
        return [jax.random.normal(k, (n,) + s) for k, s in
                zip(jax.random.split(rng, len(shapes)), shapes)]

    def variables(params, stats) -> dict:
        return {"params": params, "batch_stats": stats}

    def to_images(out: Array, rng: Array) -> Array:
        """Decoder outputs -> images in [0, 1]: Bernoulli means, or draws of the mixture."""
        if m.likelihood == "bernoulli":
            return jax.nn.sigmoid(out)
        u = jax.random.uniform(rng, out.shape[:-1] + (likelihood.noise_size,),
                               minval=1e-5, maxval=1.0 - 1e-5)
        return to_unit(likelihood.draw(out, u), space)

    def bpd(nll: Array) -> Array:
        return losses.bits_per_dim(nll, num_dims)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        param_rng, eps_rng, vec_rng = jax.random.split(rng, 3)
        x = to_model_space(batch["image"], space, rng)
        v = net.init(param_rng, x, noise(eps_rng, x.shape[0]), False)
        stacked = jax.tree.map(lambda a: jnp.stack([a] * len(sample_temperatures)),
                               v["batch_stats"])  # until finalize readjusts them
        model_state = {"batch_stats": v["batch_stats"], "sample_stats": stacked,
                       "spectral": init_spectral_vectors(v["params"], vec_rng)}
        return base.new_state(v["params"], optimizer, config.optim.ema_decay, model_state)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        data_rng, eps_rng = jax.random.split(rng)
        x = to_model_space(batch["image"], space, data_rng)
        ms = state.model_state
        beta = kl_warmup(state.step, config.train.steps, m.kl_warmup, m.kl_min)

        def loss_fn(params):
            (out, groups), updated = net.apply(
                variables(params, ms["batch_stats"]), x, noise(eps_rng, x.shape[0]), True,
                mutable=["batch_stats"])
            recon = -likelihood.log_prob(out, x)
            kl = group_kls(groups)
            coeff = kl_balance(kl, sizes) if m.kl_balance else jnp.ones(len(shapes))
            weighted = kl @ jnp.where(beta < 1.0, coeff, 1.0)
            spectral, vectors = spectral_penalty(params, ms["spectral"])
            bn = batchnorm_penalty(params)
            loss = jnp.mean(recon + beta * weighted) + m.spectral_reg * spectral + m.bn_reg * bn
            new_ms = dict(ms, batch_stats=updated["batch_stats"], spectral=vectors)
            return loss, (recon, kl, spectral, bn, new_ms)

        (loss, (recon, kl, spectral, bn, new_ms)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.params)
        new = base.apply_gradients(state, grads, optimizer, config.optim).replace(
            model_state=new_ms)
        nelbo = recon + kl.sum(-1)
        metrics = {"loss": loss, "elbo": -jnp.mean(nelbo), "recon": jnp.mean(recon),
                   "kl": jnp.mean(kl.sum(-1)), "beta": beta, "elbo_bpd": jnp.mean(bpd(nelbo)),
                   "spectral": spectral, "bn_scale": bn, "grad_norm": optax.tree.norm(grads)}
        (kept, metrics), finite = base.keep_if_finite(  # a skipped step logs zeros
            (new, metrics), (state, jax.tree.map(jnp.zeros_like, metrics)), (grads, metrics))
        return kept.replace(step=new.step), {**metrics,
                                             "skipped": 1.0 - finite.astype(jnp.float32)}

    def iwae_terms(v: dict, x: Array, feats: list[Array], rng: Array, k: int,
                   chunk: int) -> tuple[Array, Array, Array]:
        """With k posterior samples drawn `chunk` at a time: the IWAE_k bound on log p(x) [B],
        and the means over the samples of -log p(x|z) [B] and of the group KLs [B, G] (the
        ELBO's terms)."""
        tile = lambda a: jnp.tile(a, (chunk,) + (1,) * (a.ndim - 1))  # noqa: E731
        xs, fs = tile(x), [tile(f) for f in feats]

        def body(_, key):
            out, groups = net.apply(v, noise(key, xs.shape[0]), fs, False, method=NVAENet.decode)
            log_px = likelihood.log_prob(out, xs)
            lw = log_px
            for g in groups:
                log_p = losses.gaussian_log_prob(g.z, g.prior_mean, g.prior_log_std)
                lw += losses.sum_except_batch(log_p - log_q(g))
            split = lambda a: a.reshape((chunk, -1) + a.shape[1:])  # noqa: E731
            return None, (split(lw), split(-log_px), split(group_kls(groups)))

        _, (lw, recon, kl) = jax.lax.scan(body, None, jax.random.split(rng, k // chunk))
        flat = lambda a: a.reshape((k,) + a.shape[2:])  # noqa: E731
        return (losses.iwae_bound(flat(lw), axis=0), flat(recon).mean(0), flat(kl).mean(0))

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        data_rng, iw_rng = jax.random.split(rng)
        v = variables(base.eval_params(state), state.model_state["batch_stats"])
        x = to_model_space(batch["image"], space, data_rng)
        feats = net.apply(v, x, False, method=NVAENet.encode)
        k = config.eval.iwae_samples
        log_px, recon, kl = iwae_terms(v, x, feats, iw_rng, k, config.eval.iwae_chunk)
        nelbo = recon + kl.sum(-1)
        return {"elbo": -nelbo, "recon": recon, "kl": kl.sum(-1), "elbo_bpd": bpd(nelbo),
                f"nll_iwae{k}": -log_px, "nll_bpd": bpd(-log_px),
                **{f"kl_group{g}": kl[:, g] for g in range(len(shapes))}}

    @jax.jit
    def readjusted_stats(params, stats, rng: Array, temperature: Array):
        """Batch-norm statistics averaged over READJUST_BATCH-image batches of samples at
        `temperature` (the decoder's; the encoder's stay), or `stats` if not finite."""
        def body(total, key):
            _, upd = readjust_net.apply(variables(params, stats), noise(key, READJUST_BATCH),
                                        None, True, temperature, method=NVAENet.decode,
                                        mutable=["batch_stats"])
            return jax.tree.map(jnp.add, total, upd["batch_stats"]), None

        n = m.readjust_batches
        total, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, stats),
                                jax.random.split(rng, n))
        mean = jax.tree.map(lambda t: t / n, total)
        return base.keep_if_finite(mean, stats, mean)[0]

    def finalize(state: base.TrainState) -> base.TrainState:
        """Readjusted batch-norm statistics for sampling at each of TEMPERATURES (the picture's
        rows) and at model.temperature (`sample`'s)."""
        stats = state.model_state["batch_stats"]
        if m.readjust_batches:
            rng = jax.random.fold_in(jax.random.key(config.seed), int(state.step))
            per_t = [readjusted_stats(base.eval_params(state), stats, jax.random.fold_in(rng, i),
                                      jnp.float32(t)) for i, t in enumerate(sample_temperatures)]
        else:
            per_t = [stats] * len(sample_temperatures)
        stacked = jax.device_get(jax.tree.map(lambda *a: jnp.stack(a), *per_t))
        return state.replace(model_state=dict(state.model_state, sample_stats=stacked))

    def draw(params, stats, rng: Array, n: int, temperature: float | Array) -> Array:
        eps_rng, pixel_rng = jax.random.split(rng)
        out, _ = net.apply(variables(params, stats), noise(eps_rng, n), None, False,
                           temperature, method=NVAENet.decode)
        return to_images(out, pixel_rng)

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        stats = jax.tree.map(lambda a: a[-1], state.model_state["sample_stats"])
        return draw(base.eval_params(state), stats, rng, labels.shape[0], m.temperature)

    @jax.jit
    def _pictures(state: base.TrainState, batch: base.Batch, rng: Array):
        """(originals, reconstructions from the posterior means, 8 samples at each of
        TEMPERATURES with its readjusted batch-norm statistics, the groups' KL maps of the
        originals)."""
        data_rng, pixel_rng, sample_rng = jax.random.split(rng, 3)
        params = base.eval_params(state)
        v = variables(params, state.model_state["batch_stats"])
        x = to_model_space(batch["image"][:32], space, data_rng)
        feats = net.apply(v, x, False, method=NVAENet.encode)
        zero = [jnp.zeros((x.shape[0],) + s) for s in shapes]
        out, groups = net.apply(v, zero, feats, False, method=NVAENet.decode)
        stats = jax.tree.map(lambda a: a[:len(TEMPERATURES)], state.model_state["sample_stats"])
        rows = jax.lax.map(lambda a: draw(params, a[0], a[1], 8, a[2]),
                           (stats, jax.random.split(sample_rng, len(TEMPERATURES)),
                            jnp.asarray(TEMPERATURES)))
        return (to_unit(x, space), to_images(out, pixel_rng), rows.reshape((-1,) + spec.shape),
                kl_maps(groups, h, w))

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """Reconstructions, samples by temperature (a row per temperature) and 'kl_maps': a
        cell per latent group in decoder order (coarsest first), its KL per position on 32
        test images, all on one scale (white: the largest), so a dark cell is a group that
        carries little information."""
        x, recon, rows, maps = (np.asarray(a) for a in
                                jax.device_get(_pictures(state, batch, rng)))
        scaled = maps / max(float(maps.max()), 1e-8)
        return {"reconstructions": viz.reconstructions(x, recon),
                "samples_by_temperature": viz.grid(rows, ncol=8),
                "kl_maps": viz.grid(scaled[..., None], ncol=len(maps))}

    return base.Family(init, train_step, eval_step, sample, pictures, finalize)

