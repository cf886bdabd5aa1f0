"""DCGAN (Radford et al. 2016) on MNIST: G projects z (100) to 7x7x128, then two learned 2x
upsamplings (64, then 1 channel) with batch norm and ReLU, tanh output; D is 4x4 stride-2 convs
(64, 128) with LeakyReLU(0.2) and no batch norm. The upsamplings are subpixel convs, which train
~2x faster on CPU than the paper's transposed convs (variant 'transposed'). Nonsaturating loss,
Adam 2e-4, b1 0.5, batch 64, 6000 steps (6.4 epochs), EMA generator. Variants: transposed, info
(InfoGAN), clusters (G and D conditioned on 50 online k-means clusters of the images: with
--config.train.steps=12000, every class within 7-13%), smoke.
Figures: experiments/README.md.
"""
from jaxgen.presets import gan_config


def get_config(variant=None):
    return gan_config("mnist", variant, steps=6000)
