"""pix2pix (Isola et al. 2017) on CIFAR-10 pairs: colorization (gray -> colour) by default.

Default, for GPUs: the paper's U-Net with 64 channels doubling to 512, at 32x32 five levels
down to 1x1 (model.depth 5, dropout 0.5 on the three decoder maps nearest the bottleneck); a
PatchGAN of one stride-2 layer (model.d_layers 1), whose patches are 16x16 pixels of the 32x32
images (the paper's 70x70 of 256x256 is three, 27% of the side; 16 is the nearest here, 50%);
loss cGAN + 100 L1; Adam 2e-4, b1 0.5; 50,000 steps of 64 (64 epochs).
Variants: inpaint (data.task inpaint: a random box blacked out, the mask as a 4th channel),
edges (data.task edges: Sobel edge maps), l1 (the L1 term alone), cpu (32 channels doubling to
256, 7,000 steps of 32 = 4.5 epochs: about 75 minutes at the 51 img/s of
`experiments/bench.py configs/pix2pix_cifar10.py:cpu --steps 3` on a core shared with another
training), smoke (widths 8, 6 steps).
Figures: cpu, colorize, stopped at 1,500 steps (about one epoch, 24 min of a shared core): test
L1 0.0523, PSNR 23.73 dB, SSIM 0.909, below the gray input itself (0.0500, 25.05 dB, 0.935);
coloured, plausible outputs (experiments/README.md). The full cpu runs are not yet measured.
"""
from jaxgen.presets import pix2pix_config

CPU = dict(steps=7000, batch=32, model=dict(g_width=32, d_width=32))


def get_config(variant=None):
    return pix2pix_config("cifar10", "colorize", variant,
                          {"inpaint": lambda c: c.data.update(task="inpaint"),
                           "edges": lambda c: c.data.update(task="edges")},
                          cpu=CPU, depth=5, d_layers=1)
