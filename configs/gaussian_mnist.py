"""The Gaussian image model on MNIST: one pass of sufficient statistics, then closed form.

Full covariance by default; variant pca50 keeps 50 principal components (probabilistic PCA in
closed form), ppca50_em fits the same model by EM and fa50 a 50-factor factor analysis by EM.
Test bits/dim are over 8-bit pixels with uniform dequantization. Figures: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def pca50(c):
    c.model.num_components = 50


def fa50(c):
    c.model.update(num_components=50, low_rank="fa")


def ppca50_em(c):
    c.model.update(num_components=50, low_rank="ppca_em")


def get_config(variant=None):
    c = base_config()
    c.data.name = "mnist"
    c.data.space = "dequantize"
    c.model.family = "gaussian"
    c.model.num_components = 0
    c.model.min_var = 1e-8
    c.model.low_rank = "ppca"  # with num_components: ppca (closed form), ppca_em or fa (by EM)
    c.model.em_iterations = 2000
    c.model.em_tol = 1e-4  # nats per image
    c.train.batch_size = 1000
    c.train.steps = 60  # one pass over the 60,000 training images
    c.train.log_every = c.train.checkpoint_every = c.train.eval_every = c.train.sample_every = 60
    c.eval.batch_size = 1000
    return pick_variant(c, variant, {"pca50": pca50, "fa50": fa50, "ppca50_em": ppca50_em})
