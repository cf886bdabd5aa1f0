"""Sampling speed of a PixelCNN run: images/s (and seconds per image) of the compiled sampler.

    python experiments/pixelcnn_sampling.py WORKDIR [--config SPEC] [--n 16]

The model comes from WORKDIR/config.json (or --config, e.g. configs/pixelcnn_mnist.py, for a
workdir that does not exist yet) and WORKDIR's latest checkpoint (fresh init weights without
one: the speed does not depend on them). The sampler (one loop of H x W forward passes, times C
for per-channel likelihoods) is compiled and run once, then timed on a second run of --n images
sharded over the devices, as train.py runs it.
"""
import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections

from jaxgen import config as config_lib, sharding, train


def load_config(workdir: str, spec: str | None) -> ml_collections.ConfigDict:
    if spec:
        return config_lib.load(spec)
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--config", default=None)
    parser.add_argument("--n", type=int, default=16)
    args = parser.parse_args()
    config = load_config(args.workdir, args.config)
    exp = train.Experiment(config, args.workdir)
    try:
        state, _ = exp.restore(required=False)
        num_classes = max(exp.train_data.num_classes, 1)
        labels = jax.device_put(jnp.arange(args.n, dtype=jnp.int32) % num_classes,
                                sharding.batch_sharding(exp.mesh))
        m = config.model
        print(f"{jax.devices()[0].device_kind} x{len(jax.devices())}, step {int(state.step)}, "
              f"{args.n} images {exp.train_data.images.shape[1:]}, {m.arch} {m.likelihood} "
              f"features={m.features} layers={m.layers}")
        t0 = time.perf_counter()
        jax.block_until_ready(exp.sample_fn(state, jax.random.key(0), labels))
        t1 = time.perf_counter()
        jax.block_until_ready(exp.sample_fn(state, jax.random.key(1), labels))
        t2 = time.perf_counter()
        print(f"{args.n / (t2 - t1):.3f} images/s, {(t2 - t1) / args.n:.2f} s/image "
              f"({t2 - t1:.1f} s; compile + first run {t1 - t0:.1f} s)", flush=True)
    finally:
        exp.close()


if __name__ == "__main__":
    main()
