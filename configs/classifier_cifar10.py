"""Classifier on CIFAR-10: the feature network of the sample metrics for CIFAR-10 models.

Trained to be fast on a CPU: a frozen 2x2 patch-whitening layer computed from the first batch
(24 filters), 3 stages x 2 convs (64, 256, 256) with batch norm, pooling after each stage's first
conv, 256-D features; random 2-pixel translations and horizontal flips; label smoothing 0.2;
SGD with Nesterov momentum, batch 512, linear warmup then linear decay over 8 epochs.
Variants: smoke. Figures: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant





def get_config(variant=None):
    c = family_config("classifier", "cifar10", whiten=2, widths=(64, 256, 256), convs_per_stage=2,
                      pool_first=True, feature_dim=256, dropout=0.0, flip=True,
                      label_smoothing=0.2)
    c.optim.update(name="sgd", learning_rate=0.4, b1=0.9, weight_decay=5e-4, schedule="linear",
                   warmup_steps=160, decay_steps=780)
    c.train.update(steps=780, batch_size=512, log_every=20, checkpoint_every=100,  # 8 epochs
                   eval_every=200)
    return pick_variant(c, variant, {})
