"""What the config files share: a new config of a family from its declared defaults, the smoke
and cpu variants, and the variants of each kind of model. jaxgen.config loads and overrides."""
from ml_collections import ConfigDict

from jaxgen import models
from jaxgen.config import base_config
from jaxgen.errors import UnknownVariant


def family_config(family: str, dataset: str, **model) -> ConfigDict:
    """base_config() with `family`'s declared defaults (jaxgen.models.base.Declaration: its model
    block, its default data.space, its optim, train and eval settings) on `dataset`; `model`
    overrides model keys."""
    declared = models.declaration(family)
    c = base_config()
    c.data.name = dataset
    unknown = set(model) - set(declared.model)
    if unknown:
        raise KeyError(f"the {family} family has no model key {', '.join(sorted(unknown))}")
    c.model = ConfigDict(dict(declared.model, family=family, **model))
    spaces = declared.allowed_spaces(c.model)
    if spaces:
        c.data.space = spaces[0]
    for section in ("optim", "train", "eval"):
        c[section].update(getattr(declared, section))
    return c


def shrink_to_smoke(c: ConfigDict) -> ConfigDict:
    """The tiny variant every config has: a few steps of everything, for tests and CI."""
    c.train.update(steps=6, batch_size=16, log_every=3, checkpoint_every=3, eval_every=6,
                   sample_every=6)
    c.optim.warmup_steps = min(c.optim.warmup_steps, 3)  # a smoke run must move
    c.eval.update(batch_size=16, num_examples=32, num_samples=16, sample_grid=16,
                  picture_examples=32, iwae_samples=min(c.eval.iwae_samples, 4),
                  iwae_chunk=min(c.eval.iwae_chunk, 2))
    return c


def pick_variant(c: ConfigDict, variant: str | None, variants: dict,
                 cpu: dict | None = None) -> ConfigDict:
    """Applies `variants[variant]` (a function editing c), 'smoke' (after a '+' too: 'conv+smoke')
    and, where the config gives `cpu` (the arguments of `cpu_schedule`), 'cpu'."""
    if cpu is not None:
        variants = dict(variants, cpu=lambda c: cpu_schedule(c, **cpu))
    for name in (variant or "").split("+"):
        if not name:
            continue
        if name == "smoke":
            shrink_to_smoke(c)
        elif name in variants:
            variants[name](c)
        else:
            available = ", ".join(["smoke", *variants])
            raise UnknownVariant(f"unknown variant {name!r}; available: {available}")
    return c


