"""StyleGAN2 (Karras et al. 2020) on MNIST, each 28x28 digit padded with black to 32x32 (samples
are cropped back to 28x28), unconditional.

Default, for GPUs: the networks and game of configs/stylegan2_cifar10.py (config F at 32x32,
R1 gamma 0.01, path-length weight 2, style mixing 0.9, EMA half-life 10,000 images), for 10M
images (312,500 steps of 32).
Variants: cpu (narrower nets sized for about 2 h of one CPU core), diffaug, smoke (tiny nets, 6
steps).
Figures: not yet measured.
"""
from jaxgen.presets import stylegan2_config

CPU = dict(steps=2000, batch=32, evals=2,
           model=dict(z_dim=128, w_dim=128, g_width=64, d_width=64))


def get_config(variant=None):
    return stylegan2_config("mnist", variant, steps=312_500, cpu=CPU, resolution=32,
                            r1_gamma=0.01)
