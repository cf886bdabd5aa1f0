"""grain pipelines over in-memory uint8 images: shuffled training batches and padded eval batches.

The training order is a function of the seed alone (grain reshuffles each epoch from it), and the
iterator's position is a small JSON-able state that the checkpoint stores, so a resumed run sees
exactly the batches an uninterrupted one would.
"""
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from jaxgen.data.sources import ImageData
from jaxgen.errors import UserError

Batch = dict[str, np.ndarray]


def _gather(data: ImageData, idx: np.ndarray) -> Batch:
    labels = data.labels[idx] if data.labels is not None else np.zeros(len(idx), np.int32)
    return {"image": data.images[idx], "label": labels,
            **{k: v[idx] for k, v in data.extras.items()}}


class _EpochBatches:
    """Global batch index -> this host's slice of that batch, from a seeded permutation per epoch.

    Shuffling whole index arrays with numpy (rather than element by element) keeps the pipeline
    far faster than any train step; each epoch drops its last partial batch.
    """

    def __init__(self, data: ImageData, global_batch_size: int, seed: int, lo: int, local: int):
        self.data, self.batch, self.seed, self.lo, self.local = data, global_batch_size, seed, lo, local
        self.per_epoch = len(data.images) // global_batch_size
        self._cached = (-1, None)  # (epoch, permutation), one tuple: prefetch threads read it

    def __call__(self, index: int, _) -> Batch:
        epoch, i = divmod(index, self.per_epoch)
        cached_epoch, perm = self._cached
        if cached_epoch != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.data.images))
            self._cached = (epoch, perm)
        idx = perm[i * self.batch : (i + 1) * self.batch][self.lo : self.lo + self.local]
        return _gather(self.data, idx)


def check_batch_size(data: ImageData, global_batch_size: int, process_count: int = 1) -> None:
    """Refuses a training batch the split cannot fill or the hosts cannot share."""
    n = len(data.images)
    if global_batch_size > n:
        raise UserError(
            f"train.batch_size {global_batch_size} is larger than the training split "
            f"({n} images); lower --config.train.batch_size"
        )
    if global_batch_size % process_count:
        raise UserError(
            f"train.batch_size {global_batch_size} must divide evenly over {process_count} hosts"
        )


class TrainIterator:
    """Endless host-local training batches with a checkpointable position.

    Every host draws the same global permutation and keeps its own slice of each global batch.
    """

    def __init__(
        self,
        data: ImageData,
        global_batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
    ):
        check_batch_size(data, global_batch_size, process_count)
        local = global_batch_size // process_count
        batches = _EpochBatches(data, global_batch_size, seed, process_index * local, local)
        ds = grain.MapDataset.range(batches.per_epoch).repeat().map_with_index(batches)
        # grain's default (16 threads, 500 batches ahead) polls 500 futures per batch and can
        # hold gigabytes of batches; a few whole batches ahead keep up with any train step.
        self._it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=2,
                                                             prefetch_buffer_size=4)))

    def __iter__(self) -> "TrainIterator":
        return self

    def __next__(self) -> Batch:
        return next(self._it)

    def get_state(self) -> dict[str, Any]:
        return self._it.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._it.set_state(state)


def example_batch(data: ImageData, batch_size: int) -> Batch:
    """The first `batch_size` images, in source order: shapes for init, data for data-dependent init."""
    return _gather(data, np.arange(min(batch_size, len(data.images))))


def eval_batches(
    data: ImageData,
    batch_size: int,
    limit: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """The first `limit` (default all) images in order, in host-local batches of a fixed shape.

    The last batch is padded by repeating image 0; its `mask` marks the real examples, so means over
    the split are exact and every batch reuses one compiled eval step.
    """
    n = len(data.images) if limit is None else min(limit, len(data.images))
    local = batch_size // process_count
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, 0)[process_index * local : (process_index + 1) * local]
        batch = _gather(data, idx)
        batch["mask"] = mask[process_index * local : (process_index + 1) * local]
        yield batch
