"""The second stage of configs/vqvae_mnist.py: a Gated PixelCNN (12 layers, 64 features) over
its 7x7 codes; train the first stage into runs/vqvae_mnist first (or set
--config.model.first_stage). Variants: cond (class-conditional prior; grids get one row per
class), smoke (reads runs/vqvae_mnist_smoke). Figures reached: experiments/README.md.
"""
from jaxgen.presets import vqprior_config


def get_config(variant=None):
    return vqprior_config("mnist", "runs/vqvae_mnist", variant,
                          train=dict(steps=5000, batch_size=128, log_every=250,
                                     checkpoint_every=1000, eval_every=5000, sample_every=1000))
