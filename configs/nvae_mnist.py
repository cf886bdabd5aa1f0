"""NVAE (Vahdat & Kautz 2020) on dynamically binarized MNIST: published test NLL 78.01 nats.

Default: the paper's MNIST model (its Table 6): 2 latent scales of 5 groups of 20 channels
(14x14 and 7x7 here, on unpadded 28x28 digits; the paper pads to 32x32 for 8x8 and 4x4), 32
initial channels, one residual cell per group, lambda 1e-2 for the spectral and BN
regularisers, KL warm-up over 30% of training, 400 epochs of batch 200; Adam in place of the
paper's Adamax. Bernoulli decoder; eval by the IWAE bound with K = 1000.
Variants: flows (two flow cells per group in the posterior), cpu (a narrower net for one CPU
core: 7,000 steps in 1 h 35 min, IWAE K = 100 85.69 nats on 1,000 test images), smoke.
Figures: experiments/README.md.
"""
from jaxgen.presets import nvae_config

SMOKE = dict(ch=8, latent_ch=4, groups=(1, 1), cells=1, pre_blocks=0, expand=2)


def get_config(variant=None):
    return nvae_config(
        "mnist", variant, smoke=SMOKE,
        cpu=dict(steps=7000, batch_size=64, warmup=300, evals=2,
                 model=dict(ch=16, latent_ch=20, groups=(2, 2), outer_cells=1, expand=3,
                            readjust_batches=10),
                 optim=dict(learning_rate=3e-3),
                 eval=dict(iwae_samples=100, iwae_chunk=25, num_examples=1000)))
