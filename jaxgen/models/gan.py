"""GAN, DCGAN, conditional GAN, WGAN and WGAN-GP: the classic games on the adversarial core
(jaxgen.models.adversarial: n critic updates, two optimizers, the EMA of G, skipped non-finite
steps). G and D have their own optimizers (config.optim and config.optim_d); the EMA of G
(optim.ema_decay) is what eval and sampling use.

Images live in [-1, 1] (data.space symmetric); D's outputs are logits (minimax, nonsaturating)
or critic scores (wasserstein, hinge). Architectures (model.arch): mlp (jaxgen.nn.mlp_gan),
dcgan (jaxgen.nn.dcgan), resnet (jaxgen.nn.resnet_gan). A penalty on D (model.penalty: gp,
WGAN-GP's on interpolates; r1, on real images) is applied every model.penalty_every steps.

InfoGAN (model.info_codes = K > 0, Chen et al. 2016): G also takes a code c drawn uniformly from
K values, D's head Q guesses c from G(z, c), and both players add info_weight (1 in the paper, 0
by default: the code is then an input G may ignore) x the cross-entropy of that guess (a lower
bound on the mutual information of c and the image, up to the constant log K) to their losses.
Unsupervised: the data's labels are never read.

Cluster conditioning (model.clusters = K > 0; after the self-conditioned GAN of Liu et al. 2020,
which clusters D's features instead of pixels): online k-means (the EMA updates of VQ-VAE's
codebooks, jaxgen.nn.vq) keeps K centroids of the real images in pixel space, in model_state.
Each real image is labelled with its nearest centroid, each fake with a cluster drawn as often
as real images fall in it, and G and D are conditioned on these labels as in the conditional GAN
(projection critic). A G that drops a mode then drops a label D asks for. Also unsupervised.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import losses, viz
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.errors import UserError
from jaxgen.models import adversarial, base
from jaxgen.nn import vq
from jaxgen.nn.dcgan import UPSAMPLINGS, DCGANCritic, DCGANGenerator, check_shape
from jaxgen.nn.gan_layers import Critic, Generator
from jaxgen.nn.mlp_gan import MLPCritic, MLPGenerator
from jaxgen.nn.resnet_gan import ResNetCritic, ResNetGenerator

Array = jax.Array
ARCHS = ("mlp", "dcgan", "resnet")
PENALTIES = ("none", "gp", "r1")
# The clusters' EMA decay and count smoothing, and the EMA count (images per step) below which
# a cluster restarts at a random real image: VQ-VAE's defaults.
DECLARATION = base.Declaration(
    model=dict(arch="dcgan", loss="nonsaturating", penalty="none", penalty_weight=0.0,
               penalty_every=1, clip=0.0, n_critic=1, latent_dim=100, g_width=64, d_width=64,
               g_depth=3, d_depth=3, d_mbstd=0, d_spectral_norm=False, upsample="subpixel",
               conditional=False, info_codes=0, info_weight=0.0, clusters=0),
    spaces=("symmetric",), who="a GAN (generators output [-1, 1])", labels="conditional",
    optim=dict(learning_rate=2e-4, b1=0.5, ema_decay=0.999),
    train=dict(steps=20_000, batch_size=64, log_every=500, checkpoint_every=2000,
               eval_every=10_000, sample_every=1000),
    eval=dict(batch_size=500, num_samples=10_000, sample_grid=100))
CLUSTER_DECAY, CLUSTER_EPS, DEAD_CLUSTER = 0.99, 1e-5, 0.03


def check_config(config, spec: base.DataSpec) -> None:
    m = config.model
    if m.arch not in ARCHS:
        raise UserError(f"unknown model.arch {m.arch!r}; use one of {', '.join(ARCHS)}")
    if m.upsample not in UPSAMPLINGS:
        raise UserError(f"unknown model.upsample {m.upsample!r}; use one of "
                        f"{', '.join(UPSAMPLINGS)}")
    if m.arch != "mlp":
        check_shape(spec.shape, m.arch)
    if m.loss not in losses.GAN_LOSSES:
        raise UserError(f"unknown model.loss {m.loss!r}; use one of {', '.join(losses.GAN_LOSSES)}")
    if m.penalty not in PENALTIES:
        raise UserError(f"unknown model.penalty {m.penalty!r}; use one of {', '.join(PENALTIES)}")
    if m.penalty_every < 1:
        raise UserError(f"model.penalty_every is how many steps apart the penalty is applied: "
                        f"at least 1, not {m.penalty_every}")
    if m.n_critic < 1 or config.train.batch_size % m.n_critic:
        raise UserError(f"train.batch_size ({config.train.batch_size}) must be a multiple of "
                        f"model.n_critic ({m.n_critic}): each critic update takes its own slice")
    if m.d_mbstd and m.penalty != "none":
        raise UserError("model.d_mbstd makes each critic score depend on the rest of its batch, "
                        "which breaks the per-sample gradients of a penalty: set model.d_mbstd=0 "
                        "or model.penalty=none")
    for what, n in (("per-update batch", config.train.batch_size // m.n_critic),
                    ("eval.batch_size", config.eval.batch_size)):
        if m.d_mbstd and n % m.d_mbstd:
            raise UserError(f"model.d_mbstd ({m.d_mbstd}) must divide the {what} ({n}): the "
                            f"critic takes its images in such groups")
    for name, what in (("info_codes", "the number of values of InfoGAN's code"),
                       ("clusters", "the number of clusters of the real images")):
        if m[name] < 0 or m[name] == 1:
            raise UserError(f"model.{name} is {what}: 0 (none) or at least 2, not {m[name]}")
    if m.info_weight and not m.info_codes:
        raise UserError("model.info_weight weighs InfoGAN's code loss, and there is no code: set "
                        "model.info_codes (10 in the 'info' variant) or model.info_weight=0")
    labels = [f"model.{k}" for k in ("conditional", "info_codes", "clusters") if m[k]]
    if len(labels) > 1:
        raise UserError(f"{' and '.join(labels)} each set G's label input: keep one of them "
                        f"(model.conditional=False, model.info_codes=0, model.clusters=0 turn "
                        f"them off)")


def networks(m, shape: tuple[int, int, int], labelled: int, classes: int
             ) -> tuple[Generator, Critic]:
    """G (taking `labelled` label values, 0 for none) and D (projecting `classes`) of
    model.arch."""
    sn = m.d_spectral_norm
    if m.arch == "mlp":
        g_body = MLPGenerator(m.g_width, m.g_depth, shape)
        d_body = MLPCritic(m.d_width, m.d_depth, m.d_mbstd, sn)
    elif m.arch == "dcgan":
        g_body = DCGANGenerator(m.g_width, shape, m.upsample)
        d_body = DCGANCritic(m.d_width, m.d_mbstd, sn)
    else:
        g_body = ResNetGenerator(m.g_width, shape)
        d_body = ResNetCritic(m.d_width, m.d_mbstd, sn)
    return Generator(g_body, labelled), Critic(d_body, classes, m.info_codes, sn)


def make_family(config, spec: base.DataSpec) -> base.Family:
    check_config(config, spec)
    m = config.model
    classes = spec.num_classes if m.conditional else 0
    codes, clusters = m.info_codes, m.clusters
    labelled = classes or codes or clusters  # values of G's label input, 0 for none
    gen, critic = networks(m, tuple(spec.shape), labelled, classes or clusters)
    opt_g, opt_d = base.make_optimizer(config.optim), base.make_optimizer(config.optim_d)

    def latents(rng: Array, n: int, book: vq.Codebook | None) -> tuple[Array, Array]:
        """z [n, latent_dim] and G's labels [n]: classes, InfoGAN codes, clusters of `book`
        (the model_state; each as often as the real images fall in it), or ignored."""
        z_rng, y_rng = jax.random.split(rng)
        if clusters:
            labels = jax.random.categorical(y_rng, jnp.log(book.counts), shape=(n,))
        else:
            labels = jax.random.randint(y_rng, (n,), 0, max(codes or spec.num_classes, 1))
        return jax.random.normal(z_rng, (n, m.latent_dim)), labels

    def labels_of_real(x: Array, batch: base.Batch, book: vq.Codebook | None) -> Array:
        """D's labels for real images x [B, ...]: the nearest cluster, else the data's."""
        if clusters:
            return vq.nearest_codes(x.reshape(x.shape[0], -1), book.embeddings)
        return batch["label"]

    def fake_scores(d, g, book, n: int, rng: Array) -> tuple[Array, Array, Array]:
        """D's scores of n fresh samples of G [n], the samples, and the cross-entropy of Q's guess
        of the InfoGAN codes that made them (0 without)."""
        z, labels = latents(rng, n, book)
        fake = gen.apply(g, z, labels)
        score, logits = critic.apply(d, fake, labels)
        info = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean() \
            if codes else jnp.zeros(())
        return score, fake, info

    def prepare(book, batch: base.Batch, rng: Array):
        """Real images in model space and D's labels for them; with clusters, one online k-means
        step on the batch (its labels are the old centroids')."""
        x = to_model_space(batch["image"], "symmetric")
        labels = labels_of_real(x, batch, book)
        if not clusters:
            return {"image": x, "label": labels}, book, {}
        flat = x.reshape(x.shape[0], -1)
        book = vq.ema_update(book, flat, labels, CLUSTER_DECAY, CLUSTER_EPS)
        book, reseeded = vq.reseed_dead(book, flat, rng, DEAD_CLUSTER)
        return {"image": x, "label": labels}, book, {
            "cluster_perplexity": vq.perplexity(labels, clusters),
            "reseeded": reseeded.astype(jnp.float32)}

    def critic_terms(d, g, book, real: base.Batch, rng: Array, regularise: bool):
        fake_rng, pen_rng = jax.random.split(rng)
        score = lambda x: critic.apply(d, x, real["label"])[0]
        d_real = score(real["image"])
        d_fake, fake, info = fake_scores(d, g, book, real["image"].shape[0], fake_rng)
        loss = losses.gan_d_loss(d_real, d_fake, m.loss)
        penalty = jnp.zeros(())
        # x_hat mixes classes when conditional: the real images' labels score it.
        if regularise and m.penalty == "gp":
            penalty = losses.gradient_penalty(score, real["image"], fake, pen_rng)
        elif regularise and m.penalty == "r1":
            penalty = losses.r1_penalty(score, real["image"])
        metrics = {"penalty": penalty, "d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}
        if codes:
            metrics["info_ce"] = info
        if m.loss == "wasserstein":
            metrics["w_distance"] = metrics["d_real"] - metrics["d_fake"]
        return adversarial.Terms(loss + m.info_weight * info, m.penalty_weight * penalty,
                                 metrics, book)

    def generator_terms(g, d, book, real: base.Batch, rng: Array, regularise: bool):
        score, _, info = fake_scores(d, g, book, real["image"].shape[0], rng)
        return adversarial.Terms(losses.gan_g_loss(score, m.loss) + m.info_weight * info,
                                 jnp.zeros(()), {}, book)

    game = adversarial.Game(critic_terms, generator_terms, prepare, m.n_critic,
                            critic_every=m.penalty_every if m.penalty != "none" else 1,
                            clip=m.clip)

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        """With clusters, the centroids start at random images of the example batch."""
        g_rng, d_rng, c_rng = jax.random.split(rng, 3)
        x = to_model_space(batch["image"], "symmetric")
        book = vq.codebook_from(vq.random_picks(x.reshape(x.shape[0], -1), clusters, c_rng)) \
            if clusters else None
        z, labels = latents(rng, x.shape[0], book)
        return adversarial.init_state(gen.init(g_rng, z, labels), critic.init(d_rng, x, labels),
                                      opt_g, opt_d, bool(config.optim.ema_decay), book)

    def generate(params, z: Array, labels: Array) -> Array:
        return to_unit(gen.apply(params["g"], z, labels), "symmetric")

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        """D's outputs on the test images and on as many samples (GANs have no likelihood)."""
        x = to_model_space(batch["image"], "symmetric")
        z, labels = latents(rng, x.shape[0], state.model_state)
        fake = gen.apply(base.eval_params(state)["g"], z, labels)
        score = lambda x, y: critic.apply(state.params["d"], x, y)[0]
        return {"d_real": score(x, labels_of_real(x, batch, state.model_state)),
                "d_fake": score(fake, labels)}

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        if codes or clusters:  # the family is unconditional: codes or clusters are latents
            z, labels = latents(rng, labels.shape[0], state.model_state)
        else:
            z = jax.random.normal(rng, (labels.shape[0], m.latent_dim))
        return generate(base.eval_params(state), z, labels)

    _generate = jax.jit(generate)

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """Latent interpolations: 8 rows of 10, one class (InfoGAN code, cluster) per row when G
        takes one. With codes or clusters, also 'codes' / 'clusters': row k is code (cluster)
        k, column j the same z in every row."""
        params = base.eval_params(state)
        show = lambda z, labels: viz.grid(np.asarray(_generate(
            params, jnp.asarray(z), jnp.asarray(labels.astype(np.int32)))), ncol=10)
        ends = np.asarray(jax.random.normal(rng, (2, 8, m.latent_dim)))
        out = {"interpolations": show(viz.interpolate(ends[0], ends[1], steps=10),
                                      np.repeat(np.arange(8) % max(labelled, 1), 10))}
        if codes or clusters:
            z = np.asarray(jax.random.normal(jax.random.fold_in(rng, 1), (10, m.latent_dim)))
            out["codes" if codes else "clusters"] = show(np.tile(z, (labelled, 1)),
                                                         np.repeat(np.arange(labelled), 10))
        return out

    train_step = adversarial.train_step_of(game, opt_g, opt_d, config.optim)
    return base.Family(init, train_step, eval_step, sample, pictures, conditional=m.conditional)
