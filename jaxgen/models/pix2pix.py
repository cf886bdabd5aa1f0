"""pix2pix (Isola et al. 2017): image-to-image translation by a conditional GAN, on the
adversarial core (jaxgen.models.adversarial).

A batch pairs a `condition` image (the input: a gray, masked or edge image, built by data.task,
jaxgen.data.tasks, or given by the source) with its `image` (the target). G is a U-Net of the
condition with dropout as its noise; D a PatchGAN scoring (condition, image) pairs per patch
(networks: jaxgen.nn.pix2pix). The game, per step, one D update then one G update:

    D: the non-saturating logistic loss on D(c, y) against D(c, G(c)), every patch a sample;
    G: gan_weight x the non-saturating loss on D(c, G(c)) + l1_weight x mean |G(c) - y|.

The L1 term is computed on [-1, 1] images (the paper's lambda 100 is for those) and logged as
`l1` in [0, 1] units, as eval reports it, beside the cGAN term `g_gan`. gan_weight 0 is the
paper's L1-alone baseline. Eval on the test pairs, per image in [0, 1]: l1, mse, psnr (dB),
ssim; with eval.feature_workdir, the sample metrics of the outputs for the test conditions
(Family.translate), and the classifier's accuracy on them (cond_accuracy). The picture
'translations' shows rows of conditions, outputs and targets.
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.metrics import ssim
from jaxgen.models import adversarial, base
from jaxgen.nn.pix2pix import PatchGAN, UNet, check_unet, patch_grid

Array = jax.Array
DECLARATION = base.Declaration(
    model=dict(g_width=64, d_width=64, depth=8, d_layers=3, dropout=0.5, dropout_layers=3,
               l1_weight=100.0, gan_weight=1.0),
    spaces=("symmetric",), who="pix2pix (its generator outputs [-1, 1])",
    optim=dict(learning_rate=2e-4, b1=0.5),
    train=dict(steps=50_000, batch_size=64, log_every=500, checkpoint_every=5000,
               eval_every=10_000, sample_every=10_000),
    eval=dict(batch_size=500, picture_examples=24))
PICTURE_COLUMNS = 8


def condition_shape(spec: base.DataSpec) -> tuple[int, ...]:
    shapes = {name: shape for name, shape, _ in spec.extras}
    if "condition" not in shapes:
        raise UserError("pix2pix translates a condition image into the image, and this data has "
                        "none: set --config.data.task (colorize, inpaint, edges or paired), or "
                        "give an npz source a 'condition' array")
    return tuple(shapes["condition"])


def check_config(config, spec: base.DataSpec) -> None:
    m = config.model
    cond = condition_shape(spec)
    if cond[:2] != tuple(spec.shape[:2]):
        raise UserError(f"the condition images are {cond[0]}x{cond[1]} and the images "
                        f"{spec.shape[0]}x{spec.shape[1]}; pix2pix needs pairs of one size")
    check_unet(spec.shape, m.depth)
    if m.d_layers < 0 or patch_grid(min(spec.shape[:2]), m.d_layers) < 1:
        raise UserError(f"model.d_layers ({m.d_layers}) halvings leave the PatchGAN no patch of "
                        f"{spec.shape[0]}x{spec.shape[1]} images; use 0 to "
                        f"{int(np.log2(min(spec.shape[:2]) / 3))}")
    if not 0 <= m.dropout < 1:
        raise UserError(f"model.dropout is a probability below 1, not {m.dropout}")
    for key in ("l1_weight", "gan_weight"):
        if m[key] < 0:
            raise UserError(f"model.{key} weighs a loss term: 0 (off) or more, not {m[key]}")


def make_family(config, spec: base.DataSpec) -> base.Family:
    check_config(config, spec)
    m = config.model
    channels = spec.shape[-1]
    gen = UNet(m.g_width, m.depth, channels, m.dropout, m.dropout_layers)
    critic = PatchGAN(m.d_width, m.d_layers)
    opt_g, opt_d = base.make_optimizer(config.optim), base.make_optimizer(config.optim_d)

    def translate(g, condition: Array, rng: Array) -> Array:
        return gen.apply(g, condition, rngs={"dropout": rng})

    def prepare(model_state, batch: base.Batch, rng: Array):
        return ({"image": to_model_space(batch["image"], "symmetric"),
                 "condition": to_model_space(batch["condition"], "symmetric")}, model_state, {})

    def critic_terms(d, g, model_state, real: base.Batch, rng: Array, regularise: bool):
        c = real["condition"]
        d_real = critic.apply(d, c, real["image"])
        d_fake = critic.apply(d, c, translate(g, c, rng))
        return adversarial.Terms(losses.gan_d_loss(d_real, d_fake, "nonsaturating"), jnp.zeros(()),
                                 {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)},
                                 model_state)

    def generator_terms(g, d, model_state, real: base.Batch, rng: Array, regularise: bool):
        c = real["condition"]
        fake = translate(g, c, rng)
        g_gan = losses.gan_g_loss(critic.apply(d, c, fake), "nonsaturating")
        l1 = jnp.mean(jnp.abs(fake - real["image"]))  # on [-1, 1]: twice the [0, 1] value
        return adversarial.Terms(m.gan_weight * g_gan + m.l1_weight * l1, jnp.zeros(()),
                                 {"g_gan": g_gan, "l1": l1 / 2}, model_state)

    game = adversarial.Game(critic_terms, generator_terms, prepare)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        g_rng, drop_rng, d_rng = jax.random.split(rng, 3)
        x = prepare(None, batch, rng)[0]
        g = gen.init({"params": g_rng, "dropout": drop_rng}, x["condition"])
        d = critic.init(d_rng, x["condition"], x["image"])
        return adversarial.init_state(g, d, opt_g, opt_d, bool(config.optim.ema_decay))

    def outputs(state: base.TrainState, batch: base.Batch, rng: Array) -> Array:
        """G's translations of the batch's conditions, in [0, 1]."""
        condition = to_model_space(batch["condition"], "symmetric")
        return to_unit(translate(base.eval_params(state)["g"], condition, rng), "symmetric")

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        """Per test pair: L1, MSE, PSNR and SSIM of G's output against the target in [0, 1]."""
        fake, target = outputs(state, batch, rng), to_model_space(batch["image"], "unit")
        return {"l1": jnp.mean(jnp.abs(fake - target), axis=(1, 2, 3)),
                **losses.reconstruction_errors(target, fake), "ssim": ssim(fake, target)}

    _outputs = jax.jit(outputs)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """'translations': for each group of 8 test pairs, a row of conditions (their first
        `channels` channels, or the first repeated), one of G's outputs and one of targets."""
        n = min(len(batch["image"]), 3 * PICTURE_COLUMNS) // PICTURE_COLUMNS * PICTURE_COLUMNS
        n = n or len(batch["image"])
        fake = np.asarray(_outputs(state, batch, rng))[:n]
        cond = np.asarray(batch["condition"][:n]).astype(np.float32) / 255.0
        cond = cond[..., :channels] if cond.shape[-1] >= channels else \
            np.repeat(cond[..., :1], channels, axis=-1)
        target = np.asarray(batch["image"][:n]).astype(np.float32) / 255.0
        cols = min(n, PICTURE_COLUMNS)
        rows = np.stack([a.reshape((-1, cols) + a.shape[1:]) for a in (cond, fake, target)], 1)
        return {"translations": viz.grid(rows.reshape((-1,) + fake.shape[1:]), ncol=cols)}

    train_step = adversarial.train_step_of(game, opt_g, opt_d, config.optim)
    return base.Family(init, train_step, eval_step, None, pictures, translate=outputs)
