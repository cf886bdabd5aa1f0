"""The CLI end to end on every smoke config, eval/sample modes, and each user mistake."""
import json
import os
import re
import subprocess

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgen import checkpoint, config as config_lib, runs, train, viz
from jaxgen.errors import UserError
from jaxgen.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One smoke run per family in the default suite (a 'cpu+smoke' entry where the family has a cpu
# variant); every other config's is marked slow: `pytest -m slow -n 2` runs them all.
SMOKE = ["vae_digits.py:smoke", "gaussian_mnist.py:pca50+smoke", "gmm_mnist.py:smoke",
         "texture.py:smoke", "autoencoder_mnist.py:smoke", "classifier_mnist.py:smoke",
         "realnvp_mnist.py:cpu+smoke", "dcgan_mnist.py:smoke", "ddpm_mnist.py:cpu+cond+smoke",
         "gated_pixelcnn_mnist.py:cpu+smoke", "pix2pix_mnist.py:inpaint+smoke",
         "nvae_mnist.py:cpu+smoke"]
MORE_SMOKE = ["vae_mnist.py:smoke", "vae_mnist.py:latent2+smoke", "vae_mnist.py:conv+smoke",
              "vae_cifar10.py:smoke", "gaussian_mnist.py:smoke", "gaussian_mnist.py:fa50+smoke",
              "gaussian_cifar10.py:smoke", "gmm_mnist.py:pca50+diag+smoke",
              "gmm_digits.py:smoke", "autoencoder_mnist.py:conv+smoke",
              "classifier_cifar10.py:smoke",
              "nice_mnist.py:smoke", "realnvp_cifar10.py:smoke", "glow_mnist.py:cpu+smoke",
              "glow_cifar10.py:smoke", "gan_mnist.py:smoke", "cgan_mnist.py:smoke",
              "wgan_mnist.py:smoke", "dcgan_cifar10.py:smoke", "wgan_gp_cifar10.py:smoke",
              "ddpm_mnist.py:smoke", "ddpm_cifar10.py:smoke", "ddpm_cifar10_small.py:smoke",
              "pixelcnn_mnist.py:smoke", "gated_pixelcnn_mnist.py:cond+smoke",
              "pixelcnnpp_cifar10.py:smoke", "stylegan2_mnist.py:smoke",
              "stylegan2_cifar10.py:diffaug+smoke", "pix2pix_mnist.py:smoke",
              "pix2pix_cifar10.py:smoke", "pix2pix_cifar10.py:edges+smoke",
              "nvae_cifar10.py:flows+smoke"]


def slow(params: list) -> list:
    return [pytest.param(*p if isinstance(p, tuple) else (p,), marks=pytest.mark.slow)
            for p in params]


def cfg(name: str) -> str:
    return os.path.join(ROOT, "configs", name)


def run(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


# A 'cpu+smoke' entry (one per family with a cpu variant) trains CPU_STEPS steps and must lower
# the training loss on real data.
CPU_STEPS = 24


@pytest.mark.parametrize("config", SMOKE + slow(MORE_SMOKE))
def test_smoke_config_trains_end_to_end(config, tmp_path, capsys):
    workdir = str(tmp_path)
    longer = [f"--config.train.{key}={value}" for key, value in dict(
        steps=CPU_STEPS, checkpoint_every=CPU_STEPS // 2, eval_every=CPU_STEPS,
        sample_every=CPU_STEPS).items()] if config.endswith(":cpu+smoke") else []
    code, err = run(capsys, "--config", cfg(config), "--workdir", workdir, *longer)
    assert code == 0, err
    check_smoke_run(config, workdir, CPU_STEPS if longer else 6)
    if config.startswith("pix2pix"):
        check_translate(capsys, config, workdir)
    if longer:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            losses = [r["loss"] for r in map(json.loads, f) if r.get("split") == "train"]
        assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses


TWO_STAGE = [("vqvae_mnist", "smoke")]
MORE_TWO_STAGE = [("vqvae_mnist", "cond+smoke"), ("vqvae_cifar10", "smoke"),
                  ("vqvae2_cifar10", "smoke")]


def test_every_config_file_has_a_smoke_run_here():
    covered = {c.partition(":")[0] for c in SMOKE + MORE_SMOKE}
    covered |= {f"{first}{part}.py" for first, _ in TWO_STAGE + MORE_TWO_STAGE
                for part in ("", "_prior")}
    assert covered == {f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py")}


@pytest.mark.parametrize("first,prior_variant", TWO_STAGE + slow(MORE_TWO_STAGE))
def test_two_stage_smoke_configs_train_end_to_end_and_sample(first, prior_variant, tmp_path,
                                                             capsys):
    stage1, stage2 = str(tmp_path / "first"), str(tmp_path / "prior")
    code, err = run(capsys, "--config", cfg(f"{first}.py:smoke"), "--workdir", stage1)
    assert code == 0, err
    check_smoke_run(f"{first}.py:smoke", stage1)
    prior = ["--config", cfg(f"{first}_prior.py:{prior_variant}"), "--workdir", stage2,
             f"--config.model.first_stage={stage1}"]
    code, err = run(capsys, *prior)
    assert code == 0, err
    check_smoke_run(f"{first}_prior.py:{prior_variant}", stage2)
    with open(os.path.join(stage2, "eval", "6.json")) as f:
        assert json.load(f)["bits_per_code"] > 0
    code, err = run(capsys, *prior, "--mode", "sample", "--config.eval.num_samples=4")
    assert code == 0, err
    with np.load(os.path.join(stage2, "samples", "samples_000006.npz")) as f:
        assert f["images"].shape[0] == 4


def test_prior_without_a_first_stage_says_what_to_train(tmp_path, capsys):
    code, err = run(capsys, "--config", cfg("vqvae_mnist_prior.py:smoke"), "--workdir",
                    str(tmp_path / "prior"), f"--config.model.first_stage={tmp_path}/none")
    assert code != 0
    assert "holds no config.json; train a vqvae run there first" in err


def check_smoke_run(config: str, workdir: str, steps: int = 6) -> None:
    """The workdir of a finished smoke run of `steps` steps holds what the loop writes."""
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")), key=int) == \
        [str(steps // 2), str(steps)]
    with open(os.path.join(workdir, "eval", f"{steps}.json")) as f:
        metrics = json.load(f)
    assert metrics["num_examples"] == (1 if config.startswith("texture") else 32)  # 1 exemplar
    assert all(v == v for v in metrics.values())  # no NaN
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert [json.loads(l)["step"] for l in f if '"train"' in l] == \
            list(range(3, steps + 1, 3))
    if config.startswith("classifier"):  # generates nothing
        assert {"loss", "accuracy"} <= set(metrics)
        assert not os.path.exists(os.path.join(workdir, "samples"))
        return
    samples = os.listdir(os.path.join(workdir, "samples"))
    if config.startswith("pix2pix"):  # it translates test pairs and samples nothing
        assert samples == [f"translations_{steps:06d}.png"]
        assert {"l1", "psnr", "ssim"} <= set(metrics)
        return
    assert f"samples_{steps:06d}.png" in samples
    if config.startswith("stylegan2"):  # the family's pictures
        assert {f"{name}_{steps:06d}.png" for name in ("fixed", "truncation", "style_mixing",
                                                        "noise")} <= set(samples)
    if config.startswith("nvae"):
        assert {f"{name}_{steps:06d}.png" for name in ("samples_by_temperature",
                                                        "kl_maps")} <= set(samples)
    if "latent2" in config:
        assert {"manifold_000006.png", "latents_000006.png"} <= set(samples)
    if config.split("_")[0] in ("nice", "realnvp", "glow"):  # the loss terms apart, pictures
        assert {f"interpolations_{steps:06d}.png", f"samples_cold_{steps:06d}.png"} <= set(samples)
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            for line in f:
                assert {"nll_bpd", "log_prior", "log_det"} <= set(json.loads(line)), line


def check_translate(capsys, config: str, workdir: str) -> None:
    """--mode translate writes an output of the model's shape for each image of a folder."""
    shape = runs.read_spec(workdir, None).shape
    images = np.random.default_rng(0).integers(0, 256, (2,) + shape[:2], dtype=np.uint8)
    os.makedirs(os.path.join(workdir, "in", "sub"))
    for name, image in zip(("a.png", os.path.join("sub", "b.png")), images):
        viz.save_image(image, os.path.join(workdir, "in", name))
    out = os.path.join(workdir, "out")
    code, err = run(capsys, "--config", cfg(config), "--workdir", workdir, "--mode", "translate",
                    "--input", os.path.join(workdir, "in"), "--output", out)
    assert code == 0, err
    for name in ("a.png", os.path.join("sub", "b.png")):
        assert np.asarray(Image.open(os.path.join(out, name))).shape[:2] == shape[:2]


def test_texture_samples_any_size_and_synthesis_from_a_trained_workdir(tmp_path, capsys):
    args = ["--config", cfg("texture.py:smoke"), "--workdir", str(tmp_path)]
    assert run(capsys, *args, "--config.train.steps=1")[0] == 0
    assert os.path.exists(tmp_path / "samples" / "textures_000001.png")
    code, err = run(capsys, *args, "--mode", "sample", "--config.model.synthesis=adsn",
                    "--config.model.sample_size=(40, 300)", "--config.eval.num_samples=3")
    assert code == 0, err
    with np.load(tmp_path / "samples" / "samples_000001.npz") as f:
        assert f["images"].shape == (3, 40, 300, 3)
    code, err = run(capsys, *args, f"--config.data.name=image:{tmp_path}/none.png")
    assert code == 2 and "no such file" in err and "Traceback" not in err


def test_rerun_resumes_and_eval_sample_modes_use_latest(tmp_path, capsys):
    args = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "already trained to step 6" in capsys.readouterr().out
    code, _ = run(capsys, *args, "--config.train.steps=9")
    assert code == 0
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6", "9"]
    assert run(capsys, *args, "--config.train.steps=12")[0] == 0
    assert sorted(os.listdir(tmp_path / "checkpoints"), key=int) == ["6", "9", "12"]  # keep 3
    assert run(capsys, *args, "--mode", "eval")[0] == 0
    assert os.path.exists(tmp_path / "eval" / "12.json")
    capsys.readouterr()
    assert main(args + ["--mode", "sample", "--config.eval.batch_size=8"]) == 0
    images = np.load(tmp_path / "samples" / "samples_000012.npz")["images"]
    assert images.shape == (16, 8, 8, 1) and images.dtype == np.uint8
    out = capsys.readouterr().out  # two chunks of 8: progress and the time per image
    assert "sampled 8/16 images |" in out and re.search(r"16/16 images \| [\d.e-]+ s per image\n", out)


def test_a_resume_logs_each_step_once_and_runs_the_eval_the_kill_skipped(tmp_path, capsys):
    args = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path)]
    assert main(args) == 0  # checkpoints 3 and 6, eval and samples at 6
    with open(tmp_path / "metrics.jsonl") as f:  # killed before the eval due at 6 ...
        lines = [line for line in f if '"eval"' not in line]
    with open(tmp_path / "metrics.jsonl", "w") as f:  # ... after logging past checkpoint 6
        f.writelines(lines + [json.dumps({"step": 9, "split": "train", "loss": 1.0}) + "\n",
                              '{"step": 9, "spl'])
    os.remove(tmp_path / "eval" / "6.json")
    os.remove(tmp_path / "samples" / "samples_000006.png")
    capsys.readouterr()
    assert main(args + ["--config.train.steps=9"]) == 0
    assert "running what was due at step 6 and is missing" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "eval" / "6.json")
    assert os.path.exists(tmp_path / "samples" / "samples_000006.png")
    with open(tmp_path / "metrics.jsonl") as f:
        lines = [json.loads(line) for line in f]
    assert [r["step"] for r in lines if r["split"] == "train"] == [3, 6, 9]
    assert [r["step"] for r in lines if r["split"] == "eval"] == [6, 9]


