"""pix2pix (Isola et al. 2017) on MNIST pairs: Sobel edge map -> digit by default.

Default, for GPUs: the U-Net of configs/pix2pix_cifar10.py, two levels deep (model.depth 2:
28 -> 14 -> 7, the most that 28 halves evenly), and a PatchGAN of one stride-2 layer whose
patches are 16x16 pixels of the 28x28 digits; loss cGAN + 100 L1; 50,000 steps of 64.
Variants: inpaint (a random box blacked out, the mask as a 2nd channel), l1 (the L1 term
alone), cpu (32 channels, 9,000 steps of 32 = 4.8 epochs: about 65 minutes at the 74 img/s of
`experiments/bench.py configs/pix2pix_mnist.py:cpu --steps 3` on a core shared with another
training), smoke (widths 8, 6 steps).
Figures: not yet measured.
"""
from jaxgen.presets import pix2pix_config

CPU = dict(steps=9000, batch=32, model=dict(g_width=32, d_width=32))


def get_config(variant=None):
    return pix2pix_config("mnist", "edges", variant,
                          {"inpaint": lambda c: c.data.update(task="inpaint")},
                          cpu=CPU, depth=2, d_layers=1)
