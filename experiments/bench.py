"""Training speed per config: compile time, XLA FLOPs, working memory, train and input-pipeline
images/s.

    python experiments/bench.py [CONFIG_SPEC ...] [--steps N] [--override KEY=VALUE ...]
                                [--json PATH]

CONFIG_SPEC is configs/NAME.py[:variant]; the default is every configs/*.py with its default
variant. For each config the train step of `train.Experiment` is compiled ahead of time (compile
time; FLOPs per step from XLA's cost analysis of that executable, one device's program times the
number of devices; the working memory per image from XLA's memory analysis: the step's temporary
buffers over the batch), then run on real batches from the training pipeline: a few warm-up steps,
then N timed ones (--steps, or by default as many as fit in --budget seconds). The batches are
drawn and put on the devices before the clock starts, so the train rate is the step alone; the
pipeline (TrainIterator + sharding.to_global) is timed on its own, and a row whose pipeline
delivers fewer images/s than the step consumes is flagged pipeline-bound. Achieved FLOP/s is
compared with a float32 matmul peak measured once per run.
"""
import argparse
import glob
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from jaxgen import allocator, config as config_lib, sharding, train
from jaxgen.data import pipeline
from jaxgen.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_DISTINCT_BATCHES = 16  # timed steps cycle through this many prepared batches
MIN_STEPS, MAX_STEPS = 3, 1000  # bounds on the timed steps when --steps is not given
MIN_PIPELINE_BATCHES = 10
COLUMNS = (  # (title, row key, format, minimum width); text columns left-aligned
    ("config", "config", "{}", 0),
    ("family", "family", "{}", 11),
    ("batch", "batch_size", "{}", 5),
    ("dev", "num_devices", "{}", 3),
    ("kind", "device_kind", "{}", 4),
    ("compile s", "compile_s", "{:.2f}", 9),
    ("GFLOP/step", "gflop_per_step", "{:.3f}", 10),
    ("MB/img", "temp_mb_per_image", "{:.2f}", 6),
    ("steps", "steps", "{}", 5),
    ("train img/s", "train_images_per_s", "{:.0f}", 11),
    ("pipe img/s", "pipeline_images_per_s", "{:.0f}", 10),
    ("GFLOP/s", "achieved_gflop_per_s", "{:.1f}", 8),
    ("% peak", "percent_of_peak", "{:.1f}", 6),
    ("", "flag", "{}", 0),
)
TEXT_COLUMNS = 5


