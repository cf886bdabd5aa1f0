"""DDPM (Ho et al. 2020) on CIFAR-10, the paper's model: U-Net ch 128, multipliers (1, 2, 2, 2),
2 res blocks per level, attention at 16x16, dropout 0.1 (35.7M params); linear betas 1e-4..0.02,
T = 1000, eps-prediction with the simple loss, fixed variance beta_t; Adam 2e-4 with 5000 warmup
steps, batch 128, gradient clipping 1, EMA 0.9999, random horizontal flips, 800k steps. The paper
reaches FID 3.17 (ancestral sampling, 50k samples) and NLL <= 3.75 bits/dim (L_simple).

Variants: cond (class-conditional, classifier-free guidance scale 1.3), ddim (50 DDIM steps),
cosine, v, smoke. Eval bounds the NLL with 32 stratified timesteps on 1000 test images
(--config.eval.num_examples=0 for the whole split).
Not trained in this repository yet: no figures reached.
"""
from jaxgen.presets import ddpm_config


def get_config(variant=None):
    return ddpm_config(
        "cifar10", variant, guidance=1.3, flip=True,
        optim=dict(learning_rate=2e-4, warmup_steps=5000, ema_decay=0.9999),
        train=dict(steps=800_000, batch_size=128, log_every=1000, checkpoint_every=10_000,
                   eval_every=50_000, sample_every=10_000))
