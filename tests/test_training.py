"""The loop: sharded == single-device, no retracing, resume == uninterrupted, SIGTERM saves."""
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config as config_lib, models, train, writers
from jaxgen.main import main
from jaxgen.models import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAE_DIGITS = os.path.join(ROOT, "configs", "vae_digits.py")


def _config(**train_overrides):
    c = config_lib.load(VAE_DIGITS + ":smoke")
    c.train.update(train_overrides)
    return c


def _state(workdir: str, config):
    exp = train.Experiment(config, workdir)
    try:
        state, _ = exp.restore(required=True)
        return jax.device_get(state)
    finally:
        exp.close()


def test_keeping_a_step_only_if_finite_compiles_linearly_in_the_leaves():
    """XLA used to copy the whole finiteness reduction into every leaf's select (quadratic code:
    Glow's train step took minutes to compile)."""
    def size(n: int) -> int:
        tree = [jnp.full(3, float(i)) for i in range(n)]
        keep = jax.jit(lambda new, old: base.keep_if_finite(new, old, new))
        kept, finite = keep(tree, tree)
        assert bool(finite)
        kept, finite = keep([t.at[0].set(jnp.inf) for t in tree], tree)
        assert not bool(finite)
        chex.assert_trees_all_equal(kept, tree)
        return keep.lower(tree, tree).compile().as_text().count("\n")

    assert size(160) < 5 * size(40)  # 4x the leaves; the quadratic version gave 13x the code


def test_ema_warmup_lets_a_short_run_average_forget_its_first_steps():
    """A 2,800-step DDPM's EMA at decay 0.999 drew pure noise at step 1,000 while its raw params
    drew digits: the average still held the untrained start. Params moving steadily from 0 to
    1 over 300 steps: with warmup the average is near the end point, without it far behind."""
    def final_ema(warmup: bool) -> float:
        optim = config_lib.base_config().optim
        optim.update(ema_decay=0.999, ema_warmup=warmup)
        ema = jnp.zeros(())
        for step in range(300):
            ema = base.ema_update(ema, (step + 1) / 300, base.ema_decay_at(optim, jnp.float32(step)))
        return float(ema)

    assert final_ema(True) > 0.9
    assert final_ema(False) < 0.2
    optim = config_lib.load(os.path.join(ROOT, "configs", "ddpm_mnist.py:cpu")).optim
    assert optim.ema_warmup and base.ema_decay_at(optim, jnp.float32(1e6)) == optim.ema_decay


