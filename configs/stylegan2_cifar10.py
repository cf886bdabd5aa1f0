"""StyleGAN2 (Karras et al. 2020) on CIFAR-10 at 32x32, unconditional.

Default, for GPUs: the paper's config F networks at 32x32 (512 channels at every resolution, an
8-layer mapping network of 512 with lr multiplier 0.01, 8 styles), batch 32, Adam 0.002 with
betas (0, 0.99) adjusted for the lazy regularisers, R1 gamma 0.01 every 16 steps (StyleGAN2-ADA's
value for CIFAR-10; the paper's 10 is for 1024x1024 faces), path-length weight 2 every 4 steps,
style mixing 0.9, an EMA of G with a half-life of 10,000 images, 25M images (781,250 steps, the
paper's FFHQ length).
Variants: cpu (64 channels, z and w of 128, 7,000 steps of 32 = 4.5 epochs: about 2 h of one
idle core, from `experiments/bench.py configs/stylegan2_cifar10.py:cpu --steps 3`: 15 img/s on a
core shared with another training, about half an idle core's rate), diffaug (DiffAugment
colour, translation and cutout on every image D sees), smoke (tiny nets, 6 steps).
Figures: not yet measured.
"""
from jaxgen.presets import stylegan2_config

CPU = dict(steps=7000, batch=32, evals=2,
           model=dict(z_dim=128, w_dim=128, g_width=64, d_width=64))


def get_config(variant=None):
    return stylegan2_config("cifar10", variant, cpu=CPU, r1_gamma=0.01)
