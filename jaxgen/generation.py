"""What a restored state produces, below the loop: samples drawn in sharded chunks, a translating
family's outputs for a split or for a folder of images, the family's pictures, and their files
under the workdir."""
import os
import time

import jax
import numpy as np

from jaxgen import sharding, viz, writers
from jaxgen.data import pipeline, sources, tasks
from jaxgen.errors import UserError
from jaxgen.models.base import DataSpec, Family, TrainState


class Generator:
    """A family's compiled sampler and translator on a mesh, and what they write."""

    def __init__(self, config, workdir: str, family: Family, spec: DataSpec, mesh,
                 train_data: sources.ImageData, test_data: sources.ImageData, rng: jax.Array):
        self.config, self.workdir, self.family, self.spec, self.mesh = (
            config, workdir, family, spec, mesh)
        self.train_data, self.test_data, self.rng = train_data, test_data, rng
        self.is_main = jax.process_index() == 0
        data_sh = sharding.batch_sharding(mesh)
        self.sample_fn = None if family.sample is None else jax.jit(
            family.sample, out_shardings=data_sh)
        self.translate_fn = None if family.translate is None else jax.jit(
            family.translate, out_shardings=data_sh)

    def write_pictures(self, state: TrainState) -> None:
        if self.family.pictures is None:
            return
        n = self.config.eval.picture_examples
        batch = pipeline.example_batch(self.test_data, n - n % self.mesh.shape["data"])
        pictures = self.family.pictures(state, sharding.to_global(batch, self.mesh),
                                        self.rng)
        if self.is_main:
            for name, images in pictures.items():
                path = os.path.join(self.workdir, "samples", f"{name}_{int(state.step):06d}.png")
                images = np.asarray(images)
                if images.dtype == np.uint8:  # a finished picture; upscale small ones
                    viz.save_image(images, path, scale=max(1, -(-512 // max(images.shape[:2]))))
                else:
                    viz.save_grid(images, path)

    def generate(self, state: TrainState, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n samples as floats in [0, 1] and their labels (for a conditional family, the classes
        asked for: equally many of each, in order), drawn in sharded chunks of eval.batch_size;
        with more than one chunk, each logs the progress and the time per image. A translating
        family's are its outputs for the first n conditions of the eval split (at most all),
        labelled as their targets."""
        if self.translate_fn is not None:
            images = self.translations(state, self.test_data, n)
            labels = self.test_data.labels
            return images, (np.zeros(len(images), np.int32) if labels is None
                            else labels[:len(images)])
        if self.sample_fn is None:
            raise UserError(f"model.family {self.config.model.family!r} generates no samples; "
                            f"use --mode train or eval, and no eval.feature_workdir")
        devices = self.mesh.shape["data"]  # a chunk no larger than n needs, split evenly
        chunk = min(self.config.eval.batch_size, -(-n // devices) * devices)
        num_classes = max(self.train_data.num_classes, 1)
        labels = np.repeat(np.arange(num_classes, dtype=np.int32), -(-n // num_classes))[:n]
        padded = np.resize(labels, -(-n // chunk) * chunk).reshape(-1, chunk)
        sharded = sharding.batch_sharding(self.mesh)
        parts, seconds = [], []
        for i, part in enumerate(padded):
            start = time.perf_counter()
            part_labels = jax.make_array_from_callback(part.shape, sharded, lambda idx: part[idx])
            parts.append(jax.device_get(self.sample_fn(
                state, jax.random.fold_in(self.rng, i), part_labels)))
            seconds.append(time.perf_counter() - start)
            if len(padded) > 1:
                steady = seconds[1:] or seconds  # the first chunk also compiles the sampler
                writers.log(f"sampled {min((i + 1) * chunk, n)}/{n} images | "
                            f"{sum(steady) / (len(steady) * chunk):.3g} s per image"
                            f"{'' if i else ' (with compile)'}")
        return np.concatenate(parts)[:n], labels

    def translations(self, state: TrainState, data: sources.ImageData, n: int) -> np.ndarray:
        """The family's translations of the first n conditions of `data`, in [0, 1]."""
        batches = pipeline.eval_batches(data, self.config.eval.batch_size, n,
                                        jax.process_index(), jax.process_count())
        parts = [jax.device_get(self.translate_fn(state, sharding.to_global(batch, self.mesh),
                                                  jax.random.fold_in(self.rng, i)))
                 for i, batch in enumerate(batches)]
        return np.concatenate(parts)[:min(n, len(data.images))]

    def translate_folder(self, state: TrainState, input_dir: str, output_dir: str) -> None:
        """Writes the family's output for each image under input_dir (an image like the
        training images, from which data.task makes the condition, as in training) to
        output_dir as a PNG of the same relative path."""
        if self.translate_fn is None:
            raise UserError(f"model.family {self.config.model.family!r} translates no images; "
                            f"--mode translate needs a pix2pix run")
        paths, images = sources.read_folder(input_dir, f"--input {input_dir!r}")
        channels = self.spec.shape[-1]
        if images.shape[-1] != channels:  # gray inputs for a colour model, or the other way
            images = np.repeat(images, channels, -1) if images.shape[-1] == 1 else \
                np.round(tasks.gray(images) * 255.0).astype(np.uint8)[..., None]
        data = tasks.apply_task(self.config.data.task, sources.ImageData(images, None, 0),
                                "translate", input_dir)
        if "condition" not in data.extras:
            raise UserError("--mode translate makes each image's condition by data.task, and "
                            "this run has none: it was trained on conditions its source gave")
        if data.images.shape[1:] != self.spec.shape:
            h, w = self.spec.shape[:2]
            raise UserError(f"the images in {input_dir} are {data.images.shape[2]}x"
                            f"{data.images.shape[1]} and this run translates {w}x{h} images: "
                            f"resize them")
        outputs = viz.to_uint8(self.translations(state, data, len(images)))
        if self.is_main:
            for path, image in zip(paths, outputs):
                name = os.path.splitext(os.path.relpath(path, input_dir))[0] + ".png"
                viz.save_image(image, os.path.join(output_dir, name))
        writers.log(f"translated {len(paths)} images from {input_dir} into {output_dir}")

    def write_samples(self, state: TrainState, n: int = 0) -> np.ndarray:
        """Draws n (default eval.sample_grid) samples; saves a grid of the first sample_grid,
        one row per class for a conditional family."""
        grid = self.config.eval.sample_grid
        images, _ = self.generate(state, n or grid)
        ncol = -(-grid // max(self.train_data.num_classes, 1)) if self.family.conditional else None
        if self.is_main:
            viz.save_grid(images[:grid], os.path.join(
                self.workdir, "samples", f"samples_{int(state.step):06d}.png"), ncol=ncol)
        return images
