"""Gaussian mixture models fitted by EM, on pixels or on their PCA projection.

One pass over the training split is P = num_train // train.batch_size train steps, and the
passes are the algorithm:
  pass 0  reads the data: its moments (for the PCA basis) and the first model.init_examples
          images, from which k-means++ picks K centres at the pass's last step;
  pass 1  assigns every image to its nearest centre; the M-step on these hard assignments is the
          initial mixture (scikit-learn's init_params='k-means++');
  pass 2+ one EM iteration each: every step adds its batch's E-step statistics (responsibility
          sums, first and centred second moments) to the state; the M-step runs at the pass's
          last step. The batch is sharded over the mesh's 'data' axis and the jitted step sums
          the statistics across devices, so the training split need not fit on one device.
train.steps must be a whole number of passes, at least 3 (1 EM iteration). The metrics of an EM
pass are the mean log-likelihood of its images under the mixture before its M-step (nats per
image, and nll_bpd), so a log every P steps logs them per iteration; `em_iteration` numbers
them (0 and -1: the two initialisation passes, which log 0).

The density is on uniformly dequantized pixels in [0, 1] (fresh noise each pass), so test
likelihoods are 8-bit bits/dim. With model.pca_dim = d > 0 it is still a density on all D
pixels: x = c + U z + r, with U [D, d] the top principal directions of the training pixels (pass
0), z ~ the mixture in R^d, and the residual r, in the orthogonal complement of U, isotropic
N(0, s2 I_{D-d}) with s2 the mean discarded variance (the PPCA noise). U is orthonormal, so
log p(x) = log p_mix(U^T (x - c)) + log N(r; 0, s2 I_{D-d}) exactly. Samples are draws from
this density; model.sample_residual = False leaves out the residual noise (its mean, 0): the
mixture's draws in the subspace, mapped to pixels.

Eval adds the BIC and AIC of the last EM pass's training log-likelihood (the mixture's
parameters; the PCA basis, the same for every K, is not counted), for choosing K.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base

Array = jax.Array

COVARIANCE_TYPES = ("full", "diag", "spherical")
DECLARATION = base.Declaration(
    model=dict(
        num_components=10, covariance_type="full",
        pca_dim=0,  # > 0: the mixture is fitted in that many principal components
        reg_covar=1e-6,
        init_examples=10_000,  # the k-means++ sample, from the first pass
        min_var=1e-8,  # floor of the PCA residual variance
        sample_residual=True),  # pca_dim > 0: False samples without the residual noise
    spaces=("dequantize",), who="the Gaussian mixture (a density on dequantized pixels)")


# -- the mixture's maths: pure, in the dtype of the data (float64 in the tests) ------------------

def component_log_probs(x: Array, params: dict, cov_type: str) -> Array:
    """log N(x_b; mu_k, Sigma_k) for x [B, d] -> [B, K]."""
    mu, d = params["means"], x.shape[-1]
    if cov_type == "full":  # Sigma_k^-1 = P_k P_k^T, P_k upper triangular
        p = params["prec_chol"]
        y = jnp.einsum("bd,kde->bke", x, p) - jnp.einsum("kd,kde->ke", mu, p)
        half_log_det = jnp.sum(jnp.log(jnp.diagonal(p, axis1=1, axis2=2)), -1)
    else:
        var = params["var"] if cov_type == "diag" else params["var"][:, None]
        # The difference first: the expanded x^2/var - 2 x mu/var + mu^2/var loses float32
        # digits on pixels whose variance is only the dequantization noise.
        y = (x[:, None, :] - mu) * jax.lax.rsqrt(var)
        half_log_det = -0.5 * jnp.sum(jnp.log(jnp.broadcast_to(var, mu.shape)), -1)
    return -0.5 * (d * losses.LOG_2PI + jnp.sum(y * y, -1)) + half_log_det


def log_likelihood(x: Array, params: dict, cov_type: str) -> tuple[Array, Array]:
    """(log p(x) [B], log responsibilities [B, K]) under the mixture."""
    joint = component_log_probs(x, params, cov_type) + jnp.log(params["weights"])
    ll = jax.nn.logsumexp(joint, -1)
    return ll, joint - ll[:, None]


def zero_stats(k: int, d: int, cov_type: str, dtype=jnp.float32) -> dict:
    """Empty E-step statistics: nk [K], s1 [K, d], s2 ([K, d, d] full, else [K, d])."""
    s2 = (k, d, d) if cov_type == "full" else (k, d)
    return {"nk": jnp.zeros(k, dtype), "s1": jnp.zeros((k, d), dtype),
            "s2": jnp.zeros(s2, dtype)}


def accumulate(stats: dict, x: Array, resp: Array, centres: Array, cov_type: str) -> dict:
    """Adds a batch x [B, d] with responsibilities [B, K]; moments are centred on `centres`
    [K, d] (the current means), so that they stay accurate in float32."""
    diff = x[:, None, :] - centres  # [B, K, d]
    weighted = resp[..., None] * diff
    s2 = jnp.einsum("bkd,bke->kde", weighted, diff) if cov_type == "full" \
        else jnp.sum(weighted * diff, 0)
    return {"nk": stats["nk"] + resp.sum(0), "s1": stats["s1"] + weighted.sum(0),
            "s2": stats["s2"] + s2}


def m_step(stats: dict, centres: Array, reg_covar: float, cov_type: str) -> tuple[dict, Array]:
    """The mixture that maximises the expected log-likelihood of the statistics (accumulated
    around `centres`), with reg_covar added to every variance; and the 1-based index of the
    first component whose covariance is not positive definite (0: none)."""
    dtype = stats["nk"].dtype
    nk = stats["nk"] + 10 * jnp.finfo(dtype).eps  # an empty component keeps finite means
    delta = stats["s1"] / nk[:, None]
    params = {"weights": nk / nk.sum(), "means": centres + delta}
    if cov_type == "full":
        d = delta.shape[1]
        cov = stats["s2"] / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        cov = 0.5 * (cov + cov.mT) + reg_covar * jnp.eye(d, dtype=dtype)
        eye = jnp.eye(d, dtype=dtype)

        def factor(c: Array) -> tuple[Array, Array]:
            chol = jnp.linalg.cholesky(c)
            return chol, jax.scipy.linalg.solve_triangular(chol, eye, lower=True).T

        # One component at a time: a batched factorisation spreads its matrices over XLA's CPU
        # thread pool and waits for them, and with several devices in one process every pool
        # thread ended up waiting (a deadlock seen on 8 emulated devices at 784 x 784).
        chol, params["prec_chol"] = jax.lax.map(factor, cov)
        params["cov_chol"] = chol
        # Not positive definite: a failed factorisation (NaN) or a zero pivot (an inf inverse).
        bad = ~jnp.all(jnp.diagonal(chol, axis1=1, axis2=2) > 0, 1) \
            | ~jnp.all(jnp.isfinite(params["prec_chol"]), (1, 2))
    else:
        var = stats["s2"] / nk[:, None] - delta**2
        var = (var if cov_type == "diag" else var.mean(1)) + reg_covar
        params["var"] = var
        bad = ~(var > 0) if cov_type == "spherical" else ~jnp.all(var > 0, 1)
    return params, jnp.where(bad.any(), jnp.argmax(bad) + 1, 0).astype(jnp.int32)


def initial_params(k: int, d: int, cov_type: str) -> dict:
    """Placeholders of the right shapes (unit covariances) until the initialisation passes."""
    params = {"weights": jnp.full(k, 1.0 / k), "means": jnp.zeros((k, d))}
    if cov_type == "full":
        params["prec_chol"] = params["cov_chol"] = jnp.broadcast_to(jnp.eye(d), (k, d, d))
    else:
        params["var"] = jnp.ones((k, d) if cov_type == "diag" else k)
    return params


def kmeans_plusplus(rng: Array, x: Array, k: int) -> Array:
    """k centres [k, d] among the rows of x [M, d] by greedy k-means++ (Arthur & Vassilvitskii
    2007): each next centre is the best, by the summed squared distances to the nearest centre,
    of 2 + log k candidates drawn with probability proportional to that squared distance."""
    trials = 2 + int(math.log(k))
    keys = jax.random.split(rng, k)
    sq = jnp.sum(x * x, -1)

    def dist2(c):  # [T, d] -> [T, M]; expanded, as a matmul, and clipped at 0
        return jnp.maximum(sq + jnp.sum(c * c, -1)[:, None] - 2.0 * c @ x.T, 0.0)

    first = x[jax.random.randint(keys[0], (), 0, x.shape[0])]
    centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)

    def pick(i, carry):
        centres, d2 = carry
        cand = jax.random.categorical(keys[i], jnp.log(d2), shape=(trials,))
        new_d2 = jnp.minimum(d2, dist2(x[cand]))
        best = jnp.argmin(new_d2.sum(1))
        return centres.at[i].set(x[cand[best]]), new_d2[best]

    centres, _ = jax.lax.fori_loop(1, k, pick, (centres, dist2(first[None])[0]))
    return centres


def nearest(x: Array, centres: Array) -> Array:
    """One-hot [B, K] of each row's nearest centre."""
    d2 = jnp.sum(centres**2, -1) - 2.0 * x @ centres.T
    return jax.nn.one_hot(jnp.argmin(d2, -1), centres.shape[0], dtype=x.dtype)


