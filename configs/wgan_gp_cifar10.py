"""WGAN-GP (Gulrajani et al. 2017) on CIFAR-10 with their ResNet: G is z (128) -> 4x4x128 and
three residual up-blocks; the critic is four residual blocks (two mean-pool downsamplings) of 128
channels, a global sum pool and a linear head, no normalisation. Gradient penalty weight 10,
5 critic updates per generator update on 64 images each (train.batch_size = 320), Adam 2e-4,
b1 0, b2 0.9, learning rates decayed linearly to 0 over 100k generator steps. Sized for a GPU.
Variants: smoke.
"""
from jaxgen.presets import gan_config

STEPS = 100_000


def wgan_gp(c):
    c.optim.update(b1=0.0, b2=0.9, schedule="linear", decay_steps=STEPS, ema_decay=0.9999)
    c.optim_d.update(b1=0.0, b2=0.9, schedule="linear", decay_steps=STEPS * c.model.n_critic)
    c.train.update(checkpoint_every=5000, eval_every=20_000, sample_every=5000)


def get_config(variant=None):
    return gan_config("cifar10", variant, steps=STEPS, edit=wgan_gp, arch="resnet",
                      loss="wasserstein", penalty="gp", penalty_weight=10.0, n_critic=5,
                      latent_dim=128, g_width=128, d_width=128,
                      cpu=dict(steps=1000, batch=32, model=dict(g_width=64, d_width=64)))
