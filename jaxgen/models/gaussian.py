"""The Gaussian image model: one multivariate normal over all pixels, fitted in closed form.

train_step streams sufficient statistics (count, mean, centred scatter; merged with Chan et al.'s
parallel update, stable in float32). The model is N(mu, Sigma) with Sigma the ML covariance, or
with model.num_components = k > 0 the probabilistic PCA of Tipping & Bishop: the top k
eigen-directions keep their variance and the rest share the mean discarded variance. It is a
density on uniformly dequantized pixels in [0, 1], so its test likelihood is an 8-bit bits/dim.
"""
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.data.preprocess import to_model_space
from jaxgen.errors import UserError
from jaxgen.models import base

Array = jax.Array


def merge_stats(stats: dict, x: Array) -> dict:
    """Adds a batch [B, D] to the running {n, mean, m2} (m2 = sum of centred outer products)."""
    nb = x.shape[0]
    mean_b = x.mean(0)
    xc = x - mean_b
    n = stats["n"] + nb
    delta = mean_b - stats["mean"]
    return {"n": n, "mean": stats["mean"] + delta * (nb / n),
            "m2": stats["m2"] + xc.T @ xc + jnp.outer(delta, delta) * (stats["n"] * nb / n)}


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


def log_prob(x: Array, mean: Array, vals: Array, vecs: Array) -> Array:
    """log N(x; mean, vecs diag(vals) vecs^T) for x [B, D] -> [B]."""
    proj = (x - mean) @ vecs
    return -0.5 * (jnp.sum(proj**2 / vals, -1) + jnp.sum(jnp.log(vals)) + x.shape[1] * losses.LOG_2PI)


def make_family(config, spec: base.DataSpec) -> base.Family:
    m = config.model
    base.require_space(config.data.space, ("dequantize",),
                       "the Gaussian model (a density on dequantized pixels)")
    dims = int(np.prod(spec.shape))
    if m.num_components < 0 or m.num_components >= dims:
        raise UserError(f"model.num_components must be in [0, {dims}) (0: full covariance)")

    def init(rng: Array, batch: base.Batch) -> base.TrainState:
        del rng, batch
        stats = {"n": jnp.zeros(()), "mean": jnp.zeros(dims), "m2": jnp.zeros((dims, dims)),
                 "vals": jnp.ones(dims), "vecs": jnp.eye(dims)}  # vals, vecs: set by finalize
        return base.TrainState(step=jnp.zeros((), jnp.int32), params={}, opt_state={},
                               model_state=stats)

    def flat_data(batch: base.Batch, rng: Array) -> Array:
        x = to_model_space(batch["image"], "dequantize", rng)
        return x.reshape(x.shape[0], -1)

    def train_step(state: base.TrainState, batch: base.Batch, rng: Array):
        stats = dict(state.model_state, **merge_stats(state.model_state, flat_data(batch, rng)))
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
        vals, vecs = decompose(state.model_state, m.num_components, m.min_var)
        stats = dict(state.model_state, vals=vals.astype(np.float32), vecs=vecs.astype(np.float32))
        return state.replace(model_state=stats)

    return base.Family(init, train_step, eval_step, sample, pictures, finalize)
