"""ELBO <= IWAE_K <= log p(x) on a linear-Gaussian VAE, whose log p(x) is exact."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxgen import config as config_lib
from jaxgen.data.preprocess import to_model_space
from jaxgen.models import base, vae


def _linear_vae(k: int):
    c = config_lib.base_config()
    c.data.space = "dequantize"
    c.model.update(family="vae", arch="mlp", hidden=(), latent_dim=3, act="relu",
                   likelihood="gaussian", decoder_log_std=-2.0, beta=1.0, kl_warmup_steps=0)
    c.eval.update(iwae_samples=k, iwae_chunk=min(k, 100))
    return vae.make_family(c, base.DataSpec((4, 4, 1), 0))


def test_elbo_below_iwae_below_exact_log_likelihood():
    images = np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1), dtype=np.uint8)
    batch = {"image": jnp.asarray(images), "label": jnp.zeros(64, jnp.int32)}
    rng = jax.random.key(0)
    fam = {k: _linear_vae(k) for k in (1, 10, 1000)}
    state = fam[1].init(rng, batch)
    dec = state.params["params"]["decoder"]["Dense_0"]
    w, b = np.asarray(dec["kernel"], np.float64), np.asarray(dec["bias"], np.float64)
    x = np.asarray(to_model_space(batch["image"], "dequantize", jax.random.split(rng, 3)[0]))
    exact = stats.multivariate_normal(b, w.T @ w + np.exp(-4.0) * np.eye(16)).logpdf(
        x.reshape(64, -1)).mean()
    metrics = {k: jax.jit(f.eval_step)(state, batch, rng) for k, f in fam.items()}
    elbo = float(metrics[1]["elbo"].mean())
    iwae = {k: -float(metrics[k][f"nll_iwae{k}"].mean()) for k in fam}
    assert elbo < iwae[10] < iwae[1000] <= exact + 1e-3 * abs(exact)
    # The bound closes in on log p(x): K=1000 recovers most of the ELBO's gap.
    assert exact - iwae[1000] < 0.25 * (exact - elbo)
