"""The chex-verified unit experiments in experiments/, run at a reduced budget; marked slow, so
the default suite leaves them out: `python -m pytest -m slow -n 0` runs them."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_linear_vae_reaches_ppca_log_likelihood(tmp_path):
    experiment = _load("linear_vae_ppca")
    figures = experiment.run(str(tmp_path), steps=15000)
    experiment.check(figures)
