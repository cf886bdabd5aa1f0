"""A trained classifier run as a feature network, and the cached features of real data."""
import dataclasses
import os
import re
from collections.abc import Callable

import jax
import numpy as np

from jaxgen import sharding
from jaxgen.data.sources import ImageData
from jaxgen.errors import UserError
from jaxgen.models import base, classifier


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A restored classifier: `features` and `probs` of images in [0, 1], in batches."""

    workdir: str
    step: int  # the checkpoint's training step
    shape: tuple[int, int, int]  # H, W, C the network was trained on
    num_classes: int
    batch_size: int
    mesh: jax.sharding.Mesh
    state: base.TrainState
    embed_fn: Callable  # jitted (state, images [B, H, W, C]) -> (features, probs)

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images float [N, H, W, C] in [0, 1] -> (features [N, F], probs [N, K]), float32."""
        images = np.asarray(images, np.float32)
        if images.shape[1:] != self.shape:
            raise UserError(f"the feature network in {self.workdir} takes images of shape "
                            f"{self.shape}, got {images.shape[1:]}; use a classifier trained on "
                            f"this dataset as eval.feature_workdir")
        n, b = len(images), self.batch_size
        padded = np.zeros((-(-n // b) * b,) + self.shape, np.float32)
        padded[:n] = images
        data_sh = sharding.batch_sharding(self.mesh)
        parts = [jax.device_get(self.embed_fn(self.state, jax.device_put(padded[i:i + b], data_sh)))
                 for i in range(0, len(padded), b)]
        return (np.concatenate([f for f, _ in parts])[:n],
                np.concatenate([p for _, p in parts])[:n])

    def features(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] in [0, 1] -> penultimate-layer features [N, F]."""
        return self.embed(images)[0]

    def probs(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] in [0, 1] -> class probabilities [N, K]."""
        return self.embed(images)[1]


def load_feature_net(workdir: str) -> FeatureNet:
    """Restores the latest checkpoint of the classifier run in `workdir` (read only)."""
    from jaxgen import train  # train imports this module's user (sample_eval)

    config, state, spec, mesh = train.restore_run(
        workdir, "classifier", "eval.feature_workdir", "configs/classifier_<dataset>.py")
    embed_fn = jax.jit(classifier.make_embed(config, spec))
    return FeatureNet(workdir, int(state.step), spec.shape, spec.num_classes,
                      config.eval.batch_size, mesh, state, embed_fn)


def real_features(net: FeatureNet, data: ImageData, dataset: str, split: str,
                  indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features, probs) of data.images[indices], cached in
    <net.workdir>/feature_cache/<dataset>_<split>_<step>.npz and reused when the cache holds
    these indices as a prefix (so a larger request extends, a smaller one reads it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}_{split}_{net.step}")
    path = os.path.join(net.workdir, "feature_cache", name + ".npz")
    if os.path.exists(path):
        with np.load(path) as cached:
            n = len(indices)
            if len(cached["indices"]) >= n and np.array_equal(cached["indices"][:n], indices):
                return cached["features"][:n], cached["probs"][:n]
    features, probs = net.embed(data.images[indices].astype(np.float32) / 255.0)
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, indices=indices, features=features, probs=probs)
        os.replace(tmp, path)
    return features, probs
