"""The Gaussian image model on CIFAR-10 (3072-D full covariance, or 100-component PPCA).

Figures: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant


def pca100(c):
    c.model.num_components = 100


def get_config(variant=None):
    c = family_config("gaussian", "cifar10")
    c.train.update(steps=50, log_every=50, checkpoint_every=50, eval_every=50,
                   sample_every=50)  # one pass over the 50,000 training images
    return pick_variant(c, variant, {"pca100": pca100})
