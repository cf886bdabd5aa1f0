"""Time of one ADSN and one RPN texture of 512x512 RGB: the CLI's compiled
sampler (jaxgen.generation's sample_fn), after warm-up, over several runs.

    taskset -c 0 python experiments/texture_speed.py [--exemplar PATH] [--size 512] [--runs 30]

The exemplar (default: configs/texture.py's, VisTex Sand-01, 128x128 RGB) is fitted by one train
step; each timed call draws `--batch` samples from a fresh key and waits for them. Each call
includes the FFT of the zero-padded spot at the output size, as `--mode sample` runs it. Besides
wall time the script reports the process's CPU time per call, which other work on a shared core
does not inflate (pinned to one core, it is what the call takes on that core alone).
"""
import argparse
import os
import platform
import statistics
import tempfile
import time

import jax
import numpy as np

from jaxgen import config as config_lib, sharding, train
from jaxgen.data import pipeline


def cpu_name() -> str:
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return f"{names[0]} ({len(names)} logical cores)" if names else platform.processor()


def time_synthesis(config, batch: int, runs: int) -> tuple[list[float], list[float], float]:
    """(wall and CPU seconds of each of `runs` calls, wall seconds of the first call, compile
    included)."""
    with tempfile.TemporaryDirectory() as workdir:
        exp = train.Experiment(config, workdir)
        try:
            state = exp.init_fn(exp.rng_init, exp.example)
            batch_of_one = sharding.to_global(pipeline.example_batch(exp.train_data, 1), exp.mesh)
            state, _ = exp.train_fn(state, batch_of_one, exp.rng_train)
            labels = jax.device_put(np.zeros(batch, np.int32), sharding.batch_sharding(exp.mesh))
            t0 = time.perf_counter()
            jax.block_until_ready(exp.outputs.sample_fn(state, jax.random.key(0), labels))
            first = time.perf_counter() - t0
            for i in range(3):  # warm-up
                jax.block_until_ready(exp.outputs.sample_fn(state, jax.random.key(1 + i), labels))
            wall, cpu = [], []
            for i in range(runs):
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(exp.outputs.sample_fn(state, jax.random.key(100 + i), labels))
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            return wall, cpu, first
        finally:
            exp.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exemplar", default=None, help="an image file (default: the config's)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {cpu_name()}, "
          f"{len(os.sched_getaffinity(0))} core(s) usable, load average {load}")
    for synthesis in ("adsn", "rpn"):
        config = config_lib.load("configs/texture.py")
        config.model.update(synthesis=synthesis, sample_size=(args.size, args.size))
        if args.exemplar:
            config.data.name = f"image:{args.exemplar}"
        wall, cpu, first = time_synthesis(config, args.batch, args.runs)
        wall, cpu = ([1000 * s / args.batch for s in t] for t in (wall, cpu))
        print(f"{synthesis}: {args.size}x{args.size} from {config.data.name.split('/')[-1]}, "
              f"batch {args.batch}, per image over {args.runs} runs: wall median "
              f"{statistics.median(wall):.1f} ms (best {min(wall):.1f}), CPU time median "
              f"{statistics.median(cpu):.1f} ms; first call with compile {first:.2f} s")


if __name__ == "__main__":
    main()
