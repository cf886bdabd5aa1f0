"""Glow (Kingma & Dhariwal 2018) on MNIST: published test 1.05 bits/dim.

Dequantized pixels shifted to [-0.5, 0.5]; 2 levels (28 -> 14 -> 7) of K steps (actnorm, LU 1x1
conv, affine coupling with sigmoid scale), learned conditional prior at the split. The issue's
target: at most 1.10 bits/dim. Variants: plain (non-LU 1x1 convs), tiny, smoke (tiny model too),
cpu (K = 8 steps of 128 channels, 10,000 steps x 64 with warmup and cosine decay: test 1.667
bits/dim in 83 min on one CPU core). Figures reached: experiments/README.md.
"""
from jaxgen.presets import flow_config


def get_config(variant=None):
    return flow_config("glow", "mnist", variant, tiny=dict(levels=2, steps=1, hidden=8),
                       cpu=dict(steps=10_000, batch_size=64, model=dict(steps=8, hidden=128)),
                       levels=2, steps=16, hidden=256, lu=True)
