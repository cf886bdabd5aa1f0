"""Finished runs read from their workdirs, and what the loop and the run loader share.

A workdir holds config.json, data_spec.json (the data's shape and classes, so that a run can be
restored without loading any data) and checkpoints/. `load_run` restores the latest checkpoint
of a run read-only, for use as another run's input (a VQ prior's first stage, the feature
network of sample metrics); `resolve_inputs` loads the input runs a config names.
"""
import json
import os

import jax
import ml_collections
import numpy as np

from jaxgen import checkpoint, models, sharding
from jaxgen.data import sources
from jaxgen.errors import UserError
from jaxgen.models.base import DataSpec, Family, Run

SPEC_FILE = "data_spec.json"


def spec_of(data: sources.ImageData) -> DataSpec:
    """The data spec of a loaded split: image shape, classes, and each extra's shape and dtype."""
    extras = tuple((k, tuple(v.shape[1:]), v.dtype.str) for k, v in sorted(data.extras.items()))
    return DataSpec(tuple(data.images.shape[1:]), data.num_classes, extras, len(data.images))


def write_spec(workdir: str, spec: DataSpec) -> None:
    """Records the data spec next to the run's config (atomically)."""
    path = os.path.join(workdir, SPEC_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"shape": list(spec.shape), "num_classes": spec.num_classes,
                   "extras": [[k, list(shape), dtype] for k, shape, dtype in spec.extras],
                   "num_train": spec.num_train}, f)
    os.replace(path + ".tmp", path)


def read_spec(workdir: str, config) -> DataSpec:
    """The data spec recorded in workdir; for runs saved before it was recorded, that of the
    config's training split (which loads it)."""
    path = os.path.join(workdir, SPEC_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        extras = tuple((k, tuple(shape), dtype) for k, shape, dtype in saved.get("extras", []))
        return DataSpec(tuple(saved["shape"]), saved["num_classes"], extras,
                        saved.get("num_train", 0))
    d = config.data
    return spec_of(sources.load_images(d.name, d.train_split, d.data_dir, d.cache_dir or None))


def abstract_state(family: Family, config, spec: DataSpec, mesh: jax.sharding.Mesh):
    """The family's TrainState as ShapeDtypeStructs carrying the shardings it trains with."""
    n = config.train.batch_size
    example = {"image": jax.ShapeDtypeStruct((n,) + tuple(spec.shape), np.uint8),
               "label": jax.ShapeDtypeStruct((n,), np.int32),
               **{k: jax.ShapeDtypeStruct((n,) + shape, np.dtype(dtype))
                  for k, shape, dtype in spec.extras}}
    shapes = jax.eval_shape(family.init, jax.random.key(0), example)
    shardings = sharding.state_shardings(shapes, mesh, config.train.shard_min_size)
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        shapes, shardings)


def resolve_inputs(config) -> dict[str, Run]:
    """The runs `config` names as its family's inputs, by model key ('first_stage')."""
    return {name: load_run(config.model[name], family, f"model.{name}", hint)
            for name, (family, hint) in models.input_runs(config).items()}


def check_run(workdir: str, family: str, key: str, hint: str) -> ml_collections.ConfigDict:
    """The config of the trained `family` run in workdir, without restoring it: a UserError
    when there is none. `key` is the config key that named it and `hint` the config that trains
    one, for the errors."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise UserError(f"{key} {workdir!r} holds no config.json; train a {family} run there "
                        f"first ({hint})")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if config.model.family != family:
        raise UserError(f"{key} {workdir!r} holds a {config.model.family!r} run; it must be a "
                        f"{family} run ({hint})")
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        latest = ckpt.latest_step()
    finally:
        ckpt.close()
    if latest is None:
        raise UserError(f"{key} {workdir!r} holds no checkpoint; train it first ({hint})")
    return config


def load_run(workdir: str, family: str, key: str, hint: str) -> Run:
    """The `family` run in workdir at its latest checkpoint, read only; `key` and `hint` as for
    check_run."""
    config = check_run(workdir, family, key, hint)
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        spec = read_spec(workdir, config)
        mesh = sharding.make_mesh(config.train.num_devices)
        run_family = models.make(config, spec, resolve_inputs(config))
        _, state, _ = ckpt.restore_latest(abstract_state(run_family, config, spec, mesh),
                                          set_aside=False)
    finally:
        ckpt.close()
    return Run(workdir, config, state, spec, mesh)
