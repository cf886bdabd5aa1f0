"""RealNVP (Dinh et al. 2017) on MNIST: published test 1.06 bits/dim. The issue's target here:
at most 1.15 bits/dim.

Logit transform with alpha = 0.05 (its log-det counted); 2 levels (28 -> 14 -> 7), each K
checkerboard couplings, squeeze, K channel couplings, factor out half; tanh-bounded scales;
actnorm after each coupling stands in for the paper's batch norm. Standard normal latents.
Variants: tiny, cpu (12,000 steps x 64: 1.459 test bits/dim in 90 minutes of one core), smoke
(tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import flow_config


def get_config(variant=None):
    return flow_config("realnvp", "mnist", variant, tiny=dict(levels=2, steps=1, hidden=8),
                       cpu=dict(steps=12_000, batch_size=64), levels=2, steps=3, hidden=64)
