"""Orbax checkpoints of the train state and the input pipeline's position, each with a digest.

Once a save has committed, jaxgen writes jaxgen_digest.json into its step directory: the SHA-256
of every file there. A restore verifies it first, so a flipped, truncated or missing file is
found before any array is read; `restore_latest` then falls back to the newest intact checkpoint.
A checkpoint without a digest (saved before digests existed, or killed between its commit and
its digest) is restored unverified.
"""
import hashlib
import json
import glob
import os
import shutil
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgen.errors import UserError

DIGEST = "jaxgen_digest.json"
DAMAGED = ".damaged"  # suffix of a damaged step directory set aside (orbax ignores it)


def _file_digests(step_dir: str) -> dict[str, str]:
    digests = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if rel in (DIGEST, DIGEST + ".tmp"):
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digests[rel] = h.hexdigest()
    return digests


def write_digest(step_dir: str) -> None:
    """Records the digest of every file in a committed step directory (atomically)."""
    path, digests = os.path.join(step_dir, DIGEST), _file_digests(step_dir)
    with open(path + ".tmp", "w") as f:
        json.dump(digests, f, indent=0, sort_keys=True)
    os.replace(path + ".tmp", path)


def damage(step_dir: str) -> str | None:
    """What is wrong with a step directory against its digest (None: intact or no digest)."""
    path = os.path.join(step_dir, DIGEST)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        want = json.load(f)
    have = _file_digests(step_dir)
    missing = sorted(set(want) - set(have))
    changed = sorted(k for k in want if k in have and have[k] != want[k])
    if missing:
        return f"{len(missing)} file(s) missing ({missing[0]})"
    if changed:
        return f"{len(changed)} file(s) changed since the save ({changed[0]})"
    return None


class Mismatch(UserError):
    """A checkpoint that does not fit the state it is restored into."""


class Checkpointer:
    """Async saves, keep-last-N, and restore onto given shardings.

    A checkpoint holds two items: `state` (the TrainState pytree) and `data` (the training
    iterator's JSON state). Orbax writes each step to a temporary directory and renames it when
    complete, so an interrupted save never replaces the last good checkpoint.
    """

    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        self._keep = keep
        self._orbax: ocp.CheckpointManager | None = None
        self._undigested: list[int] = []

    @property
    def _manager(self) -> ocp.CheckpointManager:
        """Orbax's manager, made at the first use that needs one: it creates the directory, so
        a run refused before its first save leaves none behind."""
        if self._orbax is None:
            self._orbax = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=ocp.checkpoint_managers.LatestN(self._keep),
                    enable_async_checkpointing=True,
                ),
                item_names=("state", "data"),
            )
        return self._orbax

    def _steps(self) -> list[int]:
        """The saved steps, oldest first; none (and nothing created) without the directory."""
        if self._orbax is None and not os.path.isdir(self.directory):
            return []
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self._steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Starts an async save (after finishing the previous one and its digest); returns once
        the arrays are copied off the devices."""
        self._finish()
        manager = self._manager  # creates the directory, which _check_space measures
        self._check_space(step, state)
        self._undigested.append(step)
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
            ),
            force=True,
        )

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores (state, data_state); `abstract_state` holds ShapeDtypeStructs with shardings."""
        step = self.latest_step() if step is None else step
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # orbax raises many types for mismatched or damaged files
            raise Mismatch(
                f"cannot restore the checkpoint at step {step} in {self.directory}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:300]}. It was written by a different "
                f"model, by a jaxgen whose networks have changed since, or is damaged: use a new "
                f"--workdir to start again, or the jaxgen that wrote it to go on with it (the "
                f"checkpoint is left untouched)."
            ) from None
        _check_shapes(abstract_state, restored.state, self.directory, step)
        return restored.state, restored.data

    def restore_latest(self, abstract_state: Any, set_aside: bool
                       ) -> tuple[int, Any, dict] | None:
        """(step, state, data_state) of the newest intact checkpoint, None when there is none.
        Newer damaged ones are reported on stderr and kept; with set_aside (a run that will save
        those steps again) each is renamed to <step>.damaged, out of orbax's sight."""
        skipped = []
        for step in reversed(self._steps()):
            problem = damage(self.step_dir(step))
            if problem is None:
                state, data_state = self.restore(abstract_state, step)
                if skipped:
                    print(f"warning: restored checkpoint {step}, the newest intact one; skipped "
                          + "; ".join(skipped), file=sys.stderr, flush=True)
                return step, state, data_state
            where = self.step_dir(step)
            if set_aside:
                where = _set_aside(where)
                self._manager.reload()
            skipped.append(f"checkpoint {step} ({problem}; kept in {where})")
        if skipped:
            raise UserError(f"every checkpoint in {self.directory} is damaged: "
                            + "; ".join(skipped) + ". Use a new --workdir to start again.")
        return None

    def _check_space(self, step: int, state: Any) -> None:
        """Refuses a save the disk cannot hold, before it starts: a full disk found by the async
        writer would surface a save later, as orbax's tracebacks, and leave a partial save."""
        need = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state)) * 1.1 + (1 << 20)
        free = shutil.disk_usage(self.directory).free
        if need > free:
            raise UserError(
                f"not enough disk space for checkpoint {step} in {self.directory}: it needs about "
                f"{need / 2**20:.1f} MB and {free / 2**20:.1f} MB are free. "
                f"{self._intact_note()} Free some space and run the same command to resume.")

    def _intact_note(self) -> str:
        latest = self.latest_step()
        return ("No checkpoint was saved yet." if latest is None else
                f"The last good checkpoint (step {latest}) is intact.")

    def _finish(self) -> None:
        """Waits for the async save in flight and writes the digest of what it committed."""
        if self._orbax is None:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as e:  # e.g. the disk filled up under the async writer
            for partial in glob.glob(os.path.join(self.directory, "*.orbax-checkpoint-tmp")):
                shutil.rmtree(partial, ignore_errors=True)
            steps, self._undigested = self._undigested, []
            raise UserError(f"saving checkpoint {', '.join(map(str, steps))} failed: "
                            f"{str(e).splitlines()[0][:300]}. The partial save was removed. "
                            f"{self._intact_note()}") from None
        for step in self._undigested:
            # One writer per checkpoint; a step may already be gone under the keep-last-N policy.
            if jax.process_index() == 0 and os.path.isdir(self.step_dir(step)):
                write_digest(self.step_dir(step))
        self._undigested = []

    def wait(self) -> None:
        self._finish()

    def close(self) -> None:
        self._finish()
        if self._orbax is not None:
            self._orbax.close()


def _set_aside(step_dir: str) -> str:
    """Renames a damaged step directory to <step>.damaged (or .damaged.2, ... when an earlier
    one was set aside there); returns the new path."""
    target, n = step_dir + DAMAGED, 1
    while os.path.lexists(target):
        n += 1
        target = f"{step_dir}{DAMAGED}.{n}"
    os.rename(step_dir, target)
    return target


def _check_shapes(expected: Any, restored: Any, directory: str, step: int) -> None:
    bad = [
        f"{jax.tree_util.keystr(path)}: saved {got.shape}, model needs {want.shape}"
        for (path, want), got in zip(
            jax.tree_util.tree_leaves_with_path(expected), jax.tree.leaves(restored)
        )
        if want.shape != got.shape
    ]
    if bad:
        raise Mismatch(
            f"the checkpoint at step {step} in {directory} does not fit this model ("
            + "; ".join(bad[:3])
            + "). Use a new --workdir (the checkpoint is left untouched)."
        )
