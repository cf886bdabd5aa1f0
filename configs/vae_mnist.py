"""VAE on dynamically binarized MNIST, the classic MLP setup (Kingma & Welling 2014; Burda et al.
2016 report test NLL 86.8 nats for a 2x200-unit tanh version trained 3280 epochs).

MLP 784-500-500-50 with ReLU, Bernoulli decoder, Adam 1e-3, batch 100, evaluated by the IWAE
bound with K=5000 importance samples. Variants: latent2 (2-D latent: manifold and latent-map
pictures, Kingma & Welling Fig. 4), conv (convolutional encoder/decoder), smoke.
Figures reached: experiments/README.md.
"""
from jaxgen.presets import family_config, pick_variant


def latent2(c):
    c.model.latent_dim = 2


def conv(c):
    c.model.arch = "conv"
    c.model.hidden = (32, 64)


def get_config(variant=None):
    c = family_config("vae", "mnist")  # the family's defaults are this model's
    return pick_variant(c, variant, {"latent2": latent2, "conv": conv})
