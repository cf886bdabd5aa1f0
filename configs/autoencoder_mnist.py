"""Autoencoder on MNIST, MSE on [0, 1] pixels. Default: MLP 784-512-256-2 with a picture of the
2-D codes coloured by digit; variant conv: conv encoder/decoder with a 32-D code.
Figures: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def conv(c):
    c.model.arch = "conv"
    c.model.hidden = (32, 64)
    c.model.latent_dim = 32


def get_config(variant=None):
    c = base_config()
    c.data.name = "mnist"
    c.data.space = "unit"
    c.model.family = "autoencoder"
    c.model.arch = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 2
    c.model.act = "relu"
    c.model.code_ema = 0.99
    c.train.steps = 10_000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = c.train.eval_every = c.train.sample_every = 2500
    return pick_variant(c, variant, {"conv": conv})
