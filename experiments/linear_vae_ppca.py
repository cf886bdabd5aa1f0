"""Unit experiment: a linear VAE reaches the probabilistic-PCA log-likelihood.

A VAE with linear encoder and decoder and a Gaussian decoder of learned variance has the same
maximum-likelihood solution as probabilistic PCA (Tipping & Bishop 1999; Lucas et al. 2019), whose
optimum jaxgen's Gaussian family computes in closed form. Both are trained from the CLI on 8x8
images drawn from a 4-factor model and quantized to 8 bits; their test bits/dim must agree.

    python experiments/linear_vae_ppca.py [--workdir runs/linear_vae_ppca] [--steps 20000]

The ELBO of a linear VAE approaches its optimum slowly (the posterior's rotation is a flat
direction), hence the many cheap steps.
"""
import argparse
import json
import os

import chex
import numpy as np

from jaxgen.main import main as cli

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def make_data(path: str, n: int = 6000, factors: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=24.0, size=(factors, 64))
    x = 128 + rng.normal(size=(n, factors)) @ w + rng.normal(scale=16.0, size=(n, 64))
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(n, 8, 8, 1)
    np.savez(path, images=images)


def run(workdir: str, steps: int) -> dict:
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, "factors.npz")
    make_data(data)
    # One device: the 8x8 model's steps are too small to gain from sharding, only to wait on it.
    common = [f"--config.data.name=npz:{data}", "--config.data.space=dequantize",
              "--config.eval.batch_size=600", "--config.train.log_every=1000",
              "--config.train.num_devices=1"]
    ppca_dir, vae_dir = os.path.join(workdir, "ppca"), os.path.join(workdir, "vae")
    assert cli(["--config", os.path.join(CONFIGS, "gaussian_mnist.py"), "--workdir", ppca_dir,
                "--config.model.num_components=4", "--config.train.batch_size=600",
                "--config.train.steps=9", *common]) == 0
    assert cli(["--config", os.path.join(CONFIGS, "vae_digits.py"), "--workdir", vae_dir,
                "--config.model.hidden=()", "--config.model.latent_dim=4",
                "--config.model.likelihood=gaussian_learned", "--config.model.kl_warmup_steps=0",
                "--config.optim.learning_rate=0.01", "--config.train.batch_size=256",
                f"--config.train.steps={steps}", f"--config.train.eval_every={steps}",
                f"--config.train.checkpoint_every={steps}", "--config.eval.iwae_samples=200",
                "--config.eval.iwae_chunk=50", *common]) == 0

    def final(d: str) -> dict:
        last = max(int(f[:-5]) for f in os.listdir(os.path.join(d, "eval")))
        with open(os.path.join(d, "eval", f"{last}.json")) as f:
            return json.load(f)

    ppca, vae = final(ppca_dir), final(vae_dir)
    return {"ppca_bpd": ppca["nll_bpd"], "vae_iwae_bpd": vae["nll_bpd"],
            "vae_elbo_bpd": vae["elbo_bpd"]}


def check(figures: dict, tolerance: float = 0.03) -> None:
    """The linear VAE's likelihood equals PPCA's (both estimate the same ML solution)."""
    chex.assert_trees_all_close(figures["vae_iwae_bpd"], figures["ppca_bpd"], atol=tolerance)
    assert figures["vae_iwae_bpd"] <= figures["vae_elbo_bpd"] + 1e-6


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/linear_vae_ppca")
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    figures = run(args.workdir, args.steps)
    print(json.dumps(figures, indent=2))
    check(figures)
    print("OK: the linear VAE reaches the PPCA log-likelihood")