def cpu_schedule(c: ConfigDict, steps: int, batch_size: int, model: dict | None = None,
                 optim: dict | None = None, warmup: int = 200, evals: int = 4,
                 eval: dict | None = None) -> ConfigDict:
    """The 'cpu' variant's training, sized for about 90 minutes of one CPU core: `model`, `optim`
    and `eval` overrides, warmup then cosine decay over `steps`, an EMA (where the config keeps
    one) with warmup, checkpoints every 500 steps, `evals` evals (the last at the end) and a
    sample grid at each."""
    c.model.update(model or {})
    c.optim.update(optim or {})
    c.eval.update(eval or {})
    c.optim.update(schedule="cosine", warmup_steps=warmup, decay_steps=steps, ema_warmup=True)
    c.train.update(steps=steps, batch_size=batch_size, log_every=100, checkpoint_every=500,
                   eval_every=steps // evals, sample_every=steps // evals)
    return c


def flow_config(flow: str, dataset: str, variant: str | None, tiny: dict,
                cpu: dict | None = None, **model) -> ConfigDict:
    """What every flow config shares; `model` sets its architecture, `tiny` the small one of the
    'tiny' and 'smoke' variants, `cpu` the arguments of `cpu_schedule` for the 'cpu' variant.
    Glow configs also get 'plain' (non-LU 1x1 convs)."""
    c = family_config("flows", dataset, flow=flow, **model)
    variants = {"tiny": lambda c: c.model.update(tiny)}
    if flow == "glow":
        variants["plain"] = lambda c: c.model.update(lu=False)
    pick_variant(c, variant, variants, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(tiny)
    return c


def gmm_config(dataset: str, components: int, reg_covar: float, init_examples: int, batch: int,
               passes: int, steps_per_pass: int, log_passes: int, eval_batch: int) -> ConfigDict:
    """What the Gaussian-mixture configs share: full covariances on pixels (model.pca_dim 0),
    `passes` passes over the training split of `steps_per_pass` steps of `batch` (the first two
    initialise, each later one is an EM iteration), one checkpoint, eval and grid at the end."""
    c = family_config("gmm", dataset, num_components=components, reg_covar=reg_covar,
                      init_examples=init_examples)
    steps = passes * steps_per_pass
    c.train.update(batch_size=batch, steps=steps, log_every=log_passes * steps_per_pass,
                   checkpoint_every=steps, eval_every=steps, sample_every=steps)
    c.eval.update(batch_size=eval_batch, sample_grid=100)
    return c


def gan_config(dataset: str, variant: str | None, variants: dict | None = None, *,
               steps: int = 20_000, batch: int = 64, edit=None, cpu: dict | None = None,
               **model) -> ConfigDict:
    """What every GAN config shares: a DCGAN-style default (nonsaturating loss, Adam 2e-4 with
    b1 0.5 for both players, an EMA generator, subpixel upsampling for CPU speed). Variants for
    every GAN: 'transposed' (the DCGAN paper's transposed convs), 'info' (InfoGAN: a 10-way code
    in G, guessed by a head of D), 'clusters' (G and D conditioned on 50 clusters of the real
    images, found by online k-means). `model` overrides the architecture and the
    game, `edit(c)` anything else before the variants apply. config.optim is G's optimizer and
    config.optim_d D's. `batch` images per critic update: train.batch_size = batch x n_critic.
    `cpu` (the arguments of `gan_cpu_schedule`) adds the 'cpu' variant.
    'smoke' gives tiny nets and at most 2 critic updates per step."""
    c = family_config("gan", dataset, **model)
    c.optim_d = ConfigDict(c.optim.to_dict())
    c.optim_d.ema_decay = 0.0  # only G's average is used
    c.train.update(steps=steps, batch_size=batch * c.model.n_critic)
    if edit is not None:
        edit(c)
    variants = dict(variants or {})
    if cpu is not None:
        variants["cpu"] = lambda c: gan_cpu_schedule(c, **cpu)
    pick_variant(c, variant, dict(variants,
                                  transposed=lambda c: c.model.update(upsample="transposed"),
                                  info=lambda c: c.model.update(info_codes=10, info_weight=1.0),
                                  clusters=lambda c: c.model.update(clusters=50)))
    if "smoke" in (variant or "").split("+"):  # at most 2 critic updates: each is compiled
        c.model.update(g_width=8, d_width=8, g_depth=2, d_depth=2, latent_dim=8,
                       n_critic=min(c.model.n_critic, 2))
        c.train.batch_size = 16 * c.model.n_critic
    return c


def gan_cpu_schedule(c: ConfigDict, steps: int, batch: int, model: dict | None = None,
                     evals: int = 2) -> ConfigDict:
    """A GAN's 'cpu' variant, sized for about 90 minutes of one CPU core: `model` overrides,
    `steps` generator steps of `batch` images per critic update, the config's learning rates
    (a decaying schedule is refitted to the run: D's over steps x n_critic updates), G's EMA
    with warmup, checkpoints every 500 steps and `evals` evals (the last at the end)."""
    c.model.update(model or {})
    n_critic = c.model.get("n_critic", 1)
    c.train.update(steps=steps, batch_size=batch * n_critic, log_every=100,
                   checkpoint_every=500, eval_every=steps // evals, sample_every=steps // evals)
    c.optim.ema_warmup = True
    for optim, updates in ((c.optim, steps), (c.optim_d, steps * n_critic)):
        if optim.schedule != "constant":
            optim.decay_steps = updates
    return c


def stylegan2_config(dataset: str, variant: str | None, *, steps: int | None = None,
                     cpu: dict | None = None, **model) -> ConfigDict:
    """What every StyleGAN2 config shares: the family's declared defaults (the paper's
    settings; `steps` overrides their length), D's optimizer config.optim_d the same Adam as
    G's (without an EMA). Variants: 'diffaug' (DiffAugment's colour, translation and cutout on
    every image D sees), 'cpu' (the arguments of `gan_cpu_schedule`), 'smoke' (tiny nets:
    widths 8, z and w of 8, 2 mapping layers)."""
    c = family_config("stylegan2", dataset, **model)
    c.train.steps = steps or c.train.steps
    c.optim_d = ConfigDict({k: v for k, v in c.optim.items() if k != "ema_half_life"})
    variants = {"diffaug": lambda c: c.model.update(augment="color,translation,cutout")}
    if cpu is not None:
        variants["cpu"] = lambda c: gan_cpu_schedule(c, **cpu)
    pick_variant(c, variant, variants)
    if "smoke" in (variant or "").split("+"):
        c.model.update(z_dim=8, w_dim=8, mapping_layers=2, g_width=8, d_width=8)
    return c


def pix2pix_config(dataset: str, task: str, variant: str | None, variants: dict | None = None,
                   *, cpu: dict | None = None, **model) -> ConfigDict:
    """What every pix2pix config shares: the family's declared defaults (the paper's game and
    Adam 2e-4, b1 0.5, for both players) on data.task `task` of `dataset`; `model` overrides.
    Variants: `variants` (other tasks), 'l1' (the L1 term alone, the paper's baseline), 'cpu'
    (the arguments of `gan_cpu_schedule`), 'smoke' (widths 8)."""
    c = family_config("pix2pix", dataset, **model)
    c.data.task = task
    c.optim_d = ConfigDict(c.optim.to_dict())
    variants = dict(variants or {}, l1=lambda c: c.model.update(gan_weight=0.0))
    if cpu is not None:
        variants["cpu"] = lambda c: gan_cpu_schedule(c, **cpu)
    pick_variant(c, variant, variants)
    if "smoke" in (variant or "").split("+"):
        c.model.update(g_width=8, d_width=8)
    return c


def ddpm_config(dataset: str, variant: str | None, *, guidance: float, optim: dict,
                train: dict, cpu: dict | None = None, **model) -> ConfigDict:
    """What every diffusion config shares (defaults: the DDPM CIFAR-10 model); `model`, `optim`
    and `train` override. Variants: cond (class-conditional, label dropout 0.1, guidance scale
    `guidance`), ddim (50 deterministic DDIM steps), cosine (schedule), v (v-prediction), smoke
    (a tiny U-Net, T = 10)."""
    c = family_config("diffusion", dataset, **model)
    c.optim.update(optim)
    c.train.update(train)
    variants = {
        "cond": lambda c: c.model.update(conditional=True, label_dropout=0.1,
                                         guidance_scale=guidance),
        "ddim": lambda c: c.model.update(sampler="ddim", sample_steps=50, eta=0.0),
        "cosine": lambda c: c.model.update(schedule="cosine"),
        "v": lambda c: c.model.update(prediction="v"),
    }
    pick_variant(c, variant, variants, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0,
                       norm_groups=4, timesteps=10, sample_steps=5)
    return c


def pixelcnn_config(dataset: str, space: str, variant: str | None, variants: dict | None,
                    smoke: dict, train: dict, optim: dict | None = None,
                    cpu: dict | None = None, **model) -> ConfigDict:
    """What every PixelCNN config shares; `model` sets the architecture (see the keys below),
    `smoke` the tiny one of the 'smoke' variant, `train` and `optim` the schedule. Binarized
    configs also get the '8bit' variant."""
    c = family_config("pixelcnn", dataset, **model)
    c.data.space = space
    c.optim.update(optim or {})
    c.train.update(train)
    if space == "binarize":
        variants = {"8bit": _pixelcnn_eight_bit, **(variants or {})}
    pick_variant(c, variant, variants or {}, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(smoke)
        c.eval.update(completions=1, sample_grid=8, num_samples=8)  # sampling dominates a smoke run
    return c


def _pixelcnn_eight_bit(c: ConfigDict) -> None:
    """A 256-way softmax over the 8-bit pixels in place of binarized ones."""
    c.data.space = "symmetric"
    c.model.likelihood = "softmax"


def vqvae_config(dataset: str, variant: str | None, *, levels: int, train: dict,
                 cpu: dict | None = None, **model) -> ConfigDict:
    """What every VQ-VAE (first-stage) config shares; `model` sets the sizes."""
    c = family_config("vqvae", dataset, levels=levels, **model)
    c.train.update(train)
    pick_variant(c, variant, {}, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(features=8, hidden=4, blocks=1, num_codes=16, code_dim=4)
    return c


def vqprior_config(dataset: str, first_stage: str, variant: str | None, *, train: dict,
                   cpu: dict | None = None, **model) -> ConfigDict:
    """What every VQ-VAE prior config shares: a Gated PixelCNN over the codes of the vqvae run
    in `first_stage`. Variants: cond (class-conditional), smoke (tiny, reads runs/<first>_smoke
    unless model.first_stage is set)."""
    c = family_config("vqprior", dataset, first_stage=first_stage, **model)
    c.data.space = "symmetric"  # unused: the codes come from the first stage's space
    c.train.update(train)
    pick_variant(c, variant, {"cond": lambda c: c.model.update(conditional=True)}, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(features=4, layers=2, out_hidden=8, first_stage=first_stage + "_smoke")
    return c


# The priors of configs/vqvae_cifar10.py and configs/vqvae2_cifar10.py.
CIFAR10_PRIOR = dict(features=128, layers=15, out_hidden=512, dropout=0.1,
                     train=dict(steps=100_000, batch_size=128, log_every=1000,
                                checkpoint_every=5000, eval_every=25_000, sample_every=25_000))


def nvae_config(dataset: str, variant: str | None, *, smoke: dict, cpu: dict | None = None,
                train: dict | None = None, optim: dict | None = None, eval: dict | None = None,
                **model) -> ConfigDict:
    """What every NVAE config shares: the family's defaults (the paper's MNIST model) with
    `model`, `train`, `optim` and `eval` overrides; the KL warm-up and the cosine decay follow
    train.steps. Variants: 'flows' (two flow cells per group in the posterior), 'cpu' (the
    arguments of `cpu_schedule`), 'smoke' (`smoke`: a tiny net, two readjustment batches)."""
    c = family_config("nvae", dataset, **model)
    c.train.update(train or {})
    c.optim.update(optim or {})
    c.eval.update(eval or {})
    pick_variant(c, variant, {"flows": lambda c: c.model.update(flows=2)}, cpu)
    if "smoke" in (variant or "").split("+"):
        c.model.update(smoke, readjust_batches=2)
    c.optim.decay_steps = c.train.steps
    return c
