"""The family-agnostic loop: mesh, data, state, compiled steps; log, checkpoint, eval (samples
and pictures through jaxgen.generation)."""
import json
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import (checkpoint, config as config_lib, evaluation, generation, models, runs,
                    sharding, viz, writers)
from jaxgen.data import pipeline, sources, tasks
from jaxgen.errors import Interrupted, UserError
from jaxgen.models.base import Family, TrainState


def _finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class Experiment:
    """Everything a run needs, built once from the config; `train`, `evaluate`, `sample` use it."""

    def __init__(self, config, workdir: str):
        sharding.maybe_initialize_distributed()
        self.config, self.workdir = config, workdir
        self.is_main = jax.process_index() == 0
        self.mesh = sharding.make_mesh(config.train.num_devices)
        sharding.check_batch_size(config.train.batch_size, self.mesh, "train.batch_size")
        sharding.check_batch_size(config.eval.batch_size, self.mesh, "eval.batch_size")
        d = config.data
        cache = d.cache_dir or None
        self.train_data, self.test_data = (
            tasks.apply_task(d.task, sources.load_images(d.name, split, d.data_dir, cache), split,
                             d.name) for split in (d.train_split, d.eval_split))
        pipeline.check_batch_size(self.train_data, config.train.batch_size, jax.process_count())
        self.spec = runs.spec_of(self.train_data)
        self.family: Family = models.make(config, self.spec, runs.resolve_inputs(config))
        self._feature_net: evaluation.FeatureNet | None = None  # loaded at the first use ...
        if config.eval.feature_workdir:  # ... and refused now, not at the first eval
            evaluation.check_feature_net(config.eval.feature_workdir, self.spec.shape)
            if self.family.sample is None and self.family.translate is None:
                raise UserError(f"model.family {config.model.family!r} generates no samples for "
                                f"eval.feature_workdir to measure; set "
                                f"--config.eval.feature_workdir=''")

        root = jax.random.key(config.seed)
        self.rng_init, self.rng_train, self.rng_eval, self.rng_sample = jax.random.split(root, 4)
        example = pipeline.example_batch(self.train_data, config.train.batch_size)
        self.example = sharding.to_global(example, self.mesh)
        self.abstract = runs.abstract_state(self.family, config, self.spec, self.mesh)
        self.state_sh = jax.tree.map(lambda a: a.sharding, self.abstract)

        repl = sharding.replicated(self.mesh)
        # Init runs once, and XLA's CPU backend spends most of its compile optimizing the
        # unrolled threefry of every initializer (24 s of 29 for pixelcnnpp_cifar10:smoke).
        init_opts = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
        self.init_fn = jax.jit(self.family.init, out_shardings=self.state_sh,
                               compiler_options=init_opts)
        self.train_fn = jax.jit(self.family.train_step, out_shardings=(self.state_sh, repl),
                                donate_argnums=0)
        self.eval_fn = jax.jit(self._eval_sums, out_shardings=repl)
        self.outputs = generation.Generator(config, workdir, self.family, self.spec, self.mesh,
                                            self.train_data, self.test_data, self.rng_sample)
        self.finite_fn = jax.jit(_finite)
        self.ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                            config.train.keep_checkpoints)

    # -- state ----------------------------------------------------------------------------------

    def check_workdir(self) -> None:
        """Refuses a workdir made by a different model; writes nothing."""
        path = os.path.join(self.workdir, "config.json")
        if os.path.exists(path):
            with open(path) as f:
                config_lib.check_resumable(f.read(), self.config, self.workdir)
        elif self.ckpt.latest_step() is not None:
            raise UserError(f"{self.workdir} has checkpoints but no config.json; use a new --workdir")

    def record_config(self) -> None:
        """Creates the workdir and saves config.json and the data spec in it: once training is
        known to go ahead."""
        try:
            os.makedirs(self.workdir, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create --workdir {self.workdir}: {e.strerror}") from None
        if self.is_main:
            path = os.path.join(self.workdir, "config.json")
            with open(path + ".tmp", "w") as f:
                f.write(config_lib.to_json(self.config))
            os.replace(path + ".tmp", path)
            runs.write_spec(self.workdir, self.spec)

    def restore(self, required: bool) -> tuple[TrainState, dict | None]:
        """The newest intact checkpoint's state and data position. Without one, a fresh state
        (or, when `required`, as for eval and sample, an error). Training sets damaged newer
        checkpoints aside, as it will save those steps again."""
        try:
            found = self.ckpt.restore_latest(self.abstract, set_aside=not required)
        except checkpoint.Mismatch as e:
            path = os.path.join(self.workdir, "config.json")
            changed = ""
            if os.path.exists(path):
                with open(path) as f:
                    changed = config_lib.changes(f.read(), self.config)
            if not changed:
                raise
            raise UserError(f"{e} Since the run was made, the config changed in {changed}: "
                            f"rerun with the saved values to resume it.") from None
        if found is None:
            if required:
                raise _no_checkpoint(self.workdir)
            return self.init_fn(self.rng_init, self.example), None
        step, state, data_state = found
        writers.log(f"restored checkpoint at step {step} from {self.ckpt.directory}")
        return state, data_state

    # -- training -------------------------------------------------------------------------------

    def train(self) -> TrainState:
        cfg = self.config.train
        state, data_state = self.restore(required=False)
        self.record_config()
        start = int(state.step)
        data = pipeline.TrainIterator(self.train_data, cfg.batch_size, self.config.seed,
                                      jax.process_index(), jax.process_count())
        # What a killed run logged past its checkpoint is dropped; what was due at the
        # checkpoint's step and is missing (the kill came before it) runs now.
        writer = writers.MetricWriter(self.workdir, self.is_main, keep_to=start)
        try:
            self._catch_up(state, writer)
        except BaseException:
            writer.close()
            raise
        if start >= cfg.steps:
            writer.close()
            writers.log(f"already trained to step {start} (train.steps={cfg.steps}); "
                        f"raise --config.train.steps to train longer")
            return state
        if data_state is not None:
            data.set_state(data_state)
            writers.log(f"resuming training from step {start}")

        stop = {"signal": None}
        handlers = {s: signal.signal(s, lambda n, f: stop.update(signal=n))
                    for s in (signal.SIGTERM, signal.SIGINT)}
        window, timed, t0 = [], 0, None
        try:
            for step in range(start, cfg.steps):
                batch = sharding.to_global(next(data), self.mesh)
                if step == start:
                    t_compile = time.perf_counter()
                state, last_metrics = self.train_fn(state, batch,
                                                    jax.random.fold_in(self.rng_train, step))
                window.append(last_metrics)
                if step == start:
                    jax.block_until_ready(last_metrics)
                    writers.log(f"compiled and ran the first train step in "
                                f"{time.perf_counter() - t_compile:.1f}s")
                    t0 = time.perf_counter()
                else:
                    timed += 1
                done = step + 1
                log = done % cfg.log_every == 0 or done == cfg.steps
                save = done % cfg.checkpoint_every == 0 or done == cfg.steps
                evaluate = done % cfg.eval_every == 0 or done == cfg.steps
                sample = self.outputs.sample_fn is not None and (done % cfg.sample_every == 0
                                                         or done == cfg.steps)
                if log:
                    jax.block_until_ready(last_metrics)  # a rate of finished steps, not dispatched
                    self._log_train(writer, done, window, timed / max(time.perf_counter() - t0, 1e-9))
                    window = []
                    if self.family.check is not None:
                        self.family.check(state)
                if save or stop["signal"]:  # the signal may arrive while logging
                    self._save(state, data, last_metrics)
                if stop["signal"]:
                    raise Interrupted(f"stopped by signal {stop['signal']} at step {done}; "
                                      f"checkpoint saved; run the same command to resume")
                self._eval_and_sample(state, evaluate, sample, writer)
                if log or save or evaluate or sample:
                    t0, timed = time.perf_counter(), 0  # rates leave out logging, saves and evals
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            self.ckpt.wait()
            writer.close()
        return state

    def _eval_and_sample(self, state: TrainState, evaluate: bool, sample: bool,
                         writer: writers.MetricWriter) -> None:
        if evaluate or sample:
            final = self.finalize(state)  # once: it may be a costly host computation
            if evaluate:
                self.evaluate(final, writer)
            if sample:
                self.outputs.write_samples(final)

    def _catch_up(self, state: TrainState, writer: writers.MetricWriter) -> None:
        """Runs the eval and the samples due at a restored state's step whose files are missing."""
        step, cfg = int(state.step), self.config.train
        if step == 0:
            return
        evaluate = (step % cfg.eval_every == 0 or step == cfg.steps) and not os.path.exists(
            os.path.join(self.workdir, "eval", f"{step}.json"))
        sample = self.outputs.sample_fn is not None and (
            step % cfg.sample_every == 0 or step == cfg.steps) and not os.path.exists(
            os.path.join(self.workdir, "samples", f"samples_{step:06d}.png"))
        if evaluate or sample:
            due = " and ".join(k for k, v in (("eval", evaluate), ("samples", sample)) if v)
            writers.log(f"running what was due at step {step} and is missing (the run stopped "
                        f"before it): {due}")
            self._eval_and_sample(state, evaluate, sample, writer)

    def _log_train(self, writer, step: int, window: list, rate: float) -> None:
        """Means of the metrics since the last log; `rate` in steps/s, compile time excluded."""
        window = jax.device_get(window)
        skipped = int(sum(m.get("skipped", 0.0) for m in window))  # families that skip
        applied = [m for m in window if not m.get("skipped", 0.0)] or window  # skips log zeros
        means = {k: float(np.mean([m[k] for m in applied])) for k in window[0] if k != "skipped"}
        if "skipped" in window[0]:
            means["skipped"] = skipped / len(window)
        self._check_finite(means, step)
        if skipped == len(window):
            self._check_finite({"values in every step since the last log": float("nan")}, step)
        if skipped:
            writers.log(f"warning: {skipped} of the last {len(window)} steps had non-finite values "
                        f"and were skipped (state kept)")
        writer.write(step, "train", dict(means, steps_per_s=rate))
        writers.log(writers.format_progress(step, self.config.train.steps, means, rate,
                                            self.config.train.batch_size))

    def _check_finite(self, metrics: dict, step: int) -> None:
        bad = [k for k, v in metrics.items() if not np.isfinite(v)]
        if bad:
            latest = self.ckpt.latest_step()
            raise UserError(
                f"non-finite {', '.join(bad)} at step {step}; the last good checkpoint "
                f"({'none' if latest is None else f'step {latest}'}) is kept. Lower "
                f"optim.learning_rate or set optim.grad_clip, then rerun to resume from it.")

    def _save(self, state: TrainState, data, metrics) -> None:
        step = int(state.step)
        self._check_finite({k: float(v) for k, v in metrics.items()}, step)
        if not bool(self.finite_fn(state)):
            self._check_finite({"params": float("nan")}, step)
        self.ckpt.save(step, state, data.get_state())

    # -- evaluation and pictures ----------------------------------------------------------------

    def finalize(self, state: TrainState) -> TrainState:
        """The state with the family's derived parts filled in, for eval and sampling."""
        if self.family.finalize is None:
            return state
        return jax.device_put(self.family.finalize(jax.device_get(state)), self.state_sh)

    def _eval_sums(self, state, batch, rng):
        per_example = self.family.eval_step(state, batch, rng)
        mask = batch["mask"].astype(jnp.float32)
        return {k: jnp.sum(v * mask) for k, v in per_example.items()}, jnp.sum(mask)

    def evaluate(self, state: TrainState, writer: writers.MetricWriter | None = None) -> dict:
        """Exact means of the family's eval metrics over the eval split; eval/<step>.json; PNGs."""
        cfg = self.config.eval
        step = int(state.step)
        t = time.perf_counter()
        sums, count, shown = {}, 0.0, t
        total = min(cfg.num_examples or len(self.test_data.images), len(self.test_data.images))
        batches = pipeline.eval_batches(self.test_data, cfg.batch_size, cfg.num_examples or None,
                                        jax.process_index(), jax.process_count())
        for i, batch in enumerate(batches):
            out, n = self.eval_fn(state, sharding.to_global(batch, self.mesh),
                                  jax.random.fold_in(self.rng_eval, i))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += float(n)
            if time.perf_counter() - shown > 30:  # long evals (IWAE with K=5000) show progress
                shown = time.perf_counter()
                writers.log(f"eval: {int(count)}/{total} images, {shown - t:.0f}s")
        metrics = {k: v / count for k, v in sums.items()}
        metrics["num_examples"] = count
        writers.log(f"eval at step {step} on {int(count)} {self.config.data.eval_split} images "
                    f"({time.perf_counter() - t:.1f}s): {writers.format_metrics(metrics)}")
        if cfg.feature_workdir:
            if self._feature_net is None:
                self._feature_net = evaluation.load_feature_net(cfg.feature_workdir)
            metrics.update(evaluation.sample_metrics(
                self.config, self._feature_net, lambda n: self.outputs.generate(state, n),
                self.family.conditional or self.outputs.translate_fn is not None, self.train_data,
                self.test_data))
        if self.is_main:
            os.makedirs(os.path.join(self.workdir, "eval"), exist_ok=True)
            with open(os.path.join(self.workdir, "eval", f"{step}.json"), "w") as f:
                json.dump(dict(metrics, step=step), f, indent=2)
            if writer is not None:
                writer.write(step, "eval", metrics)
        self.outputs.write_pictures(state)
        return metrics

    def close(self) -> None:
        self.ckpt.close()


def _no_checkpoint(workdir: str) -> UserError:
    return UserError(f"no checkpoint in {workdir}/checkpoints; train first (--mode train) or "
                     f"point --workdir at a trained run")


def _check_writable(workdir: str, mode: str) -> None:
    """Refuses a --workdir that is a file, lies under one or cannot be written (every mode
    writes there), before anything is read or written."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(f"--workdir {workdir} is a file, not a directory; pass a directory")
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"--workdir {workdir} is under a file ({existing}), not a directory; "
                        f"pass a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == os.path.abspath(workdir) else f" ({existing} is not)"
        raise UserError(f"--workdir {workdir} is not writable{where}: a read-only file system or "
                        f"no write permission, and --mode {mode} writes there; pass a writable "
                        f"--workdir (a copy of the run, to resume or read it)")


def run(config, workdir: str, mode: str, input_dir: str = "", output_dir: str = "") -> None:
    """Runs `mode` (train, eval, sample, or translate from input_dir to output_dir) of `config`
    in `workdir`."""
    if mode not in ("train", "eval", "sample", "translate"):
        raise UserError(f"unknown --mode {mode!r}; use train, eval, sample or translate")
    if (mode == "translate") != bool(input_dir and output_dir) or \
            (mode != "translate" and (input_dir or output_dir)):
        raise UserError("--input DIR and --output DIR go together, with --mode translate only")
    _check_writable(workdir, mode)
    checkpoints = os.path.join(workdir, "checkpoints")
    if mode != "train" and not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        raise _no_checkpoint(workdir)
    exp = Experiment(config, workdir)  # creates nothing: training creates the workdir
    try:
        exp.check_workdir()
        if mode == "train":
            exp.train()
            return
        state = exp.finalize(exp.restore(required=True)[0])
        if mode == "eval":
            exp.evaluate(state)
        elif mode == "translate":
            exp.outputs.translate_folder(state, input_dir, output_dir)
        else:
            images = exp.outputs.write_samples(state, config.eval.num_samples)
            path = os.path.join(workdir, "samples", f"samples_{int(state.step):06d}.npz")
            if exp.is_main:
                np.savez_compressed(path, images=viz.to_uint8(images))
                writers.log(f"wrote {len(images)} samples to {path}")
    finally:
        exp.close()
