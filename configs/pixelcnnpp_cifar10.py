"""PixelCNN++ (Salimans et al. 2017) on CIFAR-10: published test 2.92 bits/dim.

The paper's model: 3 scales, 5 gated resnet blocks per scale while downsampling (32, 16, 8) and
5 / 6 / 6 while upsampling back, 160 filters, concat_elu, dropout 0.5, shifted convs, shortcut
connections, a mixture of 10 discretized logistics with coupled RGB means; Polyak-averaged
weights (EMA 0.9995) for eval and sampling. Differences: Adam with a cosine decay in place of
Adamax with exponential decay, no weight normalization (and so no data-dependent init). Sized
for a GPU; the 'small' variant (nr_resnet 2, 64 filters, 5 mixtures) is for shorter runs.
Variants: small, cpu (32 filters, 1 block per scale, 5 logistics, 1,500 steps x 64: 4.163 test
bits/dim in about 85 minutes of one core), smoke.
Figures reached: experiments/README.md.
"""
from jaxgen.presets import pixelcnn_config


def small(c):
    c.model.update(features=64, layers=2, num_mixtures=5)


def get_config(variant=None):
    return pixelcnn_config(
        "cifar10", "symmetric", variant, {"small": small},
        smoke=dict(features=8, layers=1, num_mixtures=2),
        train=dict(steps=500_000, batch_size=64, log_every=1000, checkpoint_every=10_000,
                   eval_every=50_000, sample_every=50_000),
        optim=dict(learning_rate=1e-3, schedule="cosine", decay_steps=500_000, ema_decay=0.9995),
        cpu=dict(steps=1500, batch_size=64, evals=1,
                 model=dict(features=32, layers=1, num_mixtures=5, dropout=0.0),
                 eval=dict(sample_grid=16, completions=2)),
        arch="pixelcnnpp", likelihood="logistic_mixture", features=160, layers=5,
        num_mixtures=10, dropout=0.5)
