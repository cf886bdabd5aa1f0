"""Gaussian mixtures fitted by EM on scikit-learn's embedded 8x8 digits (no download).

1,497 training images in 3 steps of 499 per pass; 2 initialisation passes and 100 EM
iterations, K = 10 components with full covariances by default (variants diag, spherical).
Eval reports the test bits/dim and the BIC and AIC of the training fit: sweep
--config.model.num_components to choose K. Figures: experiments/README.md ("Gaussian mixtures
by EM").
"""
from jaxgen.config import base_config, pick_variant

PASS = 3  # steps in one pass of 499 images


def get_config(variant=None):
    c = base_config()
    c.data.name = "digits"
    c.data.space = "dequantize"
    c.model.family = "gmm"
    c.model.num_components = 10
    c.model.covariance_type = "full"
    c.model.pca_dim = 0
    c.model.reg_covar = 1e-4
    c.model.init_examples = 1497
    c.model.min_var = 1e-8
    c.model.sample_residual = True
    c.train.batch_size = 499
    c.train.steps = 102 * PASS
    c.train.log_every = 10 * PASS
    c.train.checkpoint_every = c.train.eval_every = c.train.sample_every = 102 * PASS
    c.eval.batch_size = 300
    c.eval.num_samples = 1000
    c.eval.sample_grid = 100
    c.eval.picture_examples = 300
    pick_variant(c, variant, {"diag": lambda c: c.model.update(covariance_type="diag"),
                              "spherical": lambda c: c.model.update(covariance_type="spherical")})
    # 3 passes of 2 steps of 744 (8 devices divide it); the suite runs it as diag+smoke, as a
    # 64 x 64 Cholesky in the step hung XLA's CPU runtime on 8 emulated devices.
    if "smoke" in (variant or "").split("+"):
        c.train.batch_size = 744
        c.model.update(num_components=3, init_examples=744)
    return c
