"""PixelCNN (van den Oord et al. 2016a) on dynamically binarized MNIST: published test NLL
81.30 nats (PixelRNN paper, Table 4; exact likelihood, no bound).

7x7 mask-A conv to 2h = 64 features, 12 residual blocks (1x1, 3x3 mask B, 1x1), two 1x1 output
layers, one Bernoulli logit per pixel; the paper does not give its MNIST model's size, this one is
ours. Training and eval both binarize dynamically (data.space binarize), as the VAE configs do.
Variants: 8bit (256-way softmax over the 8-bit pixels, data.space symmetric), cpu (1,500 steps x
64, about 50 minutes of one core, one eval at the end: 92.01 test nats), smoke.
Figures reached: experiments/README.md.
"""
from jaxgen.presets import pixelcnn_config


def get_config(variant=None):
    return pixelcnn_config(
        "mnist", "binarize", variant, None,
        smoke=dict(features=4, layers=1, out_hidden=8),
        train=dict(steps=60_000, batch_size=64, log_every=500, checkpoint_every=5000,
                   eval_every=20_000, sample_every=10_000),
        cpu=dict(steps=1500, batch_size=64, evals=1),
        arch="pixelcnn", features=32, layers=12, out_hidden=64)
