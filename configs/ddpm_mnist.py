"""DDPM on MNIST (28x28, [-1, 1]): U-Net ch 64, multipliers (1, 2, 2) (28 -> 14 -> 7), 2 res
blocks per level, attention at 7x7, dropout 0.1; linear schedule T = 1000, eps-prediction; Adam
2e-4, 1000 warmup steps, batch 128, clipping 1, EMA 0.999, 30k steps. Samples grids and pictures
use 100 DDIM steps (eta 0) to stay affordable on a CPU; --config.model.sampler=ancestral for DDPM.

Variants: cond (class-conditional with classifier-free guidance scale 2, label dropout 0.1), ddim,
cosine, v, cpu (ch 32, 2,800 steps x 64, about two hours of one core: a test bound of 2.258
bits/dim, 2.259 with cond), smoke. Figures reached: experiments/README.md.
"""
from jaxgen.presets import ddpm_config


def get_config(variant=None):
    return ddpm_config(
        "mnist", variant, guidance=2.0, ch=64, ch_mult=(1, 2, 2), attn_resolutions=(7,),
        sampler="ddim", sample_steps=100,
        optim=dict(learning_rate=2e-4, warmup_steps=1000, ema_decay=0.999),
        train=dict(steps=30_000, batch_size=128, log_every=500, checkpoint_every=5000,
                   eval_every=10_000, sample_every=5000),
        cpu=dict(steps=2800, batch_size=64, evals=2,
                 model=dict(ch=32, norm_groups=8), optim=dict(learning_rate=5e-4)))
