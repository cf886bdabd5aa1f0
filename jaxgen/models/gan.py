"""GANs in one two-player train step: GAN, DCGAN, conditional GAN, WGAN and WGAN-GP.

One train_step draws `model.n_critic` critic updates, each on its own slice of the batch
(train.batch_size = n_critic x the per-update batch), then one generator update on a fresh batch
of latents. G and D have their own optimizers (config.optim and config.optim_d); the EMA of G
(optim.ema_decay) is what eval and sampling use. State layout: params, opt_state = {"g", "d"},
ema_params = {"g"} or None. A step whose losses, gradients or new parameters are not finite is
skipped (the state is kept) and counted in the metric `skipped`.

Images live in [-1, 1] (data.space symmetric); D's outputs are logits (minimax, nonsaturating)
or critic scores (wasserstein, hinge).

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
from jaxgen.models import base
from jaxgen.nn import vq
from jaxgen.nn.gan_nets import Critic, Generator, check_arch

Array = jax.Array
PENALTIES = ("none", "gp", "r1")
# The clusters' EMA decay and count smoothing, and the EMA count (images per step) below which
# a cluster restarts at a random real image: VQ-VAE's defaults.
CLUSTER_DECAY, CLUSTER_EPS, DEAD_CLUSTER = 0.99, 1e-5, 0.03


def check_config(config, spec: base.DataSpec) -> None:
    m = config.model
    check_arch(m.arch, m.upsample, spec.shape)
    if m.loss not in losses.GAN_LOSSES:
        raise UserError(f"unknown model.loss {m.loss!r}; use one of {', '.join(losses.GAN_LOSSES)}")
    if m.penalty not in PENALTIES:
        raise UserError(f"unknown model.penalty {m.penalty!r}; use one of {', '.join(PENALTIES)}")
    if m.n_critic < 1 or config.train.batch_size % m.n_critic:
        raise UserError(f"train.batch_size ({config.train.batch_size}) must be a multiple of "
                        f"model.n_critic ({m.n_critic}): each critic update takes its own slice")
    if m.d_batchnorm and m.arch == "resnet":
        raise UserError("model.d_batchnorm is for the mlp and dcgan critics; the resnet critic "
                        "(WGAN-GP) has no normalization: set model.d_batchnorm=False")
    if m.arch == "mlp" and (m.g_fc or m.d_fc):
        raise UserError("model.g_fc and model.d_fc add a dense layer to the conv nets; the mlp "
                        "nets are all dense: set model.g_depth / model.d_depth instead and "
                        "model.g_fc=0, model.d_fc=0")
    if min(m.g_fc, m.d_fc) < 0:
        raise UserError(f"model.g_fc and model.d_fc are dense widths, 0 for none; got "
                        f"{m.g_fc} and {m.d_fc}")
    if m.d_pack < 0 or m.d_pack == 1:
        raise UserError(f"model.d_pack is how many images D scores at once (PacGAN): 0 (none) "
                        f"or at least 2, not {m.d_pack}")
    for name, off in (("conditional", "False"), ("info_codes", "0"), ("clusters", "0")):
        if m.d_pack and m[name]:
            raise UserError(f"model.d_pack scores packs of images, and model.{name} needs a score "
                            f"per image: set model.d_pack=0 or model.{name}={off}")
    for on, off in ((m.d_mbstd, "model.d_mbstd=0"), (m.d_batchnorm, "model.d_batchnorm=False"),
                    (m.d_pack, "model.d_pack=0")):
        if on and m.penalty != "none":
            raise UserError(f"{off.split('=')[0]} makes each critic score depend on the rest of "
                            f"its batch, which breaks the per-sample gradients of a penalty: set "
                            f"{off} or model.penalty=none")
    group = max(m.d_pack, 1) * max(m.d_mbstd, 1)  # mbstd groups packs when both are on
    for what, n in (("per-update batch", config.train.batch_size // m.n_critic),
                    ("eval.batch_size", config.eval.batch_size)):
        if n % group:
            names = " x ".join(f"model.{k} ({m[k]})" for k in ("d_pack", "d_mbstd") if m[k])
            raise UserError(f"{names} must divide the {what} ({n}): the critic takes its images "
                            f"in such groups")
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
    base.require_labels(m.conditional, spec)
    base.require_space(config.data.space, ("symmetric",), "a GAN (generators output [-1, 1])")


def make_family(config, spec: base.DataSpec) -> base.Family:
    check_config(config, spec)
    m = config.model
    classes = spec.num_classes if m.conditional else 0
    codes, clusters, packed = m.info_codes, m.clusters, max(m.d_pack, 1)
    labelled = classes or codes or clusters  # values of G's label input, 0 for none
    gen = Generator(m.arch, m.g_width, m.g_depth, tuple(spec.shape), labelled, m.upsample, m.g_fc)
    critic = Critic(m.arch, m.d_width, m.d_depth, classes or clusters, m.d_dropout, m.d_mbstd,
                    m.d_batchnorm, m.d_spectral_norm, codes, m.d_fc, m.d_pack)
    opt_g, opt_d = base.make_optimizer(config.optim), base.make_optimizer(config.optim_d)
    ema_decay = config.optim.ema_decay

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

    def fake_scores(d, fake, labels, rng):
        """D's scores of G's images [b] and, with InfoGAN codes, the cross-entropy of Q's guess
        of the codes `labels` that made them (0 without)."""
        out = critic.apply(d, fake, labels, True, bool(codes), rngs={"dropout": rng})
        if not codes:
            return out, jnp.zeros(())
        score, logits = out
        return score, optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        """With clusters, the centroids start at random images of the example batch."""
        g_rng, d_rng, c_rng = jax.random.split(rng, 3)
        x = to_model_space(batch["image"], "symmetric")
        book = vq.codebook_from(vq.random_picks(x.reshape(x.shape[0], -1), clusters, c_rng)) \
            if clusters else None
        z, labels = latents(rng, x.shape[0], book)
        g = gen.init(g_rng, z, labels)
        d = critic.init(d_rng, x, labels)
        params = {"g": g, "d": d}
        return base.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state={"g": opt_g.init(g), "d": opt_d.init(d)},
                               model_state=book, ema_params={"g": g} if ema_decay else None)

    def critic_update(d_params, d_opt, g_params, book, real, real_labels, rng):
        """One D step on real [b, ...] against as many fakes; returns new D, metrics."""
        z_rng, pen_rng, drop_rng = jax.random.split(rng, 3)
        z, labels = latents(z_rng, real.shape[0], book)
        fake = gen.apply(g_params, z, labels)

        def loss_fn(d):
            score = lambda x, y: critic.apply(d, x, y, True, rngs={"dropout": drop_rng})
            d_real = score(real, real_labels)
            d_fake, info = fake_scores(d, fake, labels, drop_rng)
            loss = losses.gan_d_loss(d_real, d_fake, m.loss)
            if m.penalty == "gp":  # x_hat mixes classes when conditional: the real ones label it
                penalty = losses.gradient_penalty(lambda x: score(x, real_labels), real, fake,
                                                  pen_rng)
            elif m.penalty == "r1":
                penalty = losses.r1_penalty(lambda x: score(x, real_labels), real)
            else:
                penalty = jnp.zeros(())
            total = loss + m.penalty_weight * penalty + m.info_weight * info
            return total, (loss, penalty, info, d_real, d_fake)

        grads, (loss, penalty, info, d_real, d_fake) = jax.grad(loss_fn, has_aux=True)(d_params)
        updates, d_opt = opt_d.update(grads, d_opt, d_params)
        d_params = optax.apply_updates(d_params, updates)
        if m.clip:  # WGAN: a crude Lipschitz bound on the critic
            d_params = jax.tree.map(lambda w: jnp.clip(w, -m.clip, m.clip), d_params)
        metrics = {"d_loss": loss, "penalty": penalty, "d_real": jnp.mean(d_real),
                   "d_fake": jnp.mean(d_fake), "d_grad_norm": optax.tree.norm(grads)}
        if codes:
            metrics["info_ce"] = info
        return d_params, d_opt, metrics

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        d_rng, g_rng, drop_rng, c_rng = jax.random.split(rng, 4)
        k, book = m.n_critic, state.model_state
        x = to_model_space(batch["image"], "symmetric")
        b = x.shape[0] // k
        # [B, ...] -> [k, b, ...] keeping the sharded batch axis whole: slice i is every k-th row.
        real = jnp.swapaxes(x.reshape((b, k) + x.shape[1:]), 0, 1)
        real_labels = labels_of_real(x, batch, book)
        new_book, cluster_metrics = book, {}
        if clusters:  # one online k-means step on this batch; the labels are the old centroids'
            flat = x.reshape(x.shape[0], -1)
            new_book = vq.ema_update(book, flat, real_labels, CLUSTER_DECAY, CLUSTER_EPS)
            new_book, reseeded = vq.reseed_dead(new_book, flat, c_rng, DEAD_CLUSTER)
            cluster_metrics = {"cluster_perplexity": vq.perplexity(real_labels, clusters),
                               "reseeded": reseeded.astype(jnp.float32)}
        real_labels = real_labels.reshape(b, k).T

        # A Python loop, not lax.scan: convolutions inside XLA CPU while-loops ran ~6x slower.
        d_params, d_opt, d_metrics = state.params["d"], state.opt_state["d"], []
        for i, key in enumerate(jax.random.split(d_rng, k)):
            d_params, d_opt, metrics = critic_update(d_params, d_opt, state.params["g"], book,
                                                     real[i], real_labels[i], key)
            d_metrics.append(metrics)
        z, labels = latents(g_rng, b, book)

        def g_loss_fn(g):
            score, info = fake_scores(d_params, gen.apply(g, z, labels), labels, drop_rng)
            loss = losses.gan_g_loss(score, m.loss)
            return loss + m.info_weight * info, loss

        (_, g_loss), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.params["g"])
        updates, g_opt = opt_g.update(g_grads, state.opt_state["g"], state.params["g"])
        g_params = optax.apply_updates(state.params["g"], updates)
        ema = None if state.ema_params is None else {
            "g": base.ema_update(state.ema_params["g"], g_params,
                                 base.ema_decay_at(config.optim, state.step.astype(jnp.float32)))}
        new = state.replace(step=state.step + 1, params={"g": g_params, "d": d_params},
                            opt_state={"g": g_opt, "d": d_opt}, model_state=new_book,
                            ema_params=ema)
        metrics = {name: jnp.mean(jnp.stack([d[name] for d in d_metrics]))  # over critic updates
                   for name in d_metrics[0]}
        metrics.update(g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads), **cluster_metrics)
        if m.loss == "wasserstein":
            metrics["w_distance"] = metrics["d_real"] - metrics["d_fake"]
        (state, metrics), finite = base.keep_if_finite(
            (new, metrics), (state, jax.tree.map(jnp.zeros_like, metrics)), (metrics, new.params))
        metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
        return state, metrics

    def generate(params, z: Array, labels: Array) -> Array:
        return to_unit(gen.apply(params["g"], z, labels), "symmetric")

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        """D's outputs on the test images and on as many samples (GANs have no likelihood); a
        packed critic's score counts for each image of its pack."""
        x = to_model_space(batch["image"], "symmetric")
        z, labels = latents(rng, x.shape[0], state.model_state)
        fake = gen.apply(base.eval_params(state)["g"], z, labels)
        score = lambda x, y: jnp.repeat(critic.apply(state.params["d"], x, y), packed)
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

    return base.Family(init, train_step, eval_step, sample, pictures, conditional=m.conditional)
