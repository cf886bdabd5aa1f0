"""Glow (Kingma & Dhariwal 2018) on CIFAR-10: published test 3.35 bits/dim (L=3, K=32, 512
channels, long training). The issue's target here: at most 3.60 bits/dim.

Dequantized pixels shifted to [-0.5, 0.5]; 3 levels (32 -> 16 -> 8 -> 4) of K steps (actnorm,
LU 1x1 conv, affine coupling with sigmoid scale), learned conditional prior at each split.
Variants: plain (non-LU 1x1 convs), tiny, smoke (tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import flow_config


def get_config(variant=None):
    return flow_config("glow", "cifar10", variant, tiny=dict(levels=2, steps=1, hidden=8),
                       levels=3, steps=32, hidden=512, lu=True)
