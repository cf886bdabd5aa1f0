"""Stationary Gaussian textures from one exemplar: ADSN and RPN (Galerne, Gousseau & Morel 2011).

The exemplar u [H, W, C] is first split into its periodic and smooth components (Moisan 2011),
so that the jump between opposite borders does not leak into the spectrum as a cross. From the
periodic component p and the mean m the model keeps the spot t = (p - m) / sqrt(HW):
- ADSN (asymptotic discrete spot noise): m + t * W, a circular convolution of the spot with
  Gaussian white noise W, one noise for every colour channel: the Gaussian field whose
  covariance is the spot's autocorrelation (cross-channel terms included);
- RPN (random phase noise): the spot's Fourier transform times a uniform random phase,
  Hermitian-symmetric, the same phase added to every channel's own phase, so the Fourier
  modulus and the phase differences between channels (the colour) are kept.
An output larger than the exemplar pads the spot with zeros to its size (the paper's extension:
mean and pixel variance are kept, nothing is tiled); a smaller one is a crop of a synthesis of
at least the exemplar's size. Images are in [0, 1] (data.space unit); samples are clipped there.

"Training" is the fit, one step: each train step fits the first image of its batch. With an
`image:` source that is the exemplar itself; with a `folder:` source, the seeded shuffle's pick.
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import viz
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base

Array = jax.Array
SYNTHESES = ("adsn", "rpn")
DECLARATION = base.Declaration(
    model=dict(
        synthesis="rpn",  # or adsn; both free to change after training, as is sample_size
        sample_size=(0, 0),  # (height, width) of samples; 0: the exemplar's
        eval_samples=16),  # ADSN samples per image for the autocovariance error
    spaces=("unit",), who="the texture model (images in [0, 1])",
    train=dict(steps=1, batch_size=1, num_devices=1, log_every=1, checkpoint_every=1,
               eval_every=1, sample_every=1),
    eval=dict(batch_size=1, num_samples=16, sample_grid=16, picture_examples=1))


def periodic_smooth(u: Array) -> tuple[Array, Array]:
    """Moisan's decomposition u = p + s of u [H, W, C]: s is smooth (its periodic Laplacian is the
    jump across opposite borders) with mean 0, and p is periodic with p's periodic Laplacian equal
    to u's Laplacian inside the frame. Returns (p, s)."""
    h, w = u.shape[:2]
    rows = u[-1] - u[0]  # [W, C]: the jump from the last row to the first
    cols = u[:, -1] - u[:, 0]  # [H, C]
    v = jnp.zeros_like(u).at[0].add(rows).at[-1].add(-rows)
    v = v.at[:, 0].add(cols).at[:, -1].add(-cols)
    v_hat = jnp.fft.rfft2(v, axes=(0, 1))
    laplacian = (2 * jnp.cos(2 * jnp.pi * jnp.fft.fftfreq(h))[:, None]
                 + 2 * jnp.cos(2 * jnp.pi * jnp.fft.rfftfreq(w))[None, :] - 4)[..., None]
    s_hat = jnp.where(laplacian == 0, 0, v_hat / jnp.where(laplacian == 0, 1, laplacian))
    s = jnp.fft.irfft2(s_hat, s=(h, w), axes=(0, 1))
    return u - s, s


def fit(u: Array) -> dict[str, Array]:
    """The model of exemplar u [H, W, C] in [0, 1]: {exemplar, mean [C], spot [C, H, W]}."""
    h, w = u.shape[:2]
    p, _ = periodic_smooth(u)
    mean = p.mean((0, 1))  # = u's mean: s has mean 0
    return {"exemplar": u, "mean": mean, "spot": jnp.moveaxis(p - mean, -1, 0) / np.sqrt(h * w)}


def periodic_part(model: dict[str, Array]) -> Array:
    """The exemplar's periodic component p = mean + sqrt(HW) spot, [H, W, C]."""
    _, h, w = model["spot"].shape
    return jnp.moveaxis(model["spot"], 0, -1) * np.sqrt(h * w) + model["mean"]


def synthesize(rng: Array, mean: Array, spot: Array, size: tuple[int, int], synthesis: str
               ) -> Array:
    """One ADSN or RPN texture [size[0], size[1], C] of the spot [C, h, w] (not clipped)."""
    if synthesis not in SYNTHESES:
        raise ValueError(f"unknown synthesis {synthesis!r}; use one of {SYNTHESES}")
    _, h, w = spot.shape
    hp, wp = max(size[0], h), max(size[1], w)
    spot_hat = jnp.fft.rfft2(jnp.pad(spot, ((0, 0), (0, hp - h), (0, wp - w))))
    noise_hat = jnp.fft.rfft2(jax.random.normal(rng, (hp, wp)))
    if synthesis == "adsn":
        out_hat = spot_hat * noise_hat
    else:  # the phase of white noise's transform is a uniform random phase, Hermitian-symmetric
        modulus = jnp.abs(noise_hat)
        phase = jnp.where(modulus > 0, noise_hat / jnp.where(modulus > 0, modulus, 1), 1)
        out_hat = spot_hat * phase * np.sqrt(hp * wp)
    out = jnp.fft.irfft2(out_hat, s=(hp, wp))[:, : size[0], : size[1]]
    return jnp.moveaxis(out, 0, -1) + mean


