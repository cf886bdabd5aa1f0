"""Classifier on CIFAR-10: the feature network of the sample metrics for CIFAR-10 models.

Trained to be fast on a CPU: a frozen 2x2 patch-whitening layer computed from the first batch
(24 filters), 3 stages x 2 convs (64, 256, 256) with batch norm, pooling after each stage's first
conv, 256-D features; random 2-pixel translations and horizontal flips; label smoothing 0.2;
SGD with Nesterov momentum, batch 512, linear warmup then linear decay over 8 epochs.
Variants: smoke. Figures: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def get_config(variant=None):
    c = base_config()
    c.data.name = "cifar10"
    c.data.space = "unit"
    c.model.family = "classifier"
    c.model.whiten = 2
    c.model.widths = (64, 256, 256)
    c.model.convs_per_stage = 2
    c.model.pool_first = True
    c.model.feature_dim = 256
    c.model.dropout = 0.0
    c.model.crop_pad = 2
    c.model.flip = True
    c.model.label_smoothing = 0.2
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.4
    c.optim.b1 = 0.9
    c.optim.weight_decay = 5e-4
    c.optim.schedule = "linear"
    c.optim.warmup_steps = 160
    c.train.steps = c.optim.decay_steps = 780  # 8 epochs
    c.train.batch_size = 512
    c.train.log_every = 20
    c.train.checkpoint_every = 100
    c.train.eval_every = 200
    return pick_variant(c, variant, {})
