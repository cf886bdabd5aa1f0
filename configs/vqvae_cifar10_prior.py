"""The second stage of configs/vqvae_cifar10.py: a Gated PixelCNN (15 layers, 128 features)
over its 8x8 codes; train the first stage into runs/vqvae_cifar10 first (or set
--config.model.first_stage). Variants: cond, smoke (reads runs/vqvae_cifar10_smoke).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import CIFAR10_PRIOR, vqprior_config


def get_config(variant=None):
    return vqprior_config("cifar10", "runs/vqvae_cifar10", variant, **CIFAR10_PRIOR)