def sample_batch(rng: Array, model: dict, n: int, size: tuple[int, int], synthesis: str) -> Array:
    """n independent textures [n, size[0], size[1], C] (not clipped)."""
    return jax.vmap(lambda k: synthesize(k, model["mean"], model["spot"], size, synthesis))(
        jax.random.split(rng, n))


def power(x: Array, mean: Array) -> Array:
    """|FFT(x - mean)|^2 per channel of images x [..., H, W, C] -> [..., C, H, W // 2 + 1]."""
    return jnp.abs(jnp.fft.rfft2(jnp.moveaxis(x - mean, -1, -3))) ** 2


def relative_error(got: Array, want: Array) -> Array:
    """||got - want|| / ||want|| over the trailing three axes."""
    return jnp.sqrt(jnp.sum((got - want) ** 2, (-3, -2, -1)) / jnp.sum(want**2, (-3, -2, -1)))


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    if m.synthesis not in SYNTHESES:
        raise UserError(f"unknown model.synthesis {m.synthesis!r}; use adsn or rpn")
    size = tuple(int(v) for v in m.sample_size)
    if len(size) != 2 or min(size) < 0:
        raise UserError(f"model.sample_size must be (height, width), (0, 0) for the exemplar's "
                        f"size, not {m.sample_size!r}")
    h, w, c = spec.shape
    size = (size[0] or h, size[1] or w)
    if m.eval_samples < 1:
        raise UserError("model.eval_samples must be a positive integer")

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        del rng, batch
        model = {"exemplar": jnp.zeros((h, w, c)), "mean": jnp.zeros(c),
                 "spot": jnp.zeros((c, h, w))}
        return base.TrainState(step=jnp.zeros((), jnp.int32), params={}, opt_state={},
                               model_state=model)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        del rng
        model = fit(to_model_space(batch["image"][0], "unit"))
        smooth = model["exemplar"] - periodic_part(model)
        # pixel_var: the variance of p (and of every sample); smooth_fraction: the share of
        # the exemplar's variance in its smooth component, the border jumps that were removed
        metrics = {"pixel_var": jnp.mean(model["spot"] ** 2) * h * w,
                   "smooth_fraction": jnp.sum(smooth**2)
                   / jnp.sum((model["exemplar"] - model["mean"]) ** 2)}
        return state.replace(step=state.step + 1, model_state=model), metrics

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        """Against each image x's periodic component p_x: the Fourier-modulus error of one RPN
        sample, and the error of the ADSN autocovariance estimated from model.eval_samples
        samples (its Monte-Carlo floor is about 1/sqrt(eval_samples)), both relative L2."""
        model = state.model_state
        x = to_model_space(batch["image"], "unit")
        p = jax.vmap(lambda im: periodic_smooth(im)[0])(x)
        target = power(p, p.mean((1, 2), keepdims=True))  # [B, C, H, W']
        rng_rpn, rng_adsn = jax.random.split(rng)
        b = x.shape[0]
        rpn = sample_batch(rng_rpn, model, b, (h, w), "rpn")
        adsn = sample_batch(rng_adsn, model, b * m.eval_samples, (h, w), "adsn")
        adsn_power = power(adsn, model["mean"]).reshape((b, m.eval_samples) + target.shape[1:])
        return {"rpn_modulus_err": relative_error(jnp.sqrt(power(rpn, model["mean"])),
                                                  jnp.sqrt(target)),
                "adsn_autocov_err": relative_error(adsn_power.mean(1), target)}

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        return jnp.clip(sample_batch(rng, state.model_state, labels.shape[0], size, m.synthesis),
                        0.0, 1.0)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """'textures': the exemplar, ADSN and RPN at its size; below, ADSN and RPN at twice it."""
        del batch
        model = jax.device_get(state.model_state)
        out = {}
        for scale in (1, 2):
            for name in SYNTHESES:
                out[name, scale] = synth(jax.random.fold_in(rng, scale), model["mean"],
                                         model["spot"], (scale * h, scale * w), name)
        return {"textures": viz.montage([[model["exemplar"], out["adsn", 1], out["rpn", 1]],
                                          [out["adsn", 2], out["rpn", 2]]])}

    synth = jax.jit(synthesize, static_argnums=(3, 4))
    return base.Family(init, train_step, eval_step, sample, pictures)
