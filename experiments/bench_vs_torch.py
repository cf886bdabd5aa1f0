"""jaxgen's train steps against PyTorch peers of the same models, on the same CPU core.

    python experiments/bench_vs_torch.py [ROW ...] [--steps N] [--warmup W] [--rounds R]
        [--core C] [--torch-python PATH] [--json PATH]

ROW is one of glow, ddpm, dcgan, gated, vqvae (default: all), each a jaxgen config with
overrides (ROWS below) and its hand-written PyTorch mirror in experiments/torch_peers.py: the
same architecture, parameter count, loss and optimizer update (Adam, clipping, EMA), so one step
does the same work on both sides. jaxgen's step is timed by experiments/bench.py (compiled ahead
of time, on prepared real batches; it re-executes itself with jaxgen's glibc malloc settings),
the torch step by torch_peers.py in eager mode on one thread, on synthetic batches of the same
shape, in both memory formats (NCHW and channels_last). Every run is its own process pinned with
taskset to --core, and the two sides alternate: per row and round, jaxgen, then torch under the
malloc settings bench.py ran with, then torch under glibc's defaults. Each figure is the best
over the rounds; warm-up steps are excluded on both sides.

The table: parameters (jaxgen's trainable params from its initialised state, torch's from its
modules; a mismatch is flagged), XLA's FLOPs per step and jaxgen's compile time, jaxgen
images/s, torch images/s in its faster memory format, both as GFLOP/s (at XLA's count), jaxgen /
torch, and torch under glibc's default malloc (starred when it differs by more than 5%).
This script runs under the jaxgen environment and never imports torch; --torch-python names
the interpreter that has it. A run of all five rows at --steps 5 takes about 20 minutes.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax

from jaxgen import config as config_lib, models
from jaxgen.data import pipeline, sources
from jaxgen.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = {  # row -> (jaxgen config, overrides); torch_peers.py mirrors exactly these
    "glow": ("configs/glow_mnist.py", ("model.steps=8", "model.hidden=128",
                                       "train.batch_size=128")),
    "ddpm": ("configs/ddpm_mnist.py", ("model.ch=32", "model.norm_groups=8",
                                       "train.batch_size=128")),
    "dcgan": ("configs/dcgan_cifar10.py", ()),
    "gated": ("configs/gated_pixelcnn_mnist.py", ()),
    "vqvae": ("configs/vqvae_cifar10.py", ()),
}
FORMATS = {"NCHW": [], "NHWC": ["--channels-last"]}  # torch memory formats tried
MALLOCS = ("jaxgen", "default")  # bench.py's GLIBC_TUNABLES, or none
SIGNIFICANT = 0.05  # torch's default-malloc figure is starred when it differs by more


def jaxgen_params(row: str) -> tuple[int, int]:
    """(trainable parameter count, batch size) of the row's jaxgen config, from the shapes of
    its initialised state (jax.eval_shape: nothing is computed)."""
    spec, overrides = ROWS[row]
    config = config_lib.load(os.path.join(ROOT, spec))
    for item in overrides:
        config_lib.override(config, *item.split("=", 1))
    d = config.data
    data = sources.load_images(d.name, d.train_split, d.data_dir, d.cache_dir or None)
    family = models.make(config, models.DataSpec(data.images.shape[1:], data.num_classes))
    example = pipeline.example_batch(data, config.train.batch_size)
    state = jax.eval_shape(family.init, jax.random.key(0), example)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state.params)), \
        config.train.batch_size


def run_json(command: list[str], env: dict[str, str], json_path: str,
             timeout_s: float) -> dict[str, Any]:
    """Runs `command`, which writes a JSON file at `json_path`, and returns that JSON; raises
    RuntimeError with the end of its output when it fails."""
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode or not os.path.exists(json_path):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}:\n  "
                           + "\n  ".join(tail))
    with open(json_path) as f:
        return json.load(f)


def clean_env() -> dict[str, str]:
    """This environment without XLA's emulated host devices, which would share the core."""
    env = dict(os.environ)
    if "XLA_FLAGS" in env:
        env["XLA_FLAGS"] = " ".join(f for f in env["XLA_FLAGS"].split()
                                    if "xla_force_host_platform_device_count" not in f)
    return env


