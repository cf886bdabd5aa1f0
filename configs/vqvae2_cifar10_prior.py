"""The second stage of configs/vqvae2_cifar10.py: two Gated PixelCNNs (15 layers, 128 features),
one over the 4x4 top codes and one over the 8x8 bottom codes that also sees the top codes;
train the first stage into runs/vqvae2_cifar10 first (or set --config.model.first_stage).
Variants: cond, smoke (reads runs/vqvae2_cifar10_smoke). Figures reached: experiments/README.md.
"""
from jaxgen.presets import CIFAR10_PRIOR, vqprior_config


def get_config(variant=None):
    return vqprior_config("cifar10", "runs/vqvae2_cifar10", variant, **CIFAR10_PRIOR)