def test_eight_devices_step_equals_one_device(tmp_path):
    assert len(jax.devices()) == 8, "conftest emulates 8 CPU devices"
    results = []
    # one device; eight with replicated params; eight with params of >= 4096 elements sharded
    for n, shard_min_size in ((1, 0), (8, 0), (8, 4096)):
        exp = train.Experiment(_config(num_devices=n, shard_min_size=shard_min_size),
                               str(tmp_path / f"{n}_{shard_min_size}"))
        state = exp.init_fn(exp.rng_init, exp.example)
        kernel = state.params["params"]["encoder"]["Dense_0"]["kernel"]  # 64 x 256
        assert len(kernel.sharding.device_set) == n
        assert kernel.sharding.is_fully_replicated == (shard_min_size == 0)
        for step in range(3):
            state, metrics = exp.train_fn(state, exp.example, jax.random.fold_in(exp.rng_train, step))
        results.append((jax.device_get(state.params), jax.device_get(metrics)))
        exp.close()
    (p1, m1), (p8, m8), (ps, ms) = results
    chex.assert_trees_all_close(p1, p8, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(m1, m8, rtol=1e-5, atol=1e-5)
    # Sharded params change the reduction order of their gradients; Adam's normalisation can
    # magnify that float32 rounding for parameters with tiny second moments.
    chex.assert_trees_all_close(p1, ps, rtol=1e-4, atol=5e-5)
    chex.assert_trees_all_close(m1, ms, rtol=1e-5, atol=1e-5)


def test_train_step_traces_once(tmp_path, monkeypatch):
    make = models.make

    def counted(config, spec, inputs=None):
        fam = make(config, spec, inputs)
        return dataclasses.replace(fam, train_step=chex.assert_max_traces(fam.train_step, n=1))

    monkeypatch.setattr(models, "make", counted)
    chex.clear_trace_counter()
    exp = train.Experiment(_config(steps=8), str(tmp_path))
    try:
        state = exp.train()  # eight steps, a checkpoint save and an eval in between
        assert int(state.step) == 8
    finally:
        exp.close()


def test_logged_means_leave_out_skipped_steps_and_count_them(tmp_path, capsys):
    written = []
    writer = type("Writer", (), {"write": lambda self, *args: written.append(args)})()
    exp = train.Experiment(_config(), str(tmp_path))
    try:  # a skipped step reports zeros; the mean is over the two applied steps
        window = [{"loss": 2.0, "skipped": 0.0}, {"loss": 0.0, "skipped": 1.0},
                  {"loss": 4.0, "skipped": 0.0}]
        exp._log_train(writer, 3, window, rate=1.0)
    finally:
        exp.close()
    (step, split, means), = written
    assert (step, split, means["loss"], means["skipped"]) == (3, "train", 3.0, 1 / 3)
    assert "1 of the last 3 steps had non-finite values" in capsys.readouterr().out


def test_progress_line_gives_slow_rates_and_long_etas_in_full():
    line = writers.format_progress(10, 100_000, {"loss": 1.0}, 1 / 46, 320)
    assert line.endswith("| 0.022 steps/s | 7 img/s | ETA 53d 05:39:00")  # 99,990 steps x 46 s
    assert writers.format_progress(200, 1000, {}, 40.0, 1).endswith("40.0 steps/s | 40 img/s | "
                                                                    "ETA 00:00:20")
    assert writers.format_progress(0, 10, {}, 0.0, 1).endswith("ETA ?")


def _train_lines(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if '"train"' in l]
    return {l["step"]: {k: v for k, v in l.items() if k not in ("time", "steps_per_s")}
            for l in lines}


@pytest.mark.parametrize("config", [VAE_DIGITS, os.path.join(ROOT, "configs", "vqvae_mnist.py")])
def test_resume_equals_uninterrupted(config, tmp_path):
    """The whole state, model_state too (the VQ-VAE's EMA codebooks)."""
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    args = ["--config", config + ":smoke", "--config.train.log_every=2",
            "--config.train.checkpoint_every=2"]
    assert main(args + ["--workdir", straight, "--config.train.steps=8"]) == 0
    assert main(args + ["--workdir", resumed, "--config.train.steps=4"]) == 0
    assert main(args + ["--workdir", resumed, "--config.train.steps=8"]) == 0
    full = config_lib.load(config + ":smoke")
    full.train.update(steps=8, log_every=2, checkpoint_every=2)
    chex.assert_trees_all_equal(_state(straight, full), _state(resumed, full))
    a, b = _train_lines(straight), _train_lines(resumed)
    assert a[6] == b[6] and a[8] == b[8]


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_with_its_programs_cached(tmp_path):
    workdir = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "jaxgen.main", "--config", VAE_DIGITS + ":smoke",
           "--workdir", workdir, "--config.train.steps=100000", "--config.train.log_every=5",
           "--config.train.checkpoint_every=100000", "--config.train.eval_every=100000",
           "--config.train.sample_every=100000"]
    cache = tmp_path / "xla"
    env = dict(os.environ, XLA_FLAGS="", JAXGEN_XLA_CACHE=str(cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 120
    while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
    steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
    assert steps and max(steps) >= 5
    state_params = _state(workdir, _config(steps=100000)).params
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state_params))
    assert len(os.listdir(cache)) >= 2  # init and the train step, for the resumed run to reuse


def test_checkpoint_restores_onto_a_different_mesh(tmp_path):
    workdir = str(tmp_path)
    args = ["--config", VAE_DIGITS + ":smoke", "--workdir", workdir, "--config.train.steps=3"]
    assert main(args + ["--config.train.num_devices=8", "--config.train.shard_min_size=4096"]) == 0
    saved = _state(workdir, _config(steps=3, num_devices=8, shard_min_size=4096)).params
    exp = train.Experiment(_config(steps=6, num_devices=2), workdir)
    try:
        state, _ = exp.restore(required=True)
        kernel = state.params["params"]["encoder"]["Dense_0"]["kernel"]
        assert len(kernel.sharding.device_set) == 2 and kernel.sharding.is_fully_replicated
        chex.assert_trees_all_equal(jax.device_get(state.params), saved)
    finally:
        exp.close()


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    """experiments/fault_injection.py's comparison, for one kill just after a checkpoint."""
    spec = importlib.util.spec_from_file_location(
        "fault_injection", os.path.join(ROOT, "experiments", "fault_injection.py"))
    faults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faults)
    config = os.path.join(ROOT, "configs", "vae_digits.py:smoke")
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    faults.train(config, reference, 20)
    proc = subprocess.Popen(faults.command(config, killed, 20), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while faults.latest_step(killed) < 10 and proc.poll() is None:
        time.sleep(0.01)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    faults.train(config, killed, 20)
    assert faults.differences(killed, reference) == []
