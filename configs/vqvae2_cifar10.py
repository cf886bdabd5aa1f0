"""VQ-VAE-2 (Razavi et al. 2019) on CIFAR-10: a bottom level of 8x8 codes and a top level of
4x4, K = 512 codes of D = 64 each, the bottom's encoder conditioned on the decoded top codes,
128-feature nets; the sizes are ours (the paper trains on 256x256 images).
The second stage: configs/vqvae2_cifar10_prior.py.
Variants: smoke. Figures reached: experiments/README.md.
"""
from jaxgen.presets import vqvae_config


def get_config(variant=None):
    return vqvae_config("cifar10", variant, levels=2, features=128,
                        train=dict(steps=100_000, batch_size=128, log_every=1000,
                                   checkpoint_every=5000, eval_every=25_000, sample_every=25_000))
