"""The second stage of configs/vqvae_cifar10.py: a Gated PixelCNN (15 layers, 128 features)
over its 8x8 codes; train the first stage into runs/vqvae_cifar10 first (or set
--config.model.first_stage). Variants: cond, smoke (reads runs/vqvae_cifar10_smoke).
Figures reached: experiments/README.md.
"""
from jaxgen.config import vqprior_config


def get_config(variant=None):
    return vqprior_config("cifar10", "runs/vqvae_cifar10", variant, features=128, layers=15,
                          out_hidden=512, dropout=0.1,
                          train=dict(steps=100_000, batch_size=128, log_every=1000,
                                     checkpoint_every=5000, eval_every=25_000,
                                     sample_every=25_000))
