"""Where metrics go: the console, metrics.jsonl and TensorBoard event files (no TensorFlow needed)."""
import json
import math
import os
import time

from tensorboardX import SummaryWriter


class MetricWriter:
    """Appends {'step', 'split', **metrics} lines to metrics.jsonl and scalars to TensorBoard."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self._tb = SummaryWriter(os.path.join(workdir, "events"))

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
