"""The Gaussian image model on MNIST: one pass of sufficient statistics, then closed form.

Full covariance by default; variant pca50 keeps 50 principal components (probabilistic PCA in
closed form), ppca50_em fits the same model by EM and fa50 a 50-factor factor analysis by EM.
Test bits/dim are over 8-bit pixels with uniform dequantization. Figures: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant


def pca50(c):
    c.model.num_components = 50


def fa50(c):
    c.model.update(num_components=50, low_rank="fa")


def ppca50_em(c):
    c.model.update(num_components=50, low_rank="ppca_em")


def get_config(variant=None):
    c = family_config("gaussian", "mnist")
    c.train.update(steps=60, log_every=60, checkpoint_every=60, eval_every=60,
                   sample_every=60)  # one pass over the 60,000 training images
    return pick_variant(c, variant, {"pca50": pca50, "fa50": fa50, "ppca50_em": ppca50_em})
