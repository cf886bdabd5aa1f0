"""Each family trained on this machine learns: a few dozen steps of its `cpu+smoke` variant (the
cpu variant's optimizer and schedule, a tiny net) lower the training loss on real data."""
import os

import jax
import numpy as np
import pytest

from jaxgen import config as config_lib, models
from jaxgen.data import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, WINDOW = 40, 8  # the mean loss of the last WINDOW steps against that of the first
CONFIGS = ("realnvp_cifar10.py", "ddpm_mnist.py", "pixelcnn_mnist.py")


@pytest.mark.parametrize("name", CONFIGS)
def test_a_few_dozen_steps_of_the_cpu_variant_lower_the_training_loss(name):
    config = config_lib.load(os.path.join(ROOT, "configs", name + ":cpu+smoke"))
    d = config.data
    data = sources.load_images(d.name, d.train_split, d.data_dir, d.cache_dir or None)
    family = models.make(config, models.DataSpec(data.images.shape[1:], data.num_classes))
    batch_size, rng = config.train.batch_size, np.random.default_rng(0)

    def batch():
        i = rng.choice(len(data.images), batch_size, replace=False)
        return {"image": data.images[i], "label": data.labels[i].astype(np.int32)}

    step = jax.jit(family.train_step)
    state = jax.jit(family.init)(jax.random.key(0), batch())
    losses = []
    for k in range(STEPS):
        state, metrics = step(state, batch(), jax.random.key(k + 1))
        losses.append(float(metrics["loss"]))
    first, last = np.mean(losses[:WINDOW]), np.mean(losses[-WINDOW:])
    assert np.isfinite(losses).all()
    assert last < 0.95 * first, (first, last, losses)
