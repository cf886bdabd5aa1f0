"""Faults against an uninterrupted run: SIGKILL at random points, and damaged checkpoints.

    python experiments/fault_injection.py [--config configs/vae_digits.py:smoke] [--kills 20]
        [--steps 200] [--seed 0] [--workdir DIR]

1. An uninterrupted reference run of --steps steps (a checkpoint every 5, an eval every 20).
2. SIGKILL: the same command is started, killed with SIGKILL after a random time (anywhere in
   start-up, a step, an async save or an eval, before the time the run would need to finish
   from its latest checkpoint), and started again, --kills times, then run to the end. The
   final checkpoint (parameters, optimizer, data-iterator position), the eval files and
   metrics.jsonl (each train step once, the same steps as the reference) must equal the
   reference's.
3. Damage to the latest checkpoint of a finished copy of the reference (bytes flipped in an
   array file, a file truncated, a file deleted): training again must detect it, fall back to
   the previous checkpoint, and end with the reference's final state.
4. A full disk: the smoke run on a 5 MB tmpfs (skipped where none can be mounted) must stop at
   the save that does not fit with one line (exit 2), its first checkpoint intact and alone.
It prints one row per case and a summary line; the exit status is 0 when every case holds.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import ml_collections
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SMOKE_VAE = os.path.join(ROOT, "configs", "vae_digits.py:smoke")

from jaxgen import checkpoint, models, runs, sharding  # noqa: E402


def command(config: str, workdir: str, steps: int) -> list[str]:
    return [sys.executable, "-m", "jaxgen.main", "--config", config, "--workdir", workdir,
            f"--config.train.steps={steps}", "--config.train.checkpoint_every=5",
            "--config.train.eval_every=20", "--config.train.sample_every=20",
            "--config.train.log_every=5"]


def train(config: str, workdir: str, steps: int) -> float:
    """Runs the CLI to the end; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(command(config, workdir, steps), check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def final_checkpoint(workdir: str) -> tuple[int, object, dict]:
    """(step, state, data-iterator state) of the newest intact checkpoint in workdir."""
    with open(os.path.join(workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    spec = runs.read_spec(workdir, config)
    mesh = sharding.make_mesh(config.train.num_devices)
    family = models.make(config, spec, runs.resolve_inputs(config))
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        step, state, data = ckpt.restore_latest(runs.abstract_state(family, config, spec, mesh),
                                                set_aside=False)
    finally:
        ckpt.close()
    return step, jax.device_get(state), data


def evals(workdir: str) -> dict[str, dict]:
    directory = os.path.join(workdir, "eval")
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            out[name] = json.load(f)
    return out


def train_steps(workdir: str) -> list[int]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r["step"] for r in map(json.loads, f) if r["split"] == "train"]


def differences(workdir: str, reference: str) -> list[str]:
    """What differs between a run's final outputs and the reference's ([] when none)."""
    problems = []
    (step, state, data), (ref_step, ref_state, ref_data) = (final_checkpoint(workdir),
                                                            final_checkpoint(reference))
    if step != ref_step:
        problems.append(f"final step {step}, reference {ref_step}")
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), state, ref_state)
    if not all(jax.tree.leaves(same)):
        problems.append("final state differs")
    if data != ref_data:
        problems.append("data-iterator state differs")
    if evals(workdir) != evals(reference):
        problems.append(f"eval files differ: {sorted(evals(workdir))}")
    if train_steps(workdir) != train_steps(reference):
        problems.append(f"metrics.jsonl train steps {train_steps(workdir)}")
    return problems


def latest_step(workdir: str) -> int:
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return 0
    return max((int(d) for d in os.listdir(directory) if d.isdigit()), default=0)


def kill_case(config: str, workdir: str, reference: str, steps: int, kills: int,
              startup: float, duration: float, rng: random.Random) -> tuple[str, list[str]]:
    """Starts and SIGKILLs the run `kills` times, each at a random moment before the time it
    would take to finish from its latest checkpoint, then lets it finish."""
    killed = 0
    while killed < kills:
        left = startup + (duration - startup) * (steps - latest_step(workdir)) / steps
        proc = subprocess.Popen(command(config, workdir, steps), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.2, left))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed += 1
            continue
        break  # it finished before the kill: the rest of the kills would find nothing to do
    train(config, workdir, steps)
    return f"SIGKILL x {killed}", differences(workdir, reference)


