"""Class-conditional DCGAN on MNIST (Mirza & Osindero 2014's idea on the DCGAN nets): G gets a
label embedding concatenated to z; D is a projection discriminator (Miyato & Koyama 2018), its
logit plus <embed(y), features>. Samples come one row per class; eval reports how often the MNIST
classifier sees the requested class (cond_accuracy, target >= 97%). 6000 steps.
Variants: transposed, smoke.
"""
from jaxgen.presets import gan_config


def get_config(variant=None):
    return gan_config("mnist", variant, steps=6000, conditional=True)
