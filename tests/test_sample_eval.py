"""Sample metrics in eval: a smoke classifier as the feature network of a smoke VAE run."""
import json
import os

import numpy as np
import pytest

from jaxgen.main import main
from jaxgen import evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {"fd", "kid_mean", "kid_std", "precision", "recall", "classifier_score", "coverage_min",
        "coverage_max", "num_covered"}


def cfg(name: str) -> str:
    return os.path.join(ROOT, "configs", name)


def train(config: str, workdir) -> list[str]:
    args = ["--config", cfg(config), "--workdir", str(workdir)]
    assert main(args) == 0
    return args


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    return {"classifier": train("classifier_mnist.py:smoke", root / "classifier"),
            "vae": train("vae_mnist.py:smoke", root / "vae"),
            "feature_workdir": str(root / "classifier")}


def eval_with_features(runs: dict, capsys, *extra) -> tuple[int, str, str]:
    code = main(runs["vae"] + ["--mode", "eval", "--config.eval.num_samples=24",
                               f"--config.eval.feature_workdir={runs['feature_workdir']}", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_writes_sample_metrics_and_reuses_the_feature_cache(runs, capsys, monkeypatch):
    code, out, err = eval_with_features(runs, capsys)
    assert code == 0, err
    assert "samples" in out and "real" in out and "classifier_score" in out  # the table
    with open(os.path.join(runs["vae"][3], "eval", "6.json")) as f:
        first = json.load(f)
    assert KEYS | {f"real_{k}" for k in KEYS} | {"elbo", "nll_iwae4"} <= set(first)
    assert all(np.isfinite(v) for v in first.values())
    assert 1.0 <= first["classifier_score"] <= 10.0 and 0.0 <= first["real_precision"] <= 1.0
    cache = os.path.join(runs["feature_workdir"], "feature_cache")
    assert sorted(os.listdir(cache)) == ["mnist_test_6.npz", "mnist_train_6.npz"]
    with np.load(os.path.join(cache, "mnist_train_6.npz")) as z:
        assert z["features"].shape == (24, 128) and z["probs"].shape == (24, 10)

    embedded = []
    embed = evaluation.FeatureNet.embed
    monkeypatch.setattr(evaluation.FeatureNet, "embed",
                        lambda self, images: embedded.append(len(images)) or embed(self, images))
    assert eval_with_features(runs, capsys)[0] == 0
    assert embedded == [24]  # only the samples; test and train features come from the cache
    with open(os.path.join(runs["vae"][3], "eval", "6.json")) as f:
        second = json.load(f)
    assert {k: second[f"real_{k}"] for k in KEYS} == {k: first[f"real_{k}"] for k in KEYS}

    embedded.clear()  # a larger train subset extends the cache: one pass over the 40 images
    assert eval_with_features(runs, capsys, "--config.eval.num_samples=40")[0] == 0
    assert embedded == [40, 40]


def test_feature_net_of_another_shape_is_a_user_error(runs, tmp_path, capsys):
    args = train("vae_digits.py:smoke", tmp_path)
    capsys.readouterr()
    code = main(args + ["--mode", "eval",
                        f"--config.eval.feature_workdir={runs['feature_workdir']}"])
    err = capsys.readouterr().err
    assert code == 2 and "(28, 28, 1)" in err and "(8, 8, 1)" in err and "Traceback" not in err


@pytest.mark.parametrize("extra,needle", [
    (["--mode", "sample"], "generates no samples"),
    (["--mode", "eval", "--config.eval.feature_workdir={vae}"], "must be a classifier run"),
    (["--mode", "eval", "--config.eval.feature_workdir={vae}/nowhere"], "no config.json"),
])
def test_misuse_is_one_clear_line(runs, capsys, extra, needle):
    capsys.readouterr()
    extra = [e.format(vae=runs["vae"][3]) for e in extra]
    assert main(runs["classifier"] + extra) == 2
    assert needle in capsys.readouterr().err


def test_format_table_aligns_both_columns():
    table = evaluation.format_table({"fd": 1.5, "recall": 0.25}, {"fd": 0.1, "recall": 1.0})
    lines = table.splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
