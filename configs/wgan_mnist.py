"""WGAN (Arjovsky et al. 2017) on MNIST with the DCGAN nets: the critic's Wasserstein loss, its
weights clipped to [-0.01, 0.01] after every update, 5 critic updates per generator update (each
on its own 64 images: train.batch_size = 5 x 64), RMSProp 5e-5 for both. `w_distance` in the logs
is the critic's estimate of the Wasserstein distance. Variants: smoke.
"""
from jaxgen.presets import gan_config


def rmsprop(c):
    for optim in (c.optim, c.optim_d):
        optim.update(name="rmsprop", learning_rate=5e-5, b2=0.99)


def get_config(variant=None):
    return gan_config("mnist", variant, steps=3000, edit=rmsprop, loss="wasserstein", clip=0.01,
                      n_critic=5)
