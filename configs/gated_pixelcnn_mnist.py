"""Gated PixelCNN (van den Oord et al. 2016b) on dynamically binarized MNIST. The paper reports
no MNIST figure; its gated model matches PixelRNN's likelihoods elsewhere, so the reference is
PixelCNN's 81.30 nats (van den Oord et al. 2016a).

Vertical and horizontal stacks (no blind spot), tanh * sigmoid gates, a 7x7 receptive field in
the first layer and 3x3 after it, 12 layers of p = 32 features, residual 1x1 on the horizontal
stack, two 1x1 output layers, a Bernoulli logit per pixel; the size is ours.
Variants: cond (class-conditional: a learned per-class bias in every gate; sample grids get one
row per class), 8bit (256-way softmax, data.space symmetric), cpu (1,200 steps x 64, about
45 minutes of one core at ~31 img/s; one eval at the end, as each sample grid costs minutes:
90.51 test nats in 41 minutes), smoke.
Figures reached: experiments/README.md.
"""
from jaxgen.presets import pixelcnn_config


def cond(c):
    c.model.conditional = True


def get_config(variant=None):
    return pixelcnn_config(
        "mnist", "binarize", variant, {"cond": cond},
        smoke=dict(features=4, layers=2, out_hidden=8),
        train=dict(steps=60_000, batch_size=64, log_every=500, checkpoint_every=5000,
                   eval_every=20_000, sample_every=10_000),
        cpu=dict(steps=1200, batch_size=64, evals=1),
        arch="gated", features=32, layers=12, out_hidden=64)
