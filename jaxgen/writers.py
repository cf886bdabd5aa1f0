"""Where metrics go: the console, metrics.jsonl and TensorBoard event files (no TensorFlow needed)."""
import json
import math
import os
import time

import jax
from tensorboardX import SummaryWriter


def log(msg: str) -> None:
    """Prints a progress line, on the main process only."""
    if jax.process_index() == 0:
        print(msg, flush=True)


class MetricWriter:
    """Appends {'step', 'split', **metrics} lines to metrics.jsonl and scalars to TensorBoard.

    With keep_to (the step a run resumes from), what an earlier process logged past that step is
    dropped first: the lines of metrics.jsonl, and TensorBoard's events (its purge_step), so a
    reader sees each step once after a kill.
    """

    def __init__(self, workdir: str, enabled: bool = True, keep_to: int | None = None):
        self.enabled = enabled
        if enabled:
            path = os.path.join(workdir, "metrics.jsonl")
            if keep_to is not None and os.path.exists(path):
                _drop_lines_after(path, keep_to)
            self._jsonl = open(path, "a")
            purge = None if keep_to is None else keep_to + 1
            self._tb = SummaryWriter(os.path.join(workdir, "events"), purge_step=purge)

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        line = {"step": step, "split": split, "time": round(time.time(), 3)}
        line.update({k: float(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(line) + "\n")
        self._jsonl.flush()
        for k, v in metrics.items():
            self._tb.add_scalar(f"{split}/{k}", float(v), step)
        self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def _drop_lines_after(path: str, step: int) -> None:
    """Rewrites a metrics.jsonl without its lines past `step` (atomically)."""
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if line.strip() and _step_of(line) <= step]
    if len(kept) != len(lines):
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf  # a line cut short by the kill


def format_metrics(metrics: dict[str, float]) -> str:
    """'loss 1.2 | a 3 | b 4': the loss first, the rest by name."""
    keys = sorted(metrics, key=lambda k: (k != "loss", k))
    return " | ".join(f"{k} {format_number(metrics[k])}" for k in keys)


def format_progress(step: int, total: int, metrics: dict[str, float], steps_per_s: float,
                    batch_size: int) -> str:
    """'step 200/1000 | loss 101.3 | ... | 40.1 steps/s | 5133 img/s | ETA 00:00:19'."""
    eta = (total - step) / steps_per_s if steps_per_s > 0 else math.inf
    rate = f"{steps_per_s:.1f}" if steps_per_s >= 1 else f"{steps_per_s:.2g}"
    return (f"step {step}/{total} | {format_metrics(metrics)} | {rate} steps/s | "
            f"{steps_per_s * batch_size:.0f} img/s | ETA {format_duration(eta)}")


def format_duration(seconds: float) -> str:
    """'00:00:19', '2d 03:10:00' (days once there are any), '?' when unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


def format_number(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
