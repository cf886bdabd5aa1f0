"""Convolutional VAE on CIFAR-10 with a discretized logistic decoder (exact 8-bit likelihood).

Variants: smoke. Figures reached: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant





def get_config(variant=None):
    c = family_config("vae", "cifar10", arch="conv", hidden=(64, 128, 256), latent_dim=128,
                      likelihood="logistic", kl_warmup_steps=5000)
    c.train.update(steps=50_000, batch_size=128, log_every=500, checkpoint_every=5000,
                   eval_every=10_000, sample_every=5000)
    c.eval.update(batch_size=500, iwae_samples=100, iwae_chunk=20)
    return pick_variant(c, variant, {})
