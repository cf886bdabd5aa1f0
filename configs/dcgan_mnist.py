"""DCGAN (Radford et al. 2016) on MNIST: G projects z (100) to 7x7x128, then 4x4 stride-2
transposed convs (64, then 1 channel) with batch norm and ReLU, tanh output; D is 4x4 stride-2
convs (64, 128) with LeakyReLU(0.2) and no batch norm. Nonsaturating loss, Adam 2e-4, b1 0.5,
batch 64, EMA generator. Variants: smoke. Figures: experiments/README.md.
"""
from jaxgen.config import gan_config


def get_config(variant=None):
    return gan_config("mnist", variant, steps=6000)
