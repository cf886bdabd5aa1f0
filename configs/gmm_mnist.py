"""Gaussian mixtures fitted by EM on MNIST: on pixels or on a 50-D PCA projection.

One pass over the 60,000 training images is 60 steps of 1,000; the config runs 2 initialisation
passes (k-means++ sample, hard assignment) and 20 EM iterations. Variants: k10, k50, k200 (K;
the default is 50), diag and spherical (covariance type; full by default), pca50 (the mixture
on the top 50 principal directions, with an isotropic residual so it stays a density on pixels).
Test bits/dim are over 8-bit pixels with uniform dequantization; eval also reports the BIC and
AIC of the training fit. Figures: experiments/README.md ("Gaussian mixtures by EM").
"""
from jaxgen.presets import gmm_config, pick_variant

PASS = 60  # steps in one pass of 1,000 images


def get_config(variant=None):
    c = gmm_config("mnist", components=50, reg_covar=1e-6, init_examples=10_000, batch=1000,
                   passes=22, steps_per_pass=PASS, log_passes=1, eval_batch=1000)
    variants = {f"k{k}": (lambda c, k=k: c.model.update(num_components=k)) for k in (10, 50, 200)}
    variants.update(diag=lambda c: c.model.update(covariance_type="diag"),
                    spherical=lambda c: c.model.update(covariance_type="spherical"),
                    pca50=lambda c: c.model.update(pca_dim=50))
    pick_variant(c, variant, variants)
    if "smoke" in (variant or "").split("+"):  # 3 passes of 2 steps over 32 training images
        c.data.train_split = "train[:32]"
        # A component holds a handful of 784-D images, so its full covariance is rank <= 5 and
        # 1e-6 on the diagonal is at the edge of float32 Cholesky (it failed on CI's machine).
        c.model.update(num_components=3, init_examples=16, reg_covar=1e-3)
    return c
