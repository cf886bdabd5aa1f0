"""Glow (Kingma & Dhariwal 2018) on MNIST: published test 1.05 bits/dim.

Dequantized pixels shifted to [-0.5, 0.5]; 2 levels (28 -> 14 -> 7) of K steps (actnorm, LU 1x1
conv, affine coupling with sigmoid scale), learned conditional prior at the split. The issue's
target: at most 1.10 bits/dim. Variants: plain (non-LU 1x1 convs), tiny, smoke (tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.config import base_config, pick_variant


def plain(c):
    c.model.lu = False


def tiny(c):
    c.model.update(levels=2, steps=1, hidden=8)


def get_config(variant=None):
    c = base_config()
    c.data.name = "mnist"
    c.data.space = "dequantize"
    c.model.family = "flows"
    c.model.flow = "glow"
    c.model.levels = 2
    c.model.steps = 16
    c.model.hidden = 256
    c.model.mlp_layers = 0
    c.model.lu = True
    c.model.actnorm = True
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
    pick_variant(c, variant, {"plain": plain, "tiny": tiny})
    if "smoke" in (variant or "").split("+"):
        tiny(c)
    return c
