"""Input pipeline: deterministic order, host slices, exact resume, padded eval; preprocessing."""
import jax
import numpy as np
import pytest

from jaxgen import runs
from jaxgen.data import pipeline
from jaxgen.data.preprocess import to_model_space, to_unit
from jaxgen.data.sources import ImageData
from jaxgen.errors import UserError


def _data(n=50):
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)
    return ImageData(images, np.arange(n, dtype=np.int32) % 10, 10)


def _ids(batch):
    return batch["image"][:, 0, 0, 0].tolist()


def test_order_is_a_function_of_the_seed_and_epochs_are_permutations():
    data = _data()
    a = [_ids(next(it)) for it in [pipeline.TrainIterator(data, 10, seed=1)] for _ in range(10)]
    b = [_ids(next(it)) for it in [pipeline.TrainIterator(data, 10, seed=1)] for _ in range(10)]
    c = [_ids(next(it)) for it in [pipeline.TrainIterator(data, 10, seed=2)] for _ in range(10)]
    assert a == b and a != c
    epoch1, epoch2 = sum(a[:5], []), sum(a[5:], [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(50)) and epoch1 != epoch2


def test_hosts_split_each_global_batch():
    data = _data()
    full = pipeline.TrainIterator(data, 10, seed=0)
    hosts = [pipeline.TrainIterator(data, 10, seed=0, process_index=i, process_count=2)
             for i in range(2)]
    for _ in range(7):
        assert _ids(next(full)) == _ids(next(hosts[0])) + _ids(next(hosts[1]))


def test_state_round_trip_resumes_exactly():
    data = _data()
    it = pipeline.TrainIterator(data, 8, seed=3)
    for _ in range(9):
        next(it)
    state = it.get_state()
    expected = [_ids(next(it)) for _ in range(5)]
    fresh = pipeline.TrainIterator(data, 8, seed=3)
    fresh.set_state(state)
    assert [_ids(next(fresh)) for _ in range(5)] == expected


def test_eval_batches_cover_the_split_once_with_a_mask():
    batches = list(pipeline.eval_batches(_data(23), 10))
    assert [len(b["image"]) for b in batches] == [10, 10, 10]
    ids = sum((np.array(_ids(b))[b["mask"]].tolist() for b in batches), [])
    assert ids == list(range(23))


def test_batches_carry_the_extras_with_their_images_and_the_spec_describes_them():
    data = _data(23)
    data = ImageData(data.images, data.labels, 10, {"condition": data.images[..., 0] * 2})
    for batch in list(pipeline.eval_batches(data, 10)) + [next(pipeline.TrainIterator(data, 8, 0))]:
        np.testing.assert_array_equal(batch["condition"], batch["image"][..., 0] * 2)
    assert runs.spec_of(data).extras == (("condition", (2, 2), "|u1"),)


def test_batch_larger_than_split_is_a_user_error():
    with pytest.raises(UserError, match="larger than the training split"):
        pipeline.TrainIterator(_data(5), 8, seed=0)


def test_model_spaces():
    images = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(6, 1, 1, 1)
    rng = jax.random.key(0)
    y = np.asarray(to_model_space(images, "dequantize", rng))
    assert np.all((y >= 0) & (y < 1)) and np.array_equal(np.floor(y * 256), images)
    np.testing.assert_allclose(to_model_space(images, "symmetric")[[0, -1]].ravel(), [-1, 1])
    np.testing.assert_allclose(to_unit(to_model_space(images, "symmetric"), "symmetric"),
                               images / 255.0, atol=1e-6)
    assert set(np.unique(to_model_space(images, "threshold"))) == {0.0, 1.0}
    many = np.full((20000, 1, 1, 1), 64, np.uint8)
    b = np.asarray(to_model_space(many, "binarize", rng))
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 64 / 255) < 0.01
