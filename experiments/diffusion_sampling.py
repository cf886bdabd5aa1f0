"""Sampling speed of a diffusion run: images/s of each sampler on the run's latest checkpoint.

    python experiments/diffusion_sampling.py WORKDIR [--config SPEC] [--n 64]
                                             [--samplers ancestral ddim:10 ddim:50]

The model comes from WORKDIR/config.json (or --config, e.g. configs/ddpm_mnist.py, for a workdir
that does not exist yet) and WORKDIR's latest checkpoint (fresh init weights without one: the
speed does not depend on them). Each sampler is compiled and run once (compile time printed
apart), then timed on a second run of --n images with the same shapes.
"""
import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import config as config_lib, train
from jaxgen.models import diffusion
from jaxgen.models.base import DataSpec


def load_config(workdir: str, spec: str | None) -> ml_collections.ConfigDict:
    if spec:
        return config_lib.load(spec)
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--config", default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--samplers", nargs="+", default=["ancestral", "ddim:10", "ddim:50"])
    args = parser.parse_args()
    config = load_config(args.workdir, args.config)
    exp = train.Experiment(config, args.workdir)
    try:
        state, _ = exp.restore(required=False)
        spec = DataSpec(exp.train_data.images.shape[1:], exp.train_data.num_classes)
        labels = jnp.arange(args.n, dtype=jnp.int32) % max(spec.num_classes, 1)
        print(f"{jax.devices()[0].device_kind}, step {int(state.step)}, {args.n} images, "
              f"T={config.model.timesteps}, {config.model.family} {config.data.name}")
        for name in args.samplers:
            sampler, _, steps = name.partition(":")
            c = ml_collections.ConfigDict(config.to_dict())
            c.model.sampler = sampler
            c.model.sample_steps = int(steps or c.model.sample_steps)
            sample = jax.jit(diffusion.make_family(c, spec).sample)
            t0 = time.perf_counter()
            jax.block_until_ready(sample(state, jax.random.key(0), labels))
            t1 = time.perf_counter()
            jax.block_until_ready(sample(state, jax.random.key(1), labels))
            t2 = time.perf_counter()
            print(f"{name:>12}: {args.n / (t2 - t1):9.2f} images/s  ({t2 - t1:.2f} s; compile + "
                  f"first run {t1 - t0:.1f} s)", flush=True)
    finally:
        exp.close()


if __name__ == "__main__":
    main()
