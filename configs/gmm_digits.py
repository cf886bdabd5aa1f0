"""Gaussian mixtures fitted by EM on scikit-learn's embedded 8x8 digits (no download).

1,497 training images in 3 steps of 499 per pass; 2 initialisation passes and 100 EM
iterations, K = 10 components with full covariances by default (variants diag, spherical).
Eval reports the test bits/dim and the BIC and AIC of the training fit: sweep
--config.model.num_components to choose K. Figures: experiments/README.md ("Gaussian mixtures
by EM").
"""
from jaxgen.presets import gmm_config, pick_variant

PASS = 3  # steps in one pass of 499 images


def get_config(variant=None):
    c = gmm_config("digits", components=10, reg_covar=1e-4, init_examples=1497, batch=499,
                   passes=102, steps_per_pass=PASS, log_passes=10, eval_batch=300)
    c.eval.update(num_samples=1000, picture_examples=300)
    pick_variant(c, variant, {"diag": lambda c: c.model.update(covariance_type="diag"),
                              "spherical": lambda c: c.model.update(covariance_type="spherical")})
    # 3 passes of 2 steps of 744 (8 devices divide it).
    if "smoke" in (variant or "").split("+"):
        c.train.batch_size = 744
        c.model.update(num_components=3, init_examples=744)
    return c
