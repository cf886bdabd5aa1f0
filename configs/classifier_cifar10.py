"""Classifier on CIFAR-10: the feature network of the sample metrics for CIFAR-10 models.

VGG-style CNN, 3 stages x 2 convs (64, 128, 256) with batch norm, dropout 0.2, 256-D features;
random crops (4-pixel zero padding) and horizontal flips; AdamW (weight decay 0.05) with warmup
and cosine decay over 40,000 steps (~100 epochs at batch 128). Sized for a GPU, where a recipe
like this passes the 90% test accuracy target; it has not been trained to the end here (CPU only),
so no figure is claimed yet. Variants: smoke.
"""
from jaxgen.config import base_config, pick_variant


def get_config(variant=None):
    c = base_config()
    c.data.name = "cifar10"
    c.data.space = "unit"
    c.model.family = "classifier"
    c.model.widths = (64, 128, 256)
    c.model.convs_per_stage = 2
    c.model.feature_dim = 256
    c.model.dropout = 0.2
    c.model.crop_pad = 4
    c.model.flip = True
    c.optim.name = "adamw"
    c.optim.learning_rate = 2e-3
    c.optim.weight_decay = 0.05
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 500
    c.train.steps = c.optim.decay_steps = 40_000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = c.train.eval_every = 5000
    return pick_variant(c, variant, {})
