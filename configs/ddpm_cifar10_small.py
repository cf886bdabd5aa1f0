"""A small DDPM on CIFAR-10 for about an hour on one GPU (an estimate, not yet timed): U-Net
ch 64, multipliers (1, 2, 2), 2 res blocks per level, attention at 16x16, dropout 0.1 (6.5M
params, 3.0 GFLOP per image forward, a quarter of the paper model's 11.7); otherwise as
configs/ddpm_cifar10.py (linear schedule, T = 1000, eps-prediction, flips), with 60k steps of
batch 128, 1000 warmup steps and EMA 0.9995.

Variants: cond (class-conditional, guidance scale 1.3), ddim, cosine, v, cpu (ch 32, 1,500
steps of 64, 75 minutes of one core: test bound 4.629 bits/dim, FD 11.97 on 1,000 DDIM-50
samples, classes 0.1-37%), smoke. Figures: experiments/README.md.
"""
from jaxgen.presets import ddpm_config


def get_config(variant=None):
    return ddpm_config(
        "cifar10", variant, guidance=1.3, flip=True, ch=64, ch_mult=(1, 2, 2),
        optim=dict(learning_rate=2e-4, warmup_steps=1000, ema_decay=0.9995),
        train=dict(steps=60_000, batch_size=128, log_every=500, checkpoint_every=5000,
                   eval_every=20_000, sample_every=5000),
        cpu=dict(steps=1500, batch_size=64, evals=1,
                 model=dict(ch=32, norm_groups=8, attn_resolutions=(8,), sampler="ddim",
                            sample_steps=50),
                 optim=dict(learning_rate=5e-4), eval=dict(num_samples=1000)))