def num_parameters(k: int, d: int, cov_type: str) -> int:
    """Free parameters of a K-component mixture in d dimensions."""
    cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[cov_type]
    return k * (d + cov) + k - 1


def sample_mixture(rng: Array, params: dict, cov_type: str, n: int) -> Array:
    """n draws [n, d] from the mixture."""
    pick, noise = jax.random.split(rng)
    comp = jax.random.categorical(pick, jnp.log(params["weights"]), shape=(n,))
    eps = jax.random.normal(noise, (n, params["means"].shape[1]))
    mu = params["means"][comp]
    if cov_type == "full":  # one factor at a time: gathering n of them would hold n d^2 floats
        return mu + jax.lax.map(lambda a: params["cov_chol"][a[0]] @ a[1], (comp, eps),
                                batch_size=64)
    var = params["var"][comp]
    return mu + eps * jnp.sqrt(var if cov_type == "diag" else var[:, None])


# -- the family ---------------------------------------------------------------------------------

def _check_model(m, dims: int) -> None:
    """A UserError naming the model key that is out of range."""
    if m.covariance_type not in COVARIANCE_TYPES:
        raise UserError(f"unknown model.covariance_type {m.covariance_type!r}; use one of "
                        f"{', '.join(COVARIANCE_TYPES)}")
    if m.num_components < 1:
        raise UserError("model.num_components must be at least 1")
    if not 0 <= m.pca_dim < dims:
        raise UserError(f"model.pca_dim must be in [0, {dims}) (0: the mixture is on pixels)")


