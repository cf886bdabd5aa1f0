"""VQ-VAE (van den Oord et al. 2017) on MNIST: 7x7 codes from a 64-code codebook of 32-D
vectors, 64-feature encoder and decoder with two residual blocks; the sizes are ours (the paper
has no MNIST model). The second stage: configs/vqvae_mnist_prior.py.
Variants: smoke. Figures reached: experiments/README.md.
"""
from jaxgen.presets import vqvae_config


def get_config(variant=None):
    return vqvae_config("mnist", variant, levels=1, features=64, num_codes=64, code_dim=32,
                        train=dict(steps=10_000, batch_size=128, log_every=500,
                                   checkpoint_every=2500, eval_every=5000, sample_every=5000))
