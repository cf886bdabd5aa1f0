"""Sampling speed of a run: images/s of its compiled sampler, sharded as the CLI runs it
(jaxgen.generation.Generator).

    python experiments/sampling_speed.py WORKDIR [--config SPEC] [--n 16]
        [--variants "" "model.sampler=ddim model.sample_steps=10" "model.sampler=ancestral"]

The model comes from WORKDIR/config.json (or --config, e.g. configs/ddpm_mnist.py, for a workdir
that does not exist yet) and WORKDIR's latest checkpoint (fresh init weights without one: the
speed does not depend on them). Each variant is a space-separated list of KEY=VALUE overrides of
sampling keys ("" = as configured); its sampler is compiled and run once, then timed on a second
run of --n images.
"""
import argparse
import json
import os
import time

import jax
import ml_collections
import numpy as np

from jaxgen import config as config_lib, sharding, train


def load_config(workdir: str, spec: str | None) -> ml_collections.ConfigDict:
    if spec:
        return config_lib.load(spec)
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def time_sampler(config, workdir: str, n: int) -> tuple[float, float, int]:
    """(seconds for n images, compile + first run seconds, checkpoint step)."""
    exp = train.Experiment(config, workdir)
    try:
        state, _ = exp.restore(required=False)
        labels = np.arange(n, dtype=np.int32) % max(exp.train_data.num_classes, 1)
        labels = jax.make_array_from_callback(labels.shape, sharding.batch_sharding(exp.mesh),
                                              lambda idx: labels[idx])
        t0 = time.perf_counter()
        jax.block_until_ready(exp.outputs.sample_fn(state, jax.random.key(0), labels))
        t1 = time.perf_counter()
        jax.block_until_ready(exp.outputs.sample_fn(state, jax.random.key(1), labels))
        return time.perf_counter() - t1, t1 - t0, int(state.step)
    finally:
        exp.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--config", default=None)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--variants", nargs="+", default=[""])
    args = parser.parse_args()
    base = load_config(args.workdir, args.config)
    print(f"{jax.devices()[0].device_kind} x{len(jax.devices())}, {base.model.family} on "
          f"{base.data.name}, {args.n} images")
    for variant in args.variants:
        config = ml_collections.ConfigDict(base.to_dict())
        for item in variant.split():
            key, _, value = item.partition("=")
            config_lib.override(config, key, value)
        seconds, first, step = time_sampler(config, args.workdir, args.n)
        print(f"  {variant or 'as configured':<44} step {step}: {args.n / seconds:9.3f} images/s, "
              f"{seconds / args.n:8.3f} s/image (compile + first run {first:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