def cpu_model() -> str:
    """The host CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict[str, Any]:
    """jax version, backend, devices and host; warnings for settings that distort the figures."""
    device = jax.devices()[0]
    warnings = []
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        warnings.append("XLA_FLAGS sets xla_force_host_platform_device_count: the fake devices "
                        "share the host's cores, so rates and % of peak are distorted")
    if jax.config.jax_compilation_cache_dir:
        warnings.append(f"persistent compilation cache at {jax.config.jax_compilation_cache_dir}: "
                        f"compile times may be cache hits")
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "device_kind": device.device_kind,
        "platform": device.platform,
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "warnings": warnings,
    }


def matmul_peak(size: int, reps: int) -> float:
    """Best-of-`reps` FLOP/s of a jitted float32 [size, size] matmul on one device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def xla_flops(compiled: jax.stages.Compiled) -> float:
    """FLOPs of one run of one device's program from XLA's cost analysis (a dict or a list)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, dict):
        analysis = [analysis]
    return sum(float(a.get("flops", 0.0)) for a in analysis or [])


def temp_bytes(compiled: jax.stages.Compiled) -> float:
    """The step's working memory on one device (activations kept for the backward pass and
    XLA's scratch: its temporary buffers, not the state or the batch), from XLA's memory
    analysis; NaN where the backend gives none."""
    stats = compiled.memory_analysis()
    return float(stats.temp_size_in_bytes) if stats is not None else float("nan")


def train_rate(compiled: jax.stages.Compiled, state: Any, batches: list, rng: jax.Array,
               warmup: int, steps: int | None, budget_s: float) -> tuple[float, int]:
    """(steps/s, timed steps) of `compiled` cycling over prepared `batches`, after `warmup` steps.

    With `steps` None, steps run in chunks sized from the rate so far until `budget_s` has passed
    (MIN_STEPS to MAX_STEPS steps); host 0 sizes the chunks for every host. The step donates its
    state, so each call gets the state the previous one returned.
    """
    keys = list(jax.random.split(rng, warmup + (steps or MAX_STEPS)))

    def run(state: Any, start: int, n: int) -> Any:
        for i in range(start, start + n):
            state, metrics = compiled(state, batches[i % len(batches)], keys[i])
        return jax.block_until_ready((state, metrics))[0]

    state = run(state, 0, warmup)
    done, chunk, t = 0, steps or 1, time.perf_counter()
    while chunk:
        state = run(state, warmup + done, chunk)
        done += chunk
        elapsed = time.perf_counter() - t
        if steps or done >= MAX_STEPS or (done >= MIN_STEPS and elapsed >= budget_s):
            chunk = 0
        else:
            left = min(budget_s - elapsed, budget_s / 4)  # a few chunks, none past the budget
            chunk = min(max(1, int(left * done / elapsed)), MAX_STEPS - done)
        if jax.process_count() > 1:
            chunk = int(multihost_utils.broadcast_one_to_all(np.int32(chunk)))
    return done / elapsed, done


def pipeline_rate(data: pipeline.TrainIterator, mesh: jax.sharding.Mesh, seconds: float) -> float:
    """Batches/s of `data` put on the mesh with sharding.to_global, drawn for about `seconds`."""
    jax.block_until_ready(sharding.to_global(next(data), mesh))
    count, t = 0, time.perf_counter()
    while count < MIN_PIPELINE_BATCHES or time.perf_counter() - t < seconds:
        batch = sharding.to_global(next(data), mesh)
        count += 1
    jax.block_until_ready(batch)
    return count / (time.perf_counter() - t)


def bench_config(spec: str, overrides: list[tuple[str, str]], steps: int | None, warmup: int,
                 budget_s: float, pipeline_s: float, peak: float) -> dict[str, Any]:
    """One table row for `spec`: compile time, FLOPs per step, working memory per image, train
    and pipeline images/s."""
    config = config_lib.load(spec)
    for key, value in overrides:
        config_lib.override(config, key, value)
    batch_size = config.train.batch_size
    with tempfile.TemporaryDirectory(prefix="jaxgen_bench_") as workdir:
        exp = train.Experiment(config, workdir=workdir)
        try:
            num_devices = exp.mesh.shape["data"]
            state = jax.block_until_ready(exp.init_fn(exp.rng_init, exp.example))
            t = time.perf_counter()
            compiled = exp.train_fn.lower(state, exp.example, exp.rng_train).compile()
            compile_s = time.perf_counter() - t
            flops = xla_flops(compiled) * num_devices
            per_image = temp_bytes(compiled) * num_devices / batch_size

            def iterator() -> pipeline.TrainIterator:
                return pipeline.TrainIterator(exp.train_data, batch_size, config.seed,
                                              jax.process_index(), jax.process_count())

            data = iterator()
            batches = [sharding.to_global(next(data), exp.mesh)
                       for _ in range(min(warmup + (steps or MAX_STEPS), MAX_DISTINCT_BATCHES))]
            steps_per_s, steps = train_rate(compiled, state, jax.block_until_ready(batches),
                                            exp.rng_train, warmup, steps, budget_s)
            del batches
            batches_per_s = pipeline_rate(iterator(), exp.mesh, pipeline_s)
        finally:
            exp.close()

    achieved = flops * steps_per_s
    return {
        "config": spec,
        "family": config.model.family,
        "batch_size": batch_size,
        "num_devices": num_devices,
        "device_kind": jax.devices()[0].device_kind,
        "compile_s": compile_s,
        "gflop_per_step": flops / 1e9,
        "temp_mb_per_image": per_image / 1e6,
        "steps": steps,
        "train_images_per_s": steps_per_s * batch_size,
        "pipeline_images_per_s": batches_per_s * batch_size,
        "achieved_gflop_per_s": achieved / 1e9,
        "percent_of_peak": 100 * achieved / (peak * num_devices),
        "flag": "pipeline-bound" if batches_per_s < steps_per_s else "",
        "overrides": [f"{k}={v}" for k, v in overrides],
    }


def say(line: str) -> None:
    """Prints on the first host only."""
    if jax.process_index() == 0:
        print(line, flush=True)


def format_line(cells: list[str], widths: list[int]) -> str:
    """One table line: text columns left-aligned, numbers right-aligned."""
    return "  ".join(c.ljust(w) if i < TEXT_COLUMNS else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()


def format_row(row: dict[str, Any], widths: list[int]) -> str:
    return format_line([fmt.format(row[key]) for _, key, fmt, _ in COLUMNS], widths)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", metavar="CONFIG_SPEC",
                        help="configs/NAME.py[:variant] (default: every configs/*.py)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed train steps per config (default: as many as fit in "
                             "--budget seconds, estimated from the warm-up, 3 to 1000)")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed training per config when --steps is not given")
    parser.add_argument("--warmup", type=int, default=2, help="untimed train steps before them")
    parser.add_argument("--pipeline-seconds", type=float, default=2.0,
                        help="seconds spent drawing batches to time the input pipeline")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every config, e.g. train.batch_size=256")
    parser.add_argument("--json", metavar="PATH", help="also write host info and rows here")
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    for item in args.override:
        if "=" not in item:
            parser.error(f"--override takes KEY=VALUE, not {item!r}")
    if not args.configs:
        args.configs = [os.path.relpath(p) for p in
                        sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))]
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = [tuple(item.split("=", 1)) for item in args.override]

    host = host_info()
    size, reps = (2048, 10) if host["platform"] == "cpu" else (8192, 20)
    peak = matmul_peak(size, reps)
    say(f"jax {host['jax_version']}, backend {host['backend']}, {host['device_count']} "
        f"device(s) of kind {host['device_kind']}, CPU {host['cpu_model']} "
        f"({host['cpu_count']} usable logical cores); GLIBC_TUNABLES="
        f"{host['glibc_tunables'] or '(unset)'}")
    say(f"matmul peak (float32 {size}x{size}, best of {reps}): {peak / 1e9:.1f} GFLOP/s per device")
    timed = f"{args.steps}" if args.steps else f"~{args.budget:g}s of"
    say(f"{args.warmup} warm-up + {timed} timed train steps on prepared batches; pipeline "
        f"timed for ~{args.pipeline_seconds:g}s" + (f"; overrides {' '.join(args.override)}"
                                                     if overrides else ""))
    for warning in host["warnings"]:
        say(f"WARNING: {warning}")

    widths = [max(len(title), minimum) for title, _, _, minimum in COLUMNS]
    widths[0] = max([widths[0]] + [len(spec) for spec in args.configs])
    widths[4] = max(widths[4], len(host["device_kind"]))
    say(format_line([title for title, _, _, _ in COLUMNS], widths))
    rows = []
    try:
        for spec in args.configs:
            rows.append(bench_config(spec, overrides, args.steps, args.warmup, args.budget,
                                     args.pipeline_seconds, peak))
            say(format_row(rows[-1], widths))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.json and jax.process_index() == 0:
            with open(args.json, "w") as f:
                json.dump({"host": dict(host, matmul_peak_flops=peak, matmul_size=size),
                           "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    allocator.reexec_with_tunables()
    sys.exit(main())
