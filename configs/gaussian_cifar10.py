"""The Gaussian image model on CIFAR-10 (3072-D full covariance, or 100-component PPCA).

Figures: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def pca100(c):
    c.model.num_components = 100


def get_config(variant=None):
    c = base_config()
    c.data.name = "cifar10"
    c.data.space = "dequantize"
    c.model.family = "gaussian"
    c.model.num_components = 0
    c.model.min_var = 1e-8
    c.model.low_rank = "ppca"  # with num_components: ppca (closed form), ppca_em or fa (by EM)
    c.model.em_iterations = 2000
    c.model.em_tol = 1e-4  # nats per image
    c.train.batch_size = 1000
    c.train.steps = 50  # one pass over the 50,000 training images
    c.train.log_every = c.train.checkpoint_every = c.train.eval_every = c.train.sample_every = 50
    c.eval.batch_size = 1000
    return pick_variant(c, variant, {"pca100": pca100})
