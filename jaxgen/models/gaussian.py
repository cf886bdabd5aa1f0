"""The Gaussian image model: one multivariate normal over all pixels, fitted in closed form or
by EM from one pass of sufficient statistics.

train_step streams them (count, mean, centred scatter: losses.merge_moments). The model is
N(mu, Sigma) with Sigma the ML covariance, or with model.num_components = k > 0 a low-rank
Sigma = W W^T + Psi, by model.low_rank:
  ppca     probabilistic PCA in closed form (Tipping & Bishop): the top k eigen-directions keep
           their variance and the rest share the mean discarded variance;
  ppca_em  the same model by EM (Psi = s2 I), from random loadings;
  fa       factor analysis by EM (Psi diagonal: each pixel its own noise variance).
The EM runs in finalize, on the host in float64, on the scatter matrix alone (no second pass
over the data), for model.em_iterations or until the log-likelihood gains less than
model.em_tol nats per image. It is a density on uniformly dequantized pixels in [0, 1], so its
test likelihood is an 8-bit bits/dim.
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base

Array = jax.Array

LOW_RANK = ("ppca", "ppca_em", "fa")
DECLARATION = base.Declaration(
    model=dict(
        num_components=0, min_var=1e-8,
        low_rank="ppca",  # with num_components: ppca (closed form), ppca_em or fa (by EM)
        em_iterations=2000,
        em_tol=1e-4),  # nats per image
    spaces=("dequantize",), who="the Gaussian model (a density on dequantized pixels)",
    train=dict(batch_size=1000), eval=dict(batch_size=1000))


def decompose(stats: dict, num_components: int, min_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues [D] (descending) and eigenvectors [D, D] of the model covariance, in float64.

    float64 on the host because the smallest variances (1/12 of a quantisation level squared, on
    constant border pixels) are below float32 eigh's accuracy next to the largest.
    """
    cov = np.asarray(stats["m2"], np.float64) / float(stats["n"])
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    if num_components:
        vals = np.where(np.arange(len(vals)) < num_components, vals, vals[num_components:].mean())
    return np.maximum(vals, min_var), vecs