def test_resume_says_so(tmp_path, capsys):
    args = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path)]
    assert main(args + ["--config.train.steps=3"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming training from step 3" in capsys.readouterr().out


def _snapshot(path) -> dict:
    return {os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
            for d, _, files in os.walk(path) for f in files}


def test_sampling_keys_may_change_on_a_trained_workdir_but_model_keys_may_not():
    saved = config_lib.load(cfg("ddpm_mnist.py:smoke"))
    now = config_lib.load(cfg("ddpm_mnist.py:smoke"))
    now.model.update(sampler="ancestral", sample_steps=3, eta=1.0)
    config_lib.check_resumable(config_lib.to_json(saved), now, "w")
    now.model.ch = 16
    with pytest.raises(UserError, match="model differs"):
        config_lib.check_resumable(config_lib.to_json(saved), now, "w")


def test_a_model_key_only_one_config_has_is_left_to_the_checkpoint_whatever_its_value():
    saved = config_lib.load(cfg("dcgan_mnist.py:smoke"))
    del saved.model["d_mbstd"]  # as written by a jaxgen without that option
    now = config_lib.load(cfg("dcgan_mnist.py:smoke"))
    for value in (0, 4):
        now.model.d_mbstd = value
        config_lib.check_resumable(config_lib.to_json(saved), now, "w")  # added since
        config_lib.check_resumable(config_lib.to_json(now), saved, "w")  # removed since


def test_a_checkpoint_whose_arrays_differ_from_the_model_is_refused_before_its_restore(
        tmp_path, capsys):
    """A run saved before model.d_mbstd existed: turning it on adds a minibatch-stddev channel to
    the critic, whose weights the checkpoint lacks; left at its default, the run resumes."""
    args = ["--config", cfg("dcgan_mnist.py:smoke"), "--workdir", str(tmp_path)]
    assert run(capsys, *args, "--config.train.steps=1")[0] == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["model"]["d_mbstd"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    before = _snapshot(tmp_path)
    code, err = run(capsys, *args, "--config.train.steps=2", "--config.model.d_mbstd=2")
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(r"step 1 in \S+ does not fit this model \(params/d/[\w/]+: "
                     r"saved \([\d, ]+\), model needs \([\d, ]+\)", err), err
    assert "(the checkpoint is left untouched)" in err and "model.d_mbstd saved unset, now 2" in err
    assert _snapshot(tmp_path) == before
    assert main(args + ["--config.train.steps=2"]) == 0
    assert "resuming training from step 1" in capsys.readouterr().out


def _flip_bytes(step_dir) -> None:
    """Overwrites 16 bytes in the middle of the step's largest array file, size unchanged."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(step_dir / "state") for f in fs
             if os.path.basename(d) == "d"]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(16))


def test_damaged_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    args = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path / "run")]
    assert run(capsys, *args)[0] == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    _flip_bytes(checkpoints / "6")
    before = _snapshot(checkpoints)
    code, err = run(capsys, *args, "--mode", "eval")  # eval reads, and moves nothing
    assert code == 0, err
    assert "restored checkpoint 3, the newest intact one" in err and "checkpoint 6 (1 file" in err
    assert os.path.exists(tmp_path / "run" / "eval" / "3.json")
    assert _snapshot(checkpoints) == before
    assert run(capsys, *args)[0] == 0  # training sets 6 aside, resumes at 3 and saves 6 again
    assert sorted(os.listdir(checkpoints)) == ["3", "6", "6.damaged"]
    straight = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path / "straight")]
    assert run(capsys, *straight)[0] == 0
    config = config_lib.load(cfg("vae_digits.py:smoke"))
    states = []
    for workdir in ("run", "straight"):
        exp = train.Experiment(config, str(tmp_path / workdir))
        try:
            states.append(jax.device_get(exp.restore(required=True)[0]))
        finally:
            exp.close()
    jax.tree.map(np.testing.assert_array_equal, *states)


def test_every_checkpoint_damaged_or_a_corrupt_one_without_digest_is_reported_and_left_alone(
        tmp_path, capsys):
    args = ["--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path)]
    assert run(capsys, *args)[0] == 0
    for step in ("3", "6"):
        _flip_bytes(tmp_path / "checkpoints" / step)
    before = _snapshot(tmp_path / "checkpoints")
    code, err = run(capsys, *args, "--mode", "eval")
    assert code == 2 and "every checkpoint in" in err and "is damaged" in err
    assert _snapshot(tmp_path / "checkpoints") == before
    state_dir = tmp_path / "checkpoints" / "6" / "state"  # saved before digests: orbax's error
    os.remove(tmp_path / "checkpoints" / "6" / checkpoint.DIGEST)
    for d, _, files in os.walk(state_dir):
        for f in files:
            if f.startswith("manifest") or d.endswith("d"):
                with open(os.path.join(d, f), "wb") as fh:
                    fh.write(b"garbage")
    before = _snapshot(tmp_path / "checkpoints")
    code, err = run(capsys, *args, "--mode", "eval")
    assert code == 2 and "cannot restore the checkpoint at step 6" in err
    assert _snapshot(tmp_path / "checkpoints") == before


def test_divergence_stops_with_a_report_and_keeps_only_finite_checkpoints(tmp_path, capsys):
    code, err = run(capsys, "--config", cfg("vae_digits.py:smoke"), "--workdir", str(tmp_path),
                    "--config.optim.learning_rate=1e30", "--config.train.log_every=1",
                    "--config.train.checkpoint_every=1")
    assert code == 2 and "non-finite" in err and "last good checkpoint" in err
    saved = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
    exp = train.Experiment(config_lib.load(cfg("vae_digits.py:smoke")), str(tmp_path))
    try:
        for step in saved:
            state, _ = exp.ckpt.restore(exp.abstract, step)
            assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
    finally:
        exp.close()


def test_a_full_disk_is_one_line_at_the_save_and_leaves_the_last_checkpoint(tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        workdir = str(disk / "run")
        code, err = run(capsys, "--config", cfg("vae_digits.py:smoke"), "--workdir", workdir)
        assert code == 2 and err.count("\n") == 1, err
        assert "not enough disk space for checkpoint 6" in err and "step 3) is intact" in err
        assert sorted(os.listdir(disk / "run" / "checkpoints")) == ["3"]
        assert int(runs.load_run(workdir, "vae", "key", "hint").state.step) == 3
    finally:
        subprocess.run(["umount", str(disk)], check=True)
