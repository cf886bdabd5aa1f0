"""The time of one EM iteration of a Gaussian mixture, jaxgen against scikit-learn, side by side.

The 60,000 MNIST training images, dequantized once, projected on their top `--pca` principal
directions; K = `--k` full covariances. Both fits start from the same weights, means and
precisions (k-means++ on the first 10,000 projected images, then the M-step of every image's
hard assignment: the gmm family's start). jaxgen's iteration is what the family's train steps do
in one pass: batches of `--batch` through the E-step statistics, then the M-step (here in one
jitted lax.scan over the pass, float32); scikit-learn's is GaussianMixture's, timed as
(fit with 1 + n iterations - fit with 1) / n, so its start-up and final E-step cancel (float64,
its default, and float32). The first iterations' log-likelihoods are printed from both.

  python experiments/gmm_speed.py [--k 50] [--pca 50] [--iterations 3]
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxgen.data import sources  # noqa: E402
from jaxgen.models import gmm  # noqa: E402


def projected_mnist(dims: int, data_dir: str | None) -> np.ndarray:
    images = sources.load_images("mnist", "train", data_dir,
                                 os.path.expanduser("~/.cache/jaxgen")).images
    rng = np.random.default_rng(0)
    x = (images.reshape(len(images), -1) + rng.uniform(size=(len(images), 784))) / 256.0
    x -= x.mean(0)
    _, vecs = np.linalg.eigh(x.T @ x / len(x))
    return x @ vecs[:, ::-1][:, :dims]


def make_em_pass(k: int, batch: int):
    """One EM iteration over z [P * batch, d] in batches, as the family's train steps run it."""

    @jax.jit
    def em_pass(params, z):
        def add(carry, zb):
            stats, total = carry
            ll, log_resp = gmm.log_likelihood(zb, params, "full")
            stats = gmm.accumulate(stats, zb, jnp.exp(log_resp), params["means"], "full")
            return (stats, total + ll.sum()), None

        start = (gmm.zero_stats(k, z.shape[1], "full"), jnp.zeros(()))
        (stats, total), _ = jax.lax.scan(add, start, z.reshape(-1, batch, z.shape[1]))
        new, collapsed = gmm.m_step(stats, params["means"], 1e-6, "full")
        return new, total / z.shape[0], collapsed

    return em_pass


def start_params(z: jax.Array, k: int) -> dict:
    centres = gmm.kmeans_plusplus(jax.random.key(0), z[:10_000], k)
    stats = gmm.accumulate(gmm.zero_stats(k, z.shape[1], "full"), z, gmm.nearest(z, centres),
                           centres, "full")
    return gmm.m_step(stats, centres, 1e-6, "full")[0]


def sklearn_seconds(z: np.ndarray, params: dict, iterations: int) -> tuple[float, np.ndarray]:
    """Seconds per iteration of GaussianMixture and its log-likelihoods (1 + iterations)."""
    precisions = np.linalg.inv(np.einsum("kij,klj->kil", params["cov_chol"], params["cov_chol"]))

    def fit(n):
        model = GaussianMixture(len(params["weights"]), covariance_type="full", tol=0.0,
                                max_iter=n, reg_covar=1e-6, weights_init=params["weights"],
                                means_init=params["means"], precisions_init=precisions)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z)
        return time.perf_counter() - t, model.lower_bounds_

    one, _ = fit(1)
    many, lls = fit(1 + iterations)
    return (many - one) / iterations, np.asarray(lls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--pca", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()

    z64 = projected_mnist(args.pca, args.data_dir)
    z = jnp.asarray(z64, jnp.float32)
    params = jax.tree.map(np.asarray, start_params(z, args.k))
    params64 = {key: np.asarray(v, np.float64) for key, v in params.items()}
    params64["weights"] /= params64["weights"].sum()  # scikit-learn checks the sum in float64
    print(f"data: {z.shape[0]} MNIST images on {args.pca} principal directions; K={args.k} full "
          f"covariances; devices: {jax.devices()}; jax {jax.__version__}")

    em_pass = make_em_pass(args.k, args.batch)
    t = time.perf_counter()
    jax.block_until_ready(em_pass(params, z))
    compile_s = time.perf_counter() - t
    ours, times, p = [], [], params
    for _ in range(1 + args.iterations):
        t = time.perf_counter()
        p, ll, collapsed = jax.block_until_ready(em_pass(p, z))
        times.append(time.perf_counter() - t)
        ours.append(float(ll))
        assert int(collapsed) == 0
    jax_s = statistics.median(times)

    sk64, lls64 = sklearn_seconds(z64, params64, args.iterations)
    sk32, _ = sklearn_seconds(z64.astype(np.float32), params64, args.iterations)
    print(f"log-likelihood per iteration (nats per image, 50-D), jaxgen:       "
          f"{' '.join(f'{v:.6f}' for v in ours)}")
    print(f"                                                  scikit-learn: "
          f"{' '.join(f'{v:.6f}' for v in lls64)}")
    print(f"jaxgen, one EM iteration (float32, batches of {args.batch}): {jax_s:.3f} s "
          f"(median of {len(times)}; compile and first run {compile_s:.1f} s)")
    print(f"scikit-learn GaussianMixture, one iteration: float64 {sk64:.3f} s, "
          f"float32 {sk32:.3f} s")
    print(f"ratio scikit-learn / jaxgen: {sk64 / jax_s:.2f}x (float64), {sk32 / jax_s:.2f}x "
          f"(float32)")


if __name__ == "__main__":
    main()
