"""The second stage of configs/vqvae_cifar10.py: a Gated PixelCNN (15 layers, 128 features)
over its 8x8 codes; train the first stage into runs/vqvae_cifar10 first (or set
--config.model.first_stage). Variants: cond, cpu (2,000 steps x 64 over the codes of
runs/vqvae_cifar10_cpu, the first stage's cpu variant; 6.563 test bits per code in 88 minutes of
one core, two-stage FD 12.23 on 2,000 samples), smoke (reads runs/vqvae_cifar10_smoke).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import CIFAR10_PRIOR, vqprior_config


def get_config(variant=None):
    return vqprior_config("cifar10", "runs/vqvae_cifar10", variant, **CIFAR10_PRIOR,
                          cpu=dict(steps=2000, batch_size=64, evals=1,
                                   model=dict(first_stage="runs/vqvae_cifar10_cpu")))
