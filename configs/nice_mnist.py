"""NICE (Dinh et al. 2015) on MNIST: 4 additive couplings over the flattened image (even/odd
halves), MLPs of 5 x 1000 ReLU units, a diagonal scaling, on dequantized pixels in [0, 1]. The
paper reports a test log-likelihood of 1980.50 nats with a logistic prior in its own data
convention; here the prior is standard normal and the figure is bits/dim over 8-bit pixels.
Variants: tiny, cpu (8,000 steps x 64, about 27 minutes at the 320 img/s of an idle core: 5.775
test bits/dim),
smoke (tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.presets import flow_config


def get_config(variant=None):
    return flow_config("nice", "mnist", variant, tiny=dict(steps=2, hidden=16, mlp_layers=1),
                       cpu=dict(steps=8000, batch_size=64),
                       levels=1, steps=4, hidden=1000, mlp_layers=5, actnorm=False)
