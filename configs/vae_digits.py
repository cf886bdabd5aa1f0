"""VAE on scikit-learn's embedded 8x8 digits: the README's first command (no download).

Bernoulli decoder on dynamically binarized pixels, MLP 64-256-256-8. About a minute on a laptop
CPU; see experiments/README.md for the figures it reaches.
"""
from jaxgen.presets import family_config, pick_variant





def get_config(variant=None):
    c = family_config("vae", "digits", hidden=(256, 256), latent_dim=8, kl_warmup_steps=500)
    c.train.update(steps=3000, batch_size=64, log_every=250, checkpoint_every=1000,
                   eval_every=1000, sample_every=1000)
    c.eval.update(batch_size=300, iwae_samples=1000, iwae_chunk=100, picture_examples=300)
    return pick_variant(c, variant, {})
