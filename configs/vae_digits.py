"""VAE on scikit-learn's embedded 8x8 digits: the README's first command (no download).

Bernoulli decoder on dynamically binarized pixels, MLP 64-256-256-8. About a minute on a laptop
CPU; see experiments/README.md for the figures it reaches.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def get_config(variant=None):
    c = base_config()
    c.data.name = "digits"
    c.data.space = "binarize"
    c.model.family = "vae"
    c.model.arch = "mlp"
    c.model.hidden = (256, 256)
    c.model.latent_dim = 8
    c.model.act = "relu"
    c.model.likelihood = "bernoulli"
    c.model.decoder_log_std = 0.0
    c.model.beta = 1.0
    c.model.kl_warmup_steps = 500
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 1000
    c.train.eval_every = 1000
    c.train.sample_every = 1000
    c.eval.batch_size = 300
    c.eval.iwae_samples = 1000
    c.eval.iwae_chunk = 100
    c.eval.picture_examples = 300
    return pick_variant(c, variant, {})
