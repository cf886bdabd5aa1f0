"""Convolutional VAE on CIFAR-10 with a discretized logistic decoder (exact 8-bit likelihood).

Variants: smoke. Figures reached: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def get_config(variant=None):
    c = base_config()
    c.data.name = "cifar10"
    c.data.space = "symmetric"
    c.model.family = "vae"
    c.model.arch = "conv"
    c.model.hidden = (64, 128, 256)
    c.model.latent_dim = 128
    c.model.act = "relu"
    c.model.likelihood = "logistic"
    c.model.decoder_log_std = 0.0
    c.model.beta = 1.0
    c.model.kl_warmup_steps = 5000
    c.train.steps = 50_000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.eval_every = 10_000
    c.train.sample_every = 5000
    c.eval.iwae_samples = 100
    c.eval.iwae_chunk = 20
    return pick_variant(c, variant, {})
