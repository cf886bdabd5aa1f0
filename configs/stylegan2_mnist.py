"""StyleGAN2 (Karras et al. 2020) on MNIST, unconditional: each 28x28 digit is padded with black
to 32x32 (model.resolution) and samples are cropped back to 28x28.

Default, for GPUs: the networks and game of configs/stylegan2_cifar10.py (config F at 32x32,
R1 gamma 0.01 every 16 steps, path-length weight 2 every 4, style mixing 0.9, EMA half-life
10,000 images), for 10M images (312,500 steps of 32).
Variants: cpu (64 channels, z and w of 128, 7,000 steps of 32 = 3.7 epochs: about 2 h of one
idle core, from `experiments/bench.py configs/stylegan2_mnist.py:cpu --steps 3`: 18 img/s on a
core shared with another training, about half an idle core's rate), diffaug, smoke (tiny nets,
6 steps).
Figures: the cpu variant collapsed to one or two classes (FD 91.99 at 7,000 steps):
experiments/README.md.
"""
from jaxgen.presets import stylegan2_config

CPU = dict(steps=7000, batch=32, evals=2,
           model=dict(z_dim=128, w_dim=128, g_width=64, d_width=64))


def get_config(variant=None):
    return stylegan2_config("mnist", variant, steps=312_500, cpu=CPU, resolution=32,
                            r1_gamma=0.01)