def fit_factors(cov: np.ndarray, w: np.ndarray, isotropic: bool, iterations: int, tol: float,
                min_var: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """EM for factor analysis (Rubin & Thayer 1982) on a covariance cov [D, D] from loadings
    w [D, k]; `isotropic` ties the noise variances (PPCA by EM). Returns the loadings, the noise
    variances [D] and the mean log-likelihood before each iteration (nondecreasing)."""
    d, k = w.shape
    diag = np.diag(cov)
    psi = np.full(d, diag.mean()) if isotropic else diag.copy()
    lls = []
    for _ in range(iterations):
        wp = w / psi[:, None]  # Psi^-1 W
        g = np.linalg.inv(np.eye(k) + w.T @ wp)  # Cov[z | x]; E[z | x] = g wp^T (x - mu)
        s_wp = cov @ wp
        # log |C| = log |Psi| - log |g|; tr(C^-1 S) = tr(Psi^-1 S) - tr(g wp^T S wp) (Woodbury)
        lls.append(-0.5 * (d * losses.LOG_2PI + np.log(psi).sum() - np.linalg.slogdet(g)[1]
                           + (diag / psi).sum() - np.trace(g @ wp.T @ s_wp)))
        if len(lls) > 1 and lls[-1] - lls[-2] < tol:
            break
        sb = s_wp @ g  # S beta^T with beta = g wp^T
        w = sb @ np.linalg.inv(g + g @ wp.T @ sb)  # E[z z^T | x] summed: g + beta S beta^T
        psi = diag - np.sum(w * sb, 1)
        psi = np.maximum(np.full(d, psi.mean()) if isotropic else psi, min_var)
    return w, psi, lls


def log_prob(x: Array, mean: Array, vals: Array, vecs: Array) -> Array:
    """log N(x; mean, vecs diag(vals) vecs^T) for x [B, D] -> [B]."""
    proj = (x - mean) @ vecs
    return -0.5 * (jnp.sum(proj**2 / vals, -1) + jnp.sum(jnp.log(vals)) + x.shape[1] * losses.LOG_2PI)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    dims = int(np.prod(spec.shape))
    if m.num_components < 0 or m.num_components >= dims:
        raise UserError(f"model.num_components must be in [0, {dims}) (0: full covariance)")
    low_rank = m.get("low_rank", "ppca")  # configs saved before the key existed lack it
    if low_rank not in LOW_RANK:
        raise UserError(f"unknown model.low_rank {low_rank!r}; use one of {', '.join(LOW_RANK)}")
    by_em = bool(m.num_components) and low_rank != "ppca"

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        del batch
        stats = {"n": jnp.zeros(()), "mean": jnp.zeros(dims), "m2": jnp.zeros((dims, dims)),
                 "vals": jnp.ones(dims), "vecs": jnp.eye(dims)}  # vals, vecs: set by finalize
        if by_em:  # EM's starting loadings, scaled by the data's variance in finalize
            stats["w_init"] = jax.random.normal(rng, (dims, m.num_components))
        return base.TrainState(step=jnp.zeros((), jnp.int32), params={}, opt_state={},
                               model_state=stats)

    def flat_data(batch: base.Batch, rng: Array) -> Array:
        x = to_model_space(batch["image"], "dequantize", rng)
        return x.reshape(x.shape[0], -1)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        stats = dict(state.model_state,
                     **losses.merge_moments(state.model_state, flat_data(batch, rng)))
        metrics = {"mean_pixel_var": jnp.trace(stats["m2"]) / (stats["n"] * dims)}
        return state.replace(step=state.step + 1, model_state=stats), metrics

    def eval_step(state: base.TrainState, batch: base.Batch, rng: Array):
        stats = state.model_state
        nll = -log_prob(flat_data(batch, rng), stats["mean"], stats["vals"], stats["vecs"])
        return {"nll": nll, "nll_bpd": losses.dequantized_bits_per_dim(nll, dims)}

    def sample(state: base.TrainState, rng: Array, labels: Array) -> Array:
        """x = mu + E Lambda^(1/2) z with z ~ N(0, I)."""
        n = labels.shape[0]
        stats = state.model_state
        z = jax.random.normal(rng, (n, dims))
        x = stats["mean"] + (z * jnp.sqrt(stats["vals"])) @ stats["vecs"].T
        return jnp.clip(x, 0.0, 1.0).reshape((n,) + tuple(spec.shape))

    def pictures(state: base.TrainState, batch: base.Batch, rng: Array) -> dict:
        """The mean image and the leading principal directions, scaled to [0, 1]."""
        del batch, rng
        stats = jax.device_get(state.model_state)
        comps = stats["vecs"][:, : min(63, dims)].T
        comps = (comps - comps.min(1, keepdims=True)) / np.ptp(comps, 1, keepdims=True)
        images = np.concatenate([stats["mean"][None], comps]).reshape((-1,) + tuple(spec.shape))
        return {"mean_and_components": images}

    def finalize(state: base.TrainState) -> base.TrainState:
        if by_em:
            cov = np.asarray(state.model_state["m2"], np.float64) / float(state.model_state["n"])
            w0 = np.asarray(state.model_state["w_init"], np.float64) * np.sqrt(np.diag(cov).mean())
            w, psi, _ = fit_factors(cov, w0, low_rank == "ppca_em", m.em_iterations, m.em_tol,
                                    m.min_var)
            vals, vecs = np.linalg.eigh(w @ w.T + np.diag(psi))
            vals, vecs = vals[::-1], vecs[:, ::-1]
        else:
            vals, vecs = decompose(state.model_state, m.num_components, m.min_var)
        stats = dict(state.model_state, vals=vals.astype(np.float32), vecs=vecs.astype(np.float32))
        return state.replace(model_state=stats)

    return base.Family(init, train_step, eval_step, sample, pictures, finalize)
