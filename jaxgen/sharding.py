"""Device mesh, shardings, and host-local batches assembled into global arrays."""
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgen.errors import UserError


def maybe_initialize_distributed() -> None:
    """Joins a multi-host job when launched as one (coordinator given by the environment)."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("JAXGEN_MULTIHOST"):
        jax.distributed.initialize()


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
    """A 1-D mesh with axis 'data' over the first `num_devices` devices (0: all of them)."""
    devices = jax.devices()
    n = num_devices or len(devices)
    if n > len(devices):
        raise UserError(f"train.num_devices={n} but only {len(devices)} devices are visible")
    return jax.make_mesh((n,), ("data",), devices=devices[:n],
                         axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data'."""
    return NamedSharding(mesh, P("data"))


def state_shardings(abstract_state: Any, mesh: jax.sharding.Mesh, min_shard_size: int = 0) -> Any:
    """Replicates every leaf, or (min_shard_size > 0) shards each leaf of at least that many
    elements along its first axis whose length the mesh size divides, to save memory."""
    size = mesh.shape["data"]

    def one(leaf):
        shape = getattr(leaf, "shape", ())
        if min_shard_size and np.prod(shape, dtype=np.int64) >= min_shard_size:
            for axis, dim in enumerate(shape):
                if dim % size == 0:
                    spec = [None] * len(shape)
                    spec[axis] = "data"
                    return NamedSharding(mesh, P(*spec))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, abstract_state)


def check_batch_size(global_batch_size: int, mesh: jax.sharding.Mesh, what: str) -> None:
    n = mesh.shape["data"]
    if global_batch_size % n:
        raise UserError(
            f"{what} {global_batch_size} must be a multiple of the number of devices ({n}); "
            f"set --config.{what}=<a multiple of {n}>"
        )


def to_global(local_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Host-local numpy batch -> global jax.Arrays sharded along the batch axis."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:  # the local batch is the global one; one transfer call
        return jax.device_put(local_batch, sharding)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }
