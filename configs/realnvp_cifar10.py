"""RealNVP (Dinh et al. 2017) on CIFAR-10: published test 3.49 bits/dim.

Logit transform with alpha = 0.05 (its log-det counted); 3 levels (32 -> 16 -> 8 -> 4), each K
checkerboard couplings, squeeze, K channel couplings, factor out half; tanh-bounded scales;
actnorm after each coupling stands in for the paper's batch norm. Standard normal latents.
Variants: tiny, cpu (64 hidden channels, 6,000 steps x 64: 3.936 test bits/dim in 82 minutes of one core),
smoke (tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import flow_config


def get_config(variant=None):
    return flow_config("realnvp", "cifar10", variant, tiny=dict(levels=2, steps=1, hidden=8),
                       cpu=dict(steps=6000, batch_size=64, model=dict(hidden=64)),
                       levels=3, steps=3, hidden=128)
