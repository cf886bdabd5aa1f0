"""Autoencoder on MNIST, MSE on [0, 1] pixels. Default: MLP 784-512-256-2 with a picture of the
2-D codes coloured by digit; variant conv: conv encoder/decoder with a 32-D code.
Figures: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant


def conv(c):
    c.model.arch = "conv"
    c.model.hidden = (32, 64)
    c.model.latent_dim = 32


def get_config(variant=None):
    return pick_variant(family_config("autoencoder", "mnist"), variant, {"conv": conv})