def bench_jaxgen(row: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """One experiments/bench.py run of the row: its JSON row plus the host's GLIBC_TUNABLES."""
    spec, overrides = ROWS[row]
    path = os.path.join(workdir, f"jax_{row}.json")
    if os.path.exists(path):
        os.remove(path)
    command = ["taskset", "-c", str(args.core), sys.executable, "experiments/bench.py", spec,
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--pipeline-seconds", "0.1", "--json", path]
    for item in overrides:
        command += ["--override", item]
    out = run_json(command, clean_env(), path, args.timeout)
    return dict(out["rows"][0], glibc_tunables=out["host"]["glibc_tunables"])


def bench_torch(row: str, batch_size: int, fmt: str, tunables: str, args: argparse.Namespace,
                workdir: str) -> dict[str, Any]:
    """One torch_peers.py run of the row in memory format `fmt` under GLIBC_TUNABLES=`tunables`
    (glibc's defaults when empty)."""
    path = os.path.join(workdir, f"torch_{row}.json")
    if os.path.exists(path):
        os.remove(path)
    env = clean_env()
    env["OMP_NUM_THREADS"] = "1"
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    command = ["taskset", "-c", str(args.core), args.torch_python, "experiments/torch_peers.py",
               row, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(batch_size), "--json", path] + FORMATS[fmt]
    return run_json(command, env, path, args.timeout)


def bench_row(row: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Alternating rounds of jaxgen and torch runs of one row; the best figure of each."""
    params, batch_size = jaxgen_params(row)
    jax_runs, torch_runs = [], {(f, m): [] for f in FORMATS for m in MALLOCS}
    for r in range(args.rounds):
        jax_runs.append(bench_jaxgen(row, args, workdir))
        tunables = jax_runs[-1]["glibc_tunables"]
        say = [f"jaxgen {jax_runs[-1]['train_images_per_s']:.1f}"]
        for malloc in MALLOCS:
            for fmt in FORMATS:
                run = bench_torch(row, batch_size, fmt, tunables if malloc == "jaxgen" else "",
                                  args, workdir)
                torch_runs[fmt, malloc].append(run)
                say.append(f"torch {fmt}/{malloc} malloc {run['train_images_per_s']:.1f}")
        print(f"  {row} round {r + 1}: " + ", ".join(say) + " img/s", flush=True)

    best = lambda runs: max(run["train_images_per_s"] for run in runs)
    torch_best = {key: best(runs) for key, runs in torch_runs.items()}
    fmt = max(FORMATS, key=lambda f: torch_best[f, "jaxgen"])
    jax_best, torch_rate = best(jax_runs), torch_best[fmt, "jaxgen"]
    default = torch_best[fmt, "default"]
    return {
        "row": row,
        "config": ROWS[row][0],
        "overrides": list(ROWS[row][1]),
        "batch_size": batch_size,
        "jaxgen_params": params,
        "torch_params": torch_runs[fmt, "jaxgen"][0]["params"],
        "jaxgen_images_per_s": jax_best,
        "jaxgen_compile_s": min(run["compile_s"] for run in jax_runs),
        "gflop_per_step": jax_runs[0]["gflop_per_step"],
        "torch_images_per_s": torch_rate,
        "torch_format": fmt,
        "ratio": jax_best / torch_rate,
        "torch_default_malloc_images_per_s": default,
        "default_malloc_differs": abs(default / torch_rate - 1) > SIGNIFICANT,
        "torch_images_per_s_by_setting": {f"{f}/{m}": v for (f, m), v in torch_best.items()},
        "glibc_tunables": jax_runs[0]["glibc_tunables"],
        "jaxgen_runs": jax_runs,
        "torch_runs": {f"{f}/{m}": runs for (f, m), runs in torch_runs.items()},
    }


def gflops(row: dict[str, Any], side: str) -> float:
    """GFLOP/s of one side at XLA's count of the FLOPs of jaxgen's step."""
    return row["gflop_per_step"] * row[f"{side}_images_per_s"] / row["batch_size"]


COLUMNS = (  # (title, format of a result row); the first is left-aligned
    ("row", lambda r: r["row"]),
    ("params jaxgen / torch", lambda r: f"{r['jaxgen_params']:,} / {r['torch_params']:,}"
     + ("" if r["jaxgen_params"] == r["torch_params"] else " MISMATCH")),
    ("batch", lambda r: f"{r['batch_size']}"),
    ("GFLOP/step", lambda r: f"{r['gflop_per_step']:.1f}"),
    ("jaxgen compile s", lambda r: f"{r['jaxgen_compile_s']:.1f}"),
    ("jaxgen img/s", lambda r: f"{r['jaxgen_images_per_s']:.1f}"),
    ("torch img/s", lambda r: f"{r['torch_images_per_s']:.1f}"),
    ("GFLOP/s jaxgen / torch", lambda r: f"{gflops(r, 'jaxgen'):.1f} / {gflops(r, 'torch'):.1f}"),
    ("torch format", lambda r: r["torch_format"]),
    ("jaxgen/torch", lambda r: f"{r['ratio']:.2f}"),
    ("torch default malloc", lambda r: f"{r['torch_default_malloc_images_per_s']:.1f}"
     + ("*" if r["default_malloc_differs"] else "")),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The result rows as an aligned text table."""
    cells = [[title for title, _ in COLUMNS]] + [[fmt(r) for _, fmt in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                     for line in cells)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", metavar="ROW",
                        help=f"any of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed train steps before them")
    parser.add_argument("--rounds", type=int, default=2, help="jaxgen/torch rounds per row")
    parser.add_argument("--core", type=int, default=0, help="the CPU core every run is pinned to")
    parser.add_argument("--torch-python", default=os.path.expanduser("~/torchenv/bin/python"),
                        help="a Python interpreter with torch installed")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument("--json", metavar="PATH", help="also write every run and result here")
    args = parser.parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if min(args.steps, args.warmup) < 1 or args.rounds < 2:
        parser.error("--steps and --warmup must be at least 1, --rounds at least 2")
    args.rows = args.rows or list(ROWS)
    args.torch_python = os.path.expanduser(args.torch_python)
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the comparison and prints the table; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.sched_setaffinity(0, {args.core})  # this process too stays off the other cores
    print(f"jaxgen (jax {jax.__version__}) against torch ({args.torch_python}), pinned to core "
          f"{args.core}; per run {args.warmup} warm-up + {args.steps} timed steps; best of "
          f"{args.rounds} alternating rounds", flush=True)
    rows, failed = [], []
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_vs_torch_") as workdir:
        for row in args.rows:
            try:
                rows.append(bench_row(row, args, workdir))
            except (RuntimeError, UserError, subprocess.TimeoutExpired) as e:
                failed.append(row)
                print(f"  {row} failed: {e}", file=sys.stderr, flush=True)
    print(f"\n{len(args.rows)} rows in {(time.perf_counter() - t) / 60:.1f} min; malloc for both "
          f"sides: GLIBC_TUNABLES={rows[0]['glibc_tunables'] if rows else '?'}; torch default "
          f"malloc starred where it differs by more than {SIGNIFICANT:.0%}\n")
    print(format_table(rows))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "failed": failed}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
