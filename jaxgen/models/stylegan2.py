"""StyleGAN2 (Karras et al. 2020) on the adversarial core (jaxgen.models.adversarial): the
mapping network to W, the style-modulated skip generator with per-pixel noise, the residual
discriminator (networks: jaxgen.nn.stylegan2), and the paper's game:

- the non-saturating logistic loss; with style-mixing regularisation (model.style_mixing: the
  chance that a fake image takes a second latent's w from a random layer on) in every G image;
- lazy R1 on the reals (weight r1_gamma / 2) every model.r1_every steps, and lazy path-length
  regularisation of G (weight pl_weight) every model.pl_every steps on half the batch, each
  weighted by its interval, with Adam's lr and betas adjusted for it (adversarial.lazy_optim);
- model_state {w_avg: the running mean of w, for truncation; pl_mean: the running mean of the
  path lengths the penalty is measured against};
- the EMA of G with a half-life of optim.ema_half_life images (10,000 in the paper): the
  per-step decay 0.5 ** (batch_size / half_life);
- optional DiffAugment (model.augment, jaxgen.nn.diffaugment) on every image D sees.

Images live in [-1, 1]. Images smaller than model.resolution (a power of two; 0: the data's
side) are padded with black to it, centred, and samples are cropped back: MNIST's 28x28 trains
at 32x32. Samples use truncation model.truncation_psi (1: none); sample() draws fresh noise.
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import crop_to, pad_to, to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import adversarial, base
from jaxgen.nn import diffaugment
from jaxgen.nn.stylegan2 import Discriminator, Mapping, Synthesis, mix_styles, num_ws, truncate

Array = jax.Array
DECLARATION = base.Declaration(
    model=dict(resolution=0, z_dim=512, w_dim=512, mapping_layers=8, mapping_lr_mul=0.01,
               g_width=512, d_width=512, mbstd_group=4, style_mixing=0.9, r1_gamma=10.0,
               r1_every=16, pl_weight=2.0, pl_every=4, truncation_psi=1.0, augment=""),
    spaces=("symmetric",), who="StyleGAN2 (its generator outputs [-1, 1])",
    optim=dict(learning_rate=0.002, b1=0.0, b2=0.99, ema_half_life=10_000),
    train=dict(steps=781_250, batch_size=32, log_every=1000, checkpoint_every=10_000,
               eval_every=100_000, sample_every=10_000),
    eval=dict(batch_size=500, num_samples=10_000, sample_grid=64))
W_AVG_BETA = 0.995  # per G update, as in the paper's code
PL_DECAY = 0.01  # of the path-length mean per regularised step
PICTURE_PSIS = 8  # the truncation picture's columns, psi from 0 to 1


def side_of(m, spec: base.DataSpec) -> int:
    return m.resolution or spec.shape[0]


def check_config(config, spec: base.DataSpec) -> None:
    m, o = config.model, config.optim
    h, w, _ = spec.shape
    side = side_of(m, spec)
    if h != w or side < h or side < 8 or side & (side - 1):
        raise UserError(f"StyleGAN2 pads square images to a power-of-two side of 8 at least; "
                        f"model.resolution {m.resolution} does not fit {h}x{w} images: set "
                        f"--config.model.resolution to such a side, at least {max(h, w, 8)}")
    for key in ("r1_every", "pl_every", "mapping_layers", "mbstd_group"):
        if m[key] < 1:
            raise UserError(f"model.{key} must be at least 1, not {m[key]}")
    for key in ("r1_gamma", "pl_weight"):
        if m[key] < 0:
            raise UserError(f"model.{key} weighs a penalty: 0 (off) or more, not {m[key]}")
    if not 0 <= m.style_mixing <= 1:
        raise UserError(f"model.style_mixing is a probability, not {m.style_mixing}")
    for what, n in (("train.batch_size", config.train.batch_size),
                    ("eval.batch_size", config.eval.batch_size)):
        if n % min(m.mbstd_group, n):
            raise UserError(f"model.mbstd_group ({m.mbstd_group}) must divide {what} ({n}): "
                            f"the discriminator takes its images in such groups")
    if o.ema_decay:
        raise UserError("StyleGAN2 derives G's EMA decay from optim.ema_half_life (images) and "
                        "the batch size: set --config.optim.ema_decay=0")
    if o.ema_half_life < 0:
        raise UserError(f"optim.ema_half_life is in images: 0 (no EMA) or more, not "
                        f"{o.ema_half_life}")
    diffaugment.parse_policy(m.augment)


def real_images(images: Array, side: int) -> Array:
    """uint8 images [B, H, W, C] -> [B, side, side, C] in [-1, 1], padded with black."""
    return to_model_space(pad_to(images, side), "symmetric")


def networks(m, side: int, channels: int) -> tuple[Mapping, Synthesis, Discriminator]:
    return (Mapping(m.w_dim, m.mapping_layers, m.mapping_lr_mul),
            Synthesis(side, m.g_width, channels), Discriminator(m.d_width, m.mbstd_group))


def make_family(config, spec: base.DataSpec) -> base.Family:
    check_config(config, spec)
    m = config.model
    height, width, channels = spec.shape
    side = side_of(m, spec)
    mapping, synthesis, critic = networks(m, side, channels)
    layers = num_ws(side)
    policy = diffaugment.parse_policy(m.augment)
    pl_every = m.pl_every if m.pl_weight else 1
    r1_every = m.r1_every if m.r1_gamma else 1
    opt_g = base.make_optimizer(adversarial.lazy_optim(config.optim, pl_every))
    opt_d = base.make_optimizer(adversarial.lazy_optim(config.optim_d, r1_every))
    optim_g = config.optim.copy_and_resolve_references()  # with its EMA decay per step
    half_life = optim_g.ema_half_life
    optim_g.ema_decay = 0.5 ** (config.train.batch_size / half_life) if half_life else 0.0

    def styles(g, rng: Array, n: int) -> tuple[Array, Array]:
        """Training styles ws [n, L, W], style-mixed, and the first latent's w [n, W]."""
        z_rng, cross_rng, chance_rng = jax.random.split(rng, 3)
        z = jax.random.normal(z_rng, (2, n, m.z_dim))
        w1 = mapping.apply(g["mapping"], z[0])
        if not m.style_mixing:
            return jnp.repeat(w1[:, None], layers, axis=1), w1
        w2 = mapping.apply(g["mapping"], z[1])
        crossover = jnp.where(jax.random.uniform(chance_rng, (n,)) < m.style_mixing,
                              jax.random.randint(cross_rng, (n,), 1, layers), layers)
        return mix_styles(w1, w2, crossover, layers), w1

    def synthesize(g, ws: Array, rng: Array) -> Array:
        return synthesis.apply(g["synthesis"], ws, rngs={"noise": rng})

    def score(d, x: Array, rng: Array) -> Array:
        """D's logits [B] for images x, augmented when model.augment says so."""
        return critic.apply(d, diffaugment.diff_augment(rng, x, policy) if policy else x)

    def prepare(model_state, batch: base.Batch, rng: Array):
        return {"image": real_images(batch["image"], side)}, model_state, {}

    def critic_terms(d, g, model_state, real: base.Batch, rng: Array, regularise: bool):
        z_rng, noise_rng, real_rng, fake_rng = jax.random.split(rng, 4)
        x = real["image"]
        fake = synthesize(g, styles(g, z_rng, x.shape[0])[0], noise_rng)
        d_real, d_fake = score(d, x, real_rng), score(d, fake, fake_rng)
        # With the minibatch stddev, the gradient of the sum of the scores, as in the paper's
        # code: each image's also reaches the scores of its group.
        r1 = losses.r1_penalty(lambda v: score(d, v, real_rng), x) if regularise and m.r1_gamma \
            else jnp.zeros(())
        return adversarial.Terms(losses.gan_d_loss(d_real, d_fake, "nonsaturating"),
                                 m.r1_gamma / 2 * r1,
                                 {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake),
                                  "r1": r1}, model_state)

    def generator_terms(g, d, model_state, real: base.Batch, rng: Array, regularise: bool):
        z_rng, noise_rng, aug_rng, pl_rng = jax.random.split(rng, 4)
        n = real["image"].shape[0]
        ws, w = styles(g, z_rng, n)
        loss = losses.gan_g_loss(score(d, synthesize(g, ws, noise_rng), aug_rng),
                                 "nonsaturating")
        w_mean = jnp.mean(jax.lax.stop_gradient(w), axis=0)
        state = {"w_avg": w_mean + W_AVG_BETA * (model_state["w_avg"] - w_mean),
                 "pl_mean": model_state["pl_mean"]}
        lengths = penalty = jnp.zeros(())
        if regularise and m.pl_weight:
            state["pl_mean"], lengths, penalty = path_length_terms(g, model_state["pl_mean"],
                                                                   max(n // 2, 1), pl_rng)
        return adversarial.Terms(loss, m.pl_weight * penalty,
                                 {"pl_length": jnp.mean(lengths)}, state)

    def path_length_terms(g, pl_mean: Array, n: int, rng: Array):
        """(the new pl_mean, the path lengths [n], the penalty) on n fresh style-mixed images:
        pl_mean moves PL_DECAY of the way to the lengths' mean, and the penalty is the mean
        squared distance of the lengths from it (y ~ N(0, I) / sqrt(pixels))."""
        z_rng, noise_rng, y_rng = jax.random.split(rng, 3)
        y = jax.random.normal(y_rng, (n, side, side, channels)) / side
        lengths = losses.path_lengths(lambda v: synthesize(g, v, noise_rng),
                                      styles(g, z_rng, n)[0], y)
        pl_mean = pl_mean + PL_DECAY * (jnp.mean(jax.lax.stop_gradient(lengths)) - pl_mean)
        return pl_mean, lengths, jnp.mean(jnp.square(lengths - pl_mean))

    game = adversarial.Game(critic_terms, generator_terms, prepare, critic_every=r1_every,
                            generator_every=pl_every)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        m_rng, s_rng, d_rng, noise_rng = jax.random.split(rng, 4)
        n = batch["image"].shape[0]
        g = {"mapping": mapping.init(m_rng, jnp.zeros((n, m.z_dim))),
             "synthesis": synthesis.init({"params": s_rng, "noise": noise_rng},
                                         jnp.zeros((n, layers, m.w_dim)))}
        d = critic.init(d_rng, prepare(None, batch, rng)[0]["image"])
        model_state = {"w_avg": jnp.zeros((m.w_dim,)), "pl_mean": jnp.zeros(())}
        return adversarial.init_state(g, d, opt_g, opt_d, bool(optim_g.ema_decay), model_state)

    def to_images(x: Array) -> Array:
        """Generator outputs -> images of the data's shape in [0, 1]."""
        return to_unit(crop_to(x, height, width), "symmetric")

    def latents_to_ws(g, w_avg: Array, z: Array, psi: float | Array) -> Array:
        return jnp.repeat(truncate(mapping.apply(g["mapping"], z), w_avg, psi)[:, None],
                          layers, axis=1)

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        """D's logits on the test images and on as many samples (GANs have no likelihood)."""
        x = prepare(None, batch, rng)[0]["image"]
        z_rng, noise_rng = jax.random.split(rng)
        g = base.eval_params(state)["g"]
        ws = latents_to_ws(g, state.model_state["w_avg"],
                           jax.random.normal(z_rng, (x.shape[0], m.z_dim)), 1.0)
        return {"d_real": critic.apply(state.params["d"], x),
                "d_fake": critic.apply(state.params["d"], synthesize(g, ws, noise_rng))}

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        z_rng, noise_rng = jax.random.split(rng)
        g = base.eval_params(state)["g"]
        ws = latents_to_ws(g, state.model_state["w_avg"],
                           jax.random.normal(z_rng, (labels.shape[0], m.z_dim)),
                           m.truncation_psi)
        return to_images(synthesize(g, ws, noise_rng))

    @jax.jit
    def render(g, ws: Array, noise_keys: Array) -> Array:
        """Images of ws [n, L, W], image i with the noise of noise_keys[i] (equal keys: equal
        noise, so that a picture's cells differ by their styles only)."""
        one = lambda v, key: synthesize(g, v[None], key)[0]
        return to_images(jax.vmap(one)(ws, noise_keys))

    @jax.jit
    def mapped(g, z: Array) -> Array:
        return mapping.apply(g["mapping"], z)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """From the EMA generator, each from 64 renders of fixed latents (rng is the same at
        every eval):
        'fixed': 8x8 samples (psi 1), the same z and noise at every eval;
        'truncation': a row per z, psi from 0 (the mean w, the same image in every row) to 1;
        'style_mixing': coarse styles (the layers below the middle, up to 8x8 at 32x32) from
            the source in the row's first cell, fine ones from the source atop the column;
        'noise': a row per z (styles fixed): 7 noise draws, then the per-pixel standard
            deviation over 16 draws (scaled to the row's largest)."""
        g, w_avg = base.eval_params(state)["g"], state.model_state["w_avg"]
        z_rng, noise_rng = jax.random.split(rng)
        z = jax.random.normal(z_rng, (64, m.z_dim))
        keys = jax.random.split(noise_rng, 64)
        same = jnp.repeat(keys[:1], 64, axis=0)
        as_ws = lambda v: jnp.repeat(v[:, None], layers, axis=1)
        w = mapped(g, z)
        show = lambda images, ncol: viz.grid(np.asarray(images), ncol=ncol)
        out = {"fixed": show(render(g, as_ws(w), keys), 8)}
        psi = jnp.tile(jnp.linspace(0.0, 1.0, PICTURE_PSIS), 64 // PICTURE_PSIS)
        rows = jnp.repeat(w[:64 // PICTURE_PSIS], PICTURE_PSIS, axis=0)
        out["truncation"] = show(render(g, as_ws(truncate(rows, w_avg, psi[:, None])),
                                        jnp.repeat(keys[:64 // PICTURE_PSIS], PICTURE_PSIS,
                                                   axis=0)), PICTURE_PSIS)
        coarse, fine = w[:7], w[7:14]  # rows, columns
        mixes = mix_styles(jnp.repeat(coarse, 7, axis=0), jnp.tile(fine, (7, 1)),
                           jnp.full((49,), layers // 2), layers)
        cells = np.asarray(render(g, jnp.concatenate([as_ws(w[:15]), mixes]), same[:64]))
        first_row = np.concatenate([np.full_like(cells[:1], 0.5), cells[7:14]])
        body = np.concatenate([cells[:7, None], cells[15:].reshape((7, 7) + cells.shape[1:])],
                              axis=1)
        out["style_mixing"] = show(np.concatenate([first_row, body.reshape((-1,) +
                                                                             cells.shape[1:])]), 8)
        draws = np.asarray(render(g, as_ws(jnp.repeat(w[:4], 16, axis=0)), keys))
        draws = draws.reshape((4, 16) + draws.shape[1:])
        spread = draws.std(axis=1).mean(axis=-1, keepdims=True)
        spread = np.broadcast_to(spread / np.maximum(spread.max(axis=(1, 2, 3), keepdims=True),
                                                     1e-8), draws[:, 0].shape)
        out["noise"] = show(np.concatenate([draws[:, :7], spread[:, None]], axis=1).reshape(
            (-1,) + draws.shape[2:]), 8)
        return out

    train_step = adversarial.train_step_of(game, opt_g, opt_d, optim_g)
    return base.Family(init, train_step, eval_step, sample, pictures)
