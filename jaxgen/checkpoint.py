"""Orbax checkpoints of the train state and the input pipeline's position."""
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgen.errors import UserError


class Checkpointer:
    """Async saves, keep-last-N, and restore onto given shardings.

    A checkpoint holds two items: `state` (the TrainState pytree) and `data` (the training
    iterator's JSON state). Orbax writes each step to a temporary directory and renames it when
    complete, so an interrupted save never replaces the last good checkpoint.
    """

    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.LatestN(keep),
                enable_async_checkpointing=True,
            ),
            item_names=("state", "data"),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: dict) -> None:
        """Starts an async save; returns once the arrays are copied off the devices."""
        self._manager.save(
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
            raise UserError(
                f"cannot restore the checkpoint at step {step} in {self.directory}: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:300]}. It was written by a different "
                f"model or is damaged; use a new --workdir (the checkpoint is left untouched)."
            ) from None
        _check_shapes(abstract_state, restored.state, self.directory, step)
        return restored.state, restored.data

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _check_shapes(expected: Any, restored: Any, directory: str, step: int) -> None:
    bad = [
        f"{jax.tree_util.keystr(path)}: saved {got.shape}, model needs {want.shape}"
        for (path, want), got in zip(
            jax.tree_util.tree_leaves_with_path(expected), jax.tree.leaves(restored)
        )
        if want.shape != got.shape
    ]
    if bad:
        raise UserError(
            f"the checkpoint at step {step} in {directory} does not fit this model ("
            + "; ".join(bad[:3])
            + "). Use a new --workdir (the checkpoint is left untouched)."
        )
