"""A finished run restored from its workdir for use as an input, without loading its data."""
import os
import shutil

import jax
import numpy as np
import pytest

from jaxgen import runs
from jaxgen.data import sources
from jaxgen.errors import UserError
from jaxgen.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("vae"))
    assert main(["--config", os.path.join(ROOT, "configs", "vae_digits.py:smoke"),
                 "--workdir", workdir]) == 0
    return workdir


def test_load_run_restores_the_latest_state_without_loading_data(vae_run, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("load_run loaded a dataset")

    monkeypatch.setattr(sources, "load_images", no_data)
    run = runs.load_run(vae_run, "vae", "key", "hint")
    assert int(run.state.step) == 6 and run.spec.shape == (8, 8, 1)
    assert run.spec.num_classes == 10 and run.config.model.family == "vae"
    leaves = jax.tree.leaves(run.state.params)
    assert leaves and all(np.all(np.isfinite(x)) for x in leaves)


def test_a_run_saved_without_its_data_spec_is_read_from_its_data(vae_run, tmp_path):
    old = shutil.copytree(vae_run, tmp_path / "old")
    os.remove(old / runs.SPEC_FILE)
    assert runs.load_run(str(old), "vae", "key", "hint").spec == runs.read_spec(vae_run, None)


def test_the_wrong_family_or_no_run_is_a_user_error(vae_run, tmp_path):
    with pytest.raises(UserError, match="holds a 'vae' run; it must be a classifier run"):
        runs.load_run(vae_run, "classifier", "eval.feature_workdir", "hint")
    with pytest.raises(UserError, match="holds no config.json"):
        runs.load_run(str(tmp_path), "vae", "key", "hint")
