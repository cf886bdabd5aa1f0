"""Orbax checkpoints of the train state and the input pipeline's position, each with a digest.

Once a save has committed, jaxgen writes jaxgen_digest.json into its step directory: the SHA-256
of every file there. A restore verifies it first, so a flipped, truncated or missing file is
found before any array is read; `restore_latest` then falls back to the newest intact checkpoint.
A checkpoint without a digest (saved before digests existed, or killed between its commit and
its digest) is restored unverified. Before any array is read, the saved tree of arrays (paths,
shapes, dtypes: the checkpoint's metadata) is compared with the state the model needs; one that
differs is refused as a Mismatch naming the paths.
"""
import hashlib
import json
import glob
import os
import shutil
import sys
from typing import Any

import jax
import numpy as np
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
            # Handlers registered up front (not found from the first save's or restore's args):
            # a checkpoint's metadata is read before anything is restored.
            registry = ocp.DefaultCheckpointHandlerRegistry()
            for item, args in (("state", (ocp.args.StandardSave, ocp.args.StandardRestore)),
                               ("data", (ocp.args.JsonSave, ocp.args.JsonRestore))):
                for arg in args:
                    registry.add(item, arg)
            self._orbax = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=ocp.checkpoint_managers.LatestN(self._keep),
                    enable_async_checkpointing=True,
                ),
                handler_registry=registry,
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
        """Restores (state, data_state); `abstract_state` holds ShapeDtypeStructs with shardings.
        A checkpoint whose tree of arrays differs from `abstract_state` is refused before any
        array is read."""
        step = self.latest_step() if step is None else step
        self._check_tree(abstract_state, step)
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
        return restored.state, restored.data

    def _check_tree(self, abstract_state: Any, step: int) -> None:
        """Raises Mismatch when the arrays saved at `step` (their paths, shapes and dtypes, from
        the checkpoint's metadata) are not those of `abstract_state`. Metadata that cannot be read
        (a damaged checkpoint) is left to the restore to report."""
        try:
            saved = self._manager.item_metadata(step)["state"].tree
        except Exception:  # orbax raises many types for damaged files
            return
        problems = _tree_differences(_leaves(saved), _leaves(abstract_state))
        if problems:
            raise Mismatch(
                f"the checkpoint at step {step} in {self.directory} does not fit this model ("
                + "; ".join(problems) + "). It was written by a different model or by a jaxgen "
                "whose networks have changed since: use a new --workdir to start again, or the "
                "config and the jaxgen it was made with to go on with it (the checkpoint is left "
                "untouched)."
            )

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


def _leaves(tree: Any) -> dict[str, Any]:
    """{'params/d/Dense_0/kernel': leaf} of a state, or of the metadata of a saved one (where
    the state's attributes and named tuples are dicts)."""
    def name(key) -> str:
        for attr in ("name", "key", "idx"):  # GetAttrKey, DictKey/FlattenedIndexKey, SequenceKey
            if hasattr(key, attr):
                return str(getattr(key, attr))
        return str(key)

    return {"/".join(map(name, path)): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _tree_differences(saved: dict[str, Any], needed: dict[str, Any], most: int = 3
                      ) -> list[str]:
    """How {path: array metadata} saved differs from {path: ShapeDtypeStruct} needed, in words:
    up to `most` paths of each kind."""
    def some(paths: list[str]) -> str:
        return ", ".join(paths[:most]) + (f" (and {len(paths) - most} more)"
                                          if len(paths) > most else "")

    def dtype(leaf: Any) -> np.dtype | None:  # where the metadata gives one
        return None if getattr(leaf, "dtype", None) is None else np.dtype(leaf.dtype)

    # The state's fields in its order (params before opt_state), each's paths sorted.
    field = {f: i for i, f in enumerate(dict.fromkeys(p.split("/")[0] for p in needed))}
    order = lambda path: (field.get(path.split("/")[0], len(field)), path)
    differ = []
    for path in sorted(saved.keys() & needed.keys(), key=order):
        was, now = saved[path], needed[path]
        if tuple(was.shape) != tuple(now.shape):
            differ.append(f"{path}: saved {tuple(was.shape)}, model needs {tuple(now.shape)}")
        elif dtype(was) is not None and dtype(was) != dtype(now):
            differ.append(f"{path}: saved {dtype(was)}, model needs {dtype(now)}")
    problems = differ[:most] + ([f"{len(differ) - most} more arrays differ"]
                                if len(differ) > most else [])
    for where, paths in (("checkpoint", saved.keys() - needed.keys()),
                         ("model", needed.keys() - saved.keys())):
        if paths:
            problems.append(f"only in the {where}: {some(sorted(paths, key=order))}")
    return problems
