"""VAE on dynamically binarized MNIST, the classic MLP setup (Kingma & Welling 2014; Burda et al.
2016 report test NLL 86.8 nats for a 2x200-unit tanh version trained 3280 epochs).

MLP 784-500-500-50 with ReLU, Bernoulli decoder, Adam 1e-3, batch 100, evaluated by the IWAE
bound with K=5000 importance samples. Variants: latent2 (2-D latent: manifold and latent-map
pictures, Kingma & Welling Fig. 4), conv (convolutional encoder/decoder), smoke.
Figures reached: experiments/README.md.
"""
from jaxgen.config import base_config
from jaxgen.presets import pick_variant


def latent2(c):
    c.model.latent_dim = 2


def conv(c):
    c.model.arch = "conv"
    c.model.hidden = (32, 64)


def get_config(variant=None):
    c = base_config()
    c.data.name = "mnist"
    c.data.space = "binarize"
    c.model.family = "vae"
    c.model.arch = "mlp"
    c.model.hidden = (500, 500)
    c.model.latent_dim = 50
    c.model.act = "relu"
    c.model.likelihood = "bernoulli"
    c.model.decoder_log_std = 0.0
    c.model.beta = 1.0
    c.model.kl_warmup_steps = 0
    c.train.steps = 60_000  # 100 epochs
    c.train.batch_size = 100
    c.train.log_every = 1000
    c.train.checkpoint_every = 5000
    c.train.eval_every = 20_000
    c.train.sample_every = 5000
    c.eval.batch_size = 500
    c.eval.iwae_samples = 5000
    c.eval.iwae_chunk = 250
    return pick_variant(c, variant, {"latent2": latent2, "conv": conv})
