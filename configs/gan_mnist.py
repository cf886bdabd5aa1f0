"""The original GAN (Goodfellow et al. 2014) on MNIST: MLPs, z of 100 dims, G 128-256-512-1024
with batch norm, LeakyReLU(0.2) and a tanh output, D 512-256 with LeakyReLU(0.2); the
nonsaturating generator loss the paper recommends in practice (variant 'minimax': the loss as the
game is written). One addition to the paper's D: a minibatch-stddev feature (groups of 4) into its
last layer (Karras et al. 2018), which brings every class within 7.7-12.9% of the samples.
Adam 2e-4, b1 0.5, batch 64, 30k steps (32 epochs), EMA generator.
Variants: minimax, smoke. Figures: experiments/README.md.
"""
from jaxgen.presets import gan_config


def get_config(variant=None):
    return gan_config("mnist", variant, {"minimax": lambda c: c.model.update(loss="minimax")},
                      steps=30_000, arch="mlp", g_width=1024, g_depth=4, d_width=512,
                      d_depth=2, d_mbstd=4)
