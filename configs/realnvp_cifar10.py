"""RealNVP (Dinh et al. 2017) on CIFAR-10: published test 3.49 bits/dim.

Logit transform with alpha = 0.05 (its log-det counted); 3 levels (32 -> 16 -> 8 -> 4), each K
checkerboard couplings, squeeze, K channel couplings, factor out half; tanh-bounded scales;
actnorm after each coupling stands in for the paper's batch norm. Standard normal latents.
Variants: tiny, smoke (tiny model too).
Figures reached: experiments/README.md.
"""
from jaxgen.config import base_config, pick_variant


def tiny(c):
    c.model.update(levels=2, steps=1, hidden=8)


def get_config(variant=None):
    c = base_config()
    c.data.name = "cifar10"
    c.data.space = "dequantize"
    c.model.family = "flows"
    c.model.flow = "realnvp"
    c.model.levels = 3
    c.model.steps = 3
    c.model.hidden = 128
    c.model.mlp_layers = 0
    c.model.lu = False
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
    pick_variant(c, variant, {"tiny": tiny})
    if "smoke" in (variant or "").split("+"):
        tiny(c)
    return c
