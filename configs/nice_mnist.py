"""NICE (Dinh et al. 2015) on MNIST: 4 additive couplings over the flattened image (even/odd
halves), MLPs of 5 x 1000 ReLU units, a diagonal scaling, on dequantized pixels in [0, 1]. The
paper reports a test log-likelihood of 1980.50 nats with a logistic prior in its own data
convention; here the prior is standard normal and the figure is bits/dim over 8-bit pixels.
Variants: tiny, smoke (tiny model too). Figures reached: experiments/README.md.
"""
from jaxgen.config import base_config, pick_variant


def tiny(c):
    c.model.update(steps=2, hidden=16, mlp_layers=1)


def get_config(variant=None):
    c = base_config()
    c.data.name = "mnist"
    c.data.space = "dequantize"
    c.model.family = "flows"
    c.model.flow = "nice"
    c.model.levels = 1
    c.model.steps = 4
    c.model.hidden = 1000
    c.model.mlp_layers = 5
    c.model.lu = False
    c.model.actnorm = False
    c.model.logit_alpha = 0.05
    c.model.temperature = 1.0
    c.model.picture_temperature = 0.7
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 1000
    c.optim.grad_clip = 50.0
    c.train.steps = 50_000
    c.train.batch_size = 64
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.eval_every = 10_000
    c.train.sample_every = 5000
    c.eval.batch_size = 500
    c.eval.num_samples = 1000
    pick_variant(c, variant, {"tiny": tiny})
    if "smoke" in (variant or "").split("+"):
        tiny(c)
    return c
