"""The second stage of configs/vqvae2_cifar10.py: two Gated PixelCNNs (15 layers, 128 features),
one over the 4x4 top codes and one over the 8x8 bottom codes that also sees the top codes;
train the first stage into runs/vqvae2_cifar10 first (or set --config.model.first_stage).
Variants: cond, smoke (reads runs/vqvae2_cifar10_smoke). Figures reached: experiments/README.md.
"""
from jaxgen.config import vqprior_config


def get_config(variant=None):
    return vqprior_config("cifar10", "runs/vqvae2_cifar10", variant, features=128, layers=15,
                          out_hidden=512, dropout=0.1,
                          train=dict(steps=100_000, batch_size=128, log_every=1000,
                                     checkpoint_every=5000, eval_every=25_000,
                                     sample_every=25_000))