def make_family(config, spec: base.DataSpec) -> base.Family:
    m, t = config.model, config.train
    dims = int(np.prod(spec.shape))
    _check_model(m, dims)
    k, cov_type, pca = m.num_components, m.covariance_type, m.pca_dim
    d = pca or dims
    per_pass = spec.num_train // t.batch_size
    if per_pass < 1:
        raise UserError(f"the gmm family needs the training split's size (num_train in the data "
                        f"spec) and train.batch_size <= it; got {spec.num_train} images")
    if t.steps % per_pass or t.steps < 3 * per_pass:
        passes = max(3, -(-t.steps // per_pass))
        raise UserError(f"train.steps must be a whole number of passes over the training split, "
                        f"at least 3 (k-means++ data, hard assignment, then EM iterations); one "
                        f"pass is {per_pass} steps of {t.batch_size}: set "
                        f"--config.train.steps={passes * per_pass} ({passes - 2} EM iterations)")
    buffered = min(m.init_examples, per_pass * t.batch_size) // t.batch_size * t.batch_size
    if buffered < k:
        raise UserError(f"k-means++ needs at least model.num_components={k} images; "
                        f"model.init_examples={m.init_examples} gives {buffered} at batch size "
                        f"{t.batch_size}: raise it")

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        del rng, batch
        state = {"buffer": jnp.zeros((buffered, dims)), "stats": zero_stats(k, d, cov_type),
                 "n": jnp.zeros(()), "ll": jnp.zeros(()),  # this pass: images, sum of log p
                 "train_ll": jnp.zeros(()), "train_n": jnp.zeros(()),  # the last EM pass's
                 "collapsed": jnp.zeros((), jnp.int32), "collapsed_nk": jnp.zeros(())}
        if pca:
            state.update(moments={"n": jnp.zeros(()), "mean": jnp.zeros(dims),
                                  "m2": jnp.zeros((dims, dims))},
                         centre=jnp.zeros(dims), basis=jnp.eye(dims, pca), resid_var=jnp.ones(()))
        return base.TrainState(step=jnp.zeros((), jnp.int32), opt_state={}, model_state=state,
                               params=initial_params(k, d, cov_type))

    def pixels(batch: base.Batch, rng: Array) -> Array:
        x = to_model_space(batch["image"], "dequantize", rng)
        return x.reshape(x.shape[0], -1)

    def project(ms: dict, x: Array) -> tuple[Array, Array]:
        """Pixels [B, D] -> (mixture coordinates [B, d], log-density of the residual [B])."""
        if not pca:
            return x, jnp.zeros(x.shape[0])
        xc = x - ms["centre"]
        z = xc @ ms["basis"]
        r = xc - z @ ms["basis"].T
        s2 = ms["resid_var"]
        return z, -0.5 * (jnp.sum(r * r, -1) / s2 + (dims - pca) * (losses.LOG_2PI + jnp.log(s2)))

    def log_prob(params: dict, ms: dict, x: Array) -> tuple[Array, Array, Array]:
        """(log p(x) [B], the mixture coordinates z, log responsibilities of z)."""
        z, resid = project(ms, x)
        ll, log_resp = log_likelihood(z, params, cov_type)
        return ll + resid, z, log_resp

    def read_data(params, ms, x, pos):
        """Pass 0: the moments for PCA and the first `buffered` images, in training order."""
        ms = dict(ms)
        if pca:
            ms["moments"] = losses.merge_moments(ms["moments"], x)
        start = pos * t.batch_size
        written = jax.lax.dynamic_update_slice(  # the start clamped: out of range it is unused
            ms["buffer"], x, (jnp.minimum(start, buffered - t.batch_size), 0))
        ms["buffer"] = jnp.where(start < buffered, written, ms["buffer"])
        return ms, jnp.zeros(())

    def assign(params, ms, x, pos):
        z, _ = project(ms, x)
        stats = accumulate(ms["stats"], z, nearest(z, params["means"]), params["means"], cov_type)
        return dict(ms, stats=stats, n=ms["n"] + x.shape[0]), jnp.zeros(())

    def e_step(params, ms, x, pos):
        ll, z, log_resp = log_prob(params, ms, x)
        stats = accumulate(ms["stats"], z, jnp.exp(log_resp), params["means"], cov_type)
        return dict(ms, stats=stats, n=ms["n"] + x.shape[0], ll=ms["ll"] + ll.sum()), ll.mean()

    def end_read(params, ms, rng):
        ms = dict(ms)
        data = ms["buffer"]
        if pca:
            cov = ms["moments"]["m2"] / ms["moments"]["n"]
            vals, vecs = jnp.linalg.eigh(cov)  # ascending
            ms["basis"] = vecs[:, ::-1][:, :pca]
            ms["centre"] = ms["moments"]["mean"]
            discarded = jnp.trace(cov) - vals[::-1][:pca].sum()
            ms["resid_var"] = jnp.maximum(discarded / (dims - pca), m.min_var)
            data = (data - ms["centre"]) @ ms["basis"]
        return dict(params, means=kmeans_plusplus(rng, data, k)), ms

    def end_fit(params, ms, rng):
        del rng
        new, collapsed = m_step(ms["stats"], params["means"], m.reg_covar, cov_type)
        ok = (collapsed == 0) & (ms["collapsed"] == 0)
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, params)
        first = (collapsed > 0) & (ms["collapsed"] == 0)
        nk = ms["stats"]["nk"][jnp.maximum(collapsed - 1, 0)]
        ms = dict(ms, collapsed=jnp.where(first, collapsed, ms["collapsed"]),
                  collapsed_nk=jnp.where(first, nk, ms["collapsed_nk"]),
                  stats=jax.tree.map(jnp.zeros_like, ms["stats"]), n=jnp.zeros(()),
                  ll=jnp.zeros(()))
        return params, ms

    def end_em(params, ms, rng):
        ms = dict(ms, train_ll=ms["ll"], train_n=ms["n"])
        return end_fit(params, ms, rng)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        pass_, pos = state.step // per_pass, state.step % per_pass
        phase = jnp.minimum(pass_, 2)
        x = pixels(batch, rng)
        ms, batch_ll = jax.lax.switch(phase, (read_data, assign, e_step), state.params,
                                      state.model_state, x, pos)
        params, ms = jax.lax.cond(
            pos == per_pass - 1,
            lambda p, s: jax.lax.switch(phase, (end_read, end_fit, end_em), p, s, rng),
            lambda p, s: (p, s), state.params, ms)
        bpd = losses.dequantized_bits_per_dim(-batch_ll, dims)
        metrics = {"log_likelihood": batch_ll, "nll_bpd": jnp.where(phase == 2, bpd, 0.0),
                   "em_iteration": (pass_ - 1).astype(jnp.float32)}
        return state.replace(step=state.step + 1, params=params, model_state=ms), metrics

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        ll, _, _ = log_prob(state.params, state.model_state, pixels(batch, rng))
        ms = state.model_state
        n = jnp.maximum(ms["train_n"], 1.0)
        p = num_parameters(k, d, cov_type)
        per_image = jnp.ones_like(ll)
        return {"nll": -ll, "nll_bpd": losses.dequantized_bits_per_dim(-ll, dims),
                "bic": per_image * (-2.0 * ms["train_ll"] + p * jnp.log(n)),
                "aic": per_image * (-2.0 * ms["train_ll"] + 2.0 * p),
                "train_log_likelihood": per_image * ms["train_ll"] / n,
                "num_params": per_image * p}

    def to_pixels(ms: dict, z: Array, rng: Array) -> Array:
        if not pca:
            return z
        if not m.get("sample_residual", True):  # the residual's mean, as a VAE shows its decoder's
            return ms["centre"] + z @ ms["basis"].T
        e = jax.random.normal(rng, (z.shape[0], dims))
        resid = e - (e @ ms["basis"]) @ ms["basis"].T
        return ms["centre"] + z @ ms["basis"].T + jnp.sqrt(ms["resid_var"]) * resid

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        mix, resid = jax.random.split(rng)
        z = sample_mixture(mix, state.params, cov_type, labels.shape[0])
        x = to_pixels(state.model_state, z, resid)
        return jnp.clip(x, 0.0, 1.0).reshape((labels.shape[0],) + tuple(spec.shape))

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """The component means in pixels, heaviest first (at most 100)."""
        del batch, rng
        weights, means = jax.device_get((state.params["weights"], state.params["means"]))
        means = means[np.argsort(-weights)[:100]]
        if pca:
            centre, basis = jax.device_get((state.model_state["centre"],
                                            state.model_state["basis"]))
            means = centre + means @ basis.T
        return {"component_means": np.clip(means, 0.0, 1.0).reshape((-1,) + tuple(spec.shape))}

    def check(state: base.TrainState) -> None:
        collapsed, nk = jax.device_get((state.model_state["collapsed"],
                                        state.model_state["collapsed_nk"]))
        if collapsed:
            raise UserError(
                f"mixture component {int(collapsed) - 1} of {k} collapsed (about {float(nk):.3g} "
                f"images, its {cov_type} covariance plus model.reg_covar={m.reg_covar:g} is not "
                f"positive definite); rerun in a new --workdir with a larger "
                f"--config.model.reg_covar (e.g. {m.reg_covar * 10:g}), fewer "
                f"model.num_components, or model.covariance_type=diag")

    return base.Family(init, train_step, eval_step, sample, pictures, check=check)