def damage_case(kind: str, config: str, workdir: str, reference: str,
                steps: int) -> tuple[str, list[str]]:
    """Damages the latest checkpoint of a copy of the reference and trains it again."""
    shutil.copytree(reference, workdir)
    latest = os.path.join(workdir, "checkpoints", str(steps))
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(latest, "state"))
             for f in fs if os.path.basename(d) == "d"]
    target = max(files, key=os.path.getsize)
    size = os.path.getsize(target)
    if kind == "bit flip":
        with open(target, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0x10]))
    elif kind == "truncate":
        with open(target, "r+b") as f:
            f.truncate(size // 2)
    else:
        os.remove(target)
    problems = []
    if checkpoint.damage(latest) is None:
        problems.append("damage not detected")
    train(config, workdir, steps)
    if not os.path.isdir(latest + checkpoint.DAMAGED):
        problems.append("the damaged checkpoint was not kept")
    return f"{kind} in checkpoint {steps}", problems + differences(workdir, reference)


def disk_full_case(root: str) -> tuple[str, list[str]] | None:
    """A run on a 5 MB tmpfs, which holds the first checkpoint of the smoke VAE but not the
    second; None where no tmpfs can be mounted (it needs root)."""
    disk = os.path.join(root, "disk")
    os.makedirs(disk)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", disk],
                      capture_output=True).returncode:
        return None
    try:
        workdir = os.path.join(disk, "run")
        out = subprocess.run([sys.executable, "-m", "jaxgen.main", "--config", SMOKE_VAE,
                              "--workdir", workdir], cwd=ROOT, capture_output=True, text=True)
        problems = []
        if out.returncode != 2 or out.stderr.count("\n") != 1:
            problems.append(f"exit {out.returncode}, {out.stderr.count(chr(10))} lines on stderr")
        if not os.path.isdir(os.path.join(workdir, "checkpoints")):
            return "disk full at checkpoint 6", problems + [f"no checkpoints: {out.stderr[-300:]}"]
        left = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
        if left != ["3"]:
            problems.append(f"checkpoints left: {left}")
        elif final_checkpoint(workdir)[0] != 3:
            problems.append("checkpoint 3 does not restore")
        return "disk full at checkpoint 6", problems
    finally:
        subprocess.run(["umount", disk], check=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=SMOKE_VAE)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the runs go (default: a temporary directory)")
    args = parser.parse_args(argv)
    root = args.workdir or tempfile.mkdtemp(prefix="jaxgen_faults_")
    os.makedirs(root, exist_ok=True)
    train(args.config, os.path.join(root, "warm-up"), args.steps)  # fills the compile cache
    reference = os.path.join(root, "reference")
    duration = train(args.config, reference, args.steps)
    startup = train(args.config, reference, args.steps)  # "already trained": start-up alone
    cases = [kill_case(args.config, os.path.join(root, "killed"), reference, args.steps,
                       args.kills, startup, duration, random.Random(args.seed))]
    cases += [damage_case(kind, args.config, os.path.join(root, kind.replace(" ", "_")),
                          reference, args.steps) for kind in ("bit flip", "truncate", "delete")]
    full = disk_full_case(root)
    if full is None:
        print("disk full: skipped, no tmpfs could be mounted here (it needs root)")
    else:
        cases.append(full)
    print(f"{'case':<28} outcome")
    for name, problems in cases:
        outcome = "; ".join(problems) or "identical to the uninterrupted run"
        print(f"{name:<28} {outcome}")
    held = sum(not problems for _, problems in cases)
    print(f"{held} of {len(cases)} cases held ({args.config}, {args.steps} steps, "
          f"reference run {duration:.1f} s, start-up {startup:.1f} s; runs in {root})")
    return 0 if held == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
