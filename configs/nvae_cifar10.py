"""NVAE (Vahdat & Kautz 2020) on CIFAR-10 with a discretized logistic mixture decoder (10
components, channel means coupled): published test 2.91 bits/dim with 30 groups of 16x16
latents, 128 channels and 2 cells per group (and flows), trained 55 h on 8 V100s.

Default: a smaller model for one GPU: latent scales 16x16 and 8x8 of 10 groups each, 20
latent channels, 64 initial channels, 2 cells per group, batch 64. Variants: flows (two flow
cells per group in the posterior), cpu (a narrow net for one CPU core), smoke. Figures:
experiments/README.md.
"""
from jaxgen.presets import nvae_config

SMOKE = dict(ch=8, latent_ch=4, groups=(1, 1), cells=1, pre_blocks=0, expand=2,
             num_mixtures=2)


def get_config(variant=None):
    return nvae_config(
        "cifar10", variant, smoke=SMOKE, likelihood="logistic_mixture", ch=64,
        groups=(10, 10), cells=2, optim=dict(learning_rate=1e-2),
        train=dict(steps=200_000, batch_size=64),
        eval=dict(iwae_samples=100, iwae_chunk=10, batch_size=100),
        cpu=dict(steps=5000, batch_size=32, warmup=300,
                 model=dict(ch=16, latent_ch=8, groups=(2, 2), cells=1, expand=3,
                            readjust_batches=10),
                 optim=dict(learning_rate=3e-3), eval=dict(iwae_samples=20, iwae_chunk=10)))
