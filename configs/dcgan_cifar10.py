"""DCGAN (Radford et al. 2016) on CIFAR-10: G projects z (100) to 4x4x256, then three 4x4
stride-2 transposed convs (128, 64, 3) with batch norm and ReLU; D mirrors it with stride-2 convs
(64, 128, 256) and LeakyReLU(0.2). Nonsaturating loss, Adam 2e-4, b1 0.5, batch 128, EMA
generator. Sized for a GPU. Variants: cpu (5,000 steps x 128, 80 minutes of one core: FD 11.51
in classifier_cifar10's features, the full-covariance Gaussian 13.02), smoke (transposed is the
default here). Figures: experiments/README.md.
"""
from jaxgen.presets import gan_config


def get_config(variant=None):
    return gan_config("cifar10", variant, steps=50_000, batch=128, upsample="transposed",
                      cpu=dict(steps=5000, batch=128))
