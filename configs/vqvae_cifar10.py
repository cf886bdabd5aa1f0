"""VQ-VAE (van den Oord et al. 2017) on CIFAR-10 as the paper describes its encoder and
decoder: two 4x4 stride-2 convs, two residual blocks (ReLU, 3x3, ReLU, 1x1), 256 units, here
an 8x8 map of codes from K = 512 codes of D = 64; the decoder upsamples by nearest neighbour and
3x3 convs (see jaxgen.nn.vq). The second stage: configs/vqvae_cifar10_prior.py.
Variants: cpu (2,000 steps x 64, 35 minutes of one core: test MSE 0.00443, PSNR 24.06 dB,
380 of 512 codes in use; one eval at the end), smoke. Figures reached: experiments/README.md.
"""
from jaxgen.presets import vqvae_config


def get_config(variant=None):
    return vqvae_config("cifar10", variant, levels=1, features=256,
                        cpu=dict(steps=2000, batch_size=64, evals=1),
                        train=dict(steps=100_000, batch_size=128, log_every=1000,
                                   checkpoint_every=5000, eval_every=25_000, sample_every=25_000))
