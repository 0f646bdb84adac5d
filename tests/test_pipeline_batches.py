"""Batched reading gives exactly the per-example data: sources, the train stream, eval, caches.

The reference for the training stream is the per-example grain pipeline the batched one
replaced (source -> shuffle -> repeat -> shard -> random_map(preprocess) -> batch), built
here from grain's own transformations.
"""

import pickle

import grain
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from grain._src.python.dataset.transformations.map import RngPool

from dl_arch.data.augment import preprocess
from dl_arch.data.batching import get_batch, stack_examples
from dl_arch.data.cache import CachedSource, maybe_cached
from dl_arch.data.loader import PositionRngs, standardize
from dl_arch.data.pipeline import eval_batches, make_source, resolve_dataset, train_dataset
from dl_arch.data.sources.procedural import INFINITE, split_salt
from dl_arch.data.sources.seeding import ExampleGenerators
from dl_arch.data.sources.shapes import Shapes
from dl_arch.data.sources.text import TextWindows
from tests.test_data import OFFLINE


def _per_example_stream(c, seed, global_batch, preprocess, process_index=0, process_count=1):
    """The training stream as it was built before batched reading (the reference)."""
    c = resolve_dataset(c)
    source = make_source(c, c.train_split, seed)
    ds = grain.MapDataset.source(source)
    if c.shuffle:
        ds = ds.shuffle(seed=seed)
    if len(source) < INFINITE:
        ds = ds.repeat(None)
    ds = ds[process_index::process_count]
    ds = ds.random_map(lambda ex, rng: preprocess(standardize(dict(ex)), rng, True),
                       seed=seed + 1)
    ds = ds.batch(global_batch // process_count, drop_remainder=True)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)))


def _with_draws(example, rng, train):
    """A preprocess that reads its generator, so a wrong per-example rng shows."""
    return dict(example, draws=rng.random(3))


def _assert_batches_equal(expected, actual):
    assert sorted(expected) == sorted(actual)
    for k in expected:
        assert expected[k].dtype == actual[k].dtype and expected[k].shape == actual[k].shape, k
        np.testing.assert_array_equal(actual[k], expected[k], err_msg=k)


def _config(**kw):
    return ml_collections.ConfigDict(kw)


def test_batched_generators_equal_default_rng():
    seeds = [(0, 0), (3, 12345), (2**32 - 1, 2**32 - 1), (2**32, 5)]  # the last: slow path
    indices = [0, 1, 2, 977, 2**31 - 2]
    for seed, salt in seeds:
        for i, rng in zip(indices, ExampleGenerators(seed, salt, indices), strict=True):
            ref = np.random.default_rng([seed, salt, i])
            assert rng.bit_generator.state == ref.bit_generator.state
            np.testing.assert_array_equal(rng.normal(size=4), ref.normal(size=4))


def test_position_rngs_are_grains_random_map_rngs():
    pool, rngs = RngPool(7), PositionRngs(7)
    for position in (0, 1, 63, 2**40):
        ref = pool.acquire_rng(position)
        np.testing.assert_array_equal(rngs(position).random(5), ref.random(5))
        pool.release_rng(ref)


@pytest.mark.parametrize("name", OFFLINE)
def test_get_batch_equals_stacked_examples(name):
    source = make_source(_config(name=name), "train", 4)
    indices = np.array([5, 0, 5, 123456, 17])
    expected = stack_examples([source[int(i)] for i in indices])
    _assert_batches_equal(expected, get_batch(source, indices))


def _point_by_generator_calls(kind: str, noise: float, rng: np.random.Generator, i: int):
    """The point sets' examples as first written, one Generator call per number (reference)."""
    label = i % 2
    if kind == "function1d":
        x = rng.uniform(-1.0, 1.0, size=1)
        return x, np.sin(3 * x) + 0.5 * x + rng.normal(0.0, noise, size=1)
    if kind == "xor":
        x = rng.uniform(0.1, 1.0, size=2)
        s = rng.choice([-1.0, 1.0])
        x = x * np.array([s, s if label == 0 else -s])
    elif kind == "circles":
        r = rng.uniform(0.0, 0.45) if label == 0 else rng.uniform(0.65, 1.0)
        a = rng.uniform(0, 2 * np.pi)
        x = r * np.array([np.cos(a), np.sin(a)])
    else:
        t = np.sqrt(rng.uniform(0.02, 1.0)) * 3 * np.pi
        a = t + label * np.pi
        x = (t / (3 * np.pi)) * np.array([np.cos(a), np.sin(a)])
    return x + rng.normal(0.0, noise, size=2), label


@pytest.mark.parametrize("kind", ["xor", "circles", "spirals", "function1d"])
def test_point_batches_from_raw_outputs_equal_the_generator_calls(kind):
    source = make_source(_config(name=kind, noise=0.07), "train", 11)
    indices = np.concatenate([np.arange(600), [2**31 - 2, 977, 3]])
    batch = get_batch(source, indices)
    singles = stack_examples([source[int(i)] for i in indices])
    _assert_batches_equal(singles, batch)
    key = "targets" if kind == "function1d" else "label"
    for j, i in enumerate(indices.tolist()):
        rng = np.random.default_rng([11, split_salt("train"), i])
        x, y = _point_by_generator_calls(kind, 0.07, rng, i)
        np.testing.assert_array_equal(batch["inputs"][j], np.float32(x))
        np.testing.assert_array_equal(batch[key][j], np.asarray(y).astype(batch[key].dtype))


@pytest.mark.parametrize("kw", [
    dict(num_objects=3, max_objects=4, image_size=24, num_classes=8, noise=0.0),
    dict(num_objects=2, max_objects=2, channels=1, palette="light_on_dark", min_size=0.3),
    dict(image_size=40, num_classes=8, channels=3, noise=0.2),
])
def test_shapes_render_whole_batches_like_single_examples(kw, monkeypatch):
    source = make_source(_config(name="shapes", **kw), "test", 1)
    indices = np.arange(40)
    expected = stack_examples([source[int(i)] for i in indices])
    _assert_batches_equal(expected, source.get_batch(indices))
    monkeypatch.setattr("dl_arch.data.sources.shapes._RENDER_PIXELS", 3 * 40 * 40)  # chunks
    _assert_batches_equal(expected, source.get_batch(indices))


def test_shapes_and_points_examples_are_unchanged():
    """Golden values written by the per-example generators before batching (update only if
    the datasets are meant to change: every stored result and checkpoint changes with them)."""
    src = Shapes(32, 8, 2, 3, 3, 0.05, 0.3, 0.7, 10**6, 0, "train", "random")
    golden = {
        0: (1, [1, 5, -1], [[0.5, 0.0625, 0.84375, 0.4375], [0.125, 0.40625, 0.46875, 0.75]],
            770.1750953160226, [0.21004295349121094, 0.14822562038898468, 0.20768877863883972]),
        12345: (1, [1, 2, -1], [[0.34375, 0.1875, 0.8125, 0.625],
                                [0.03125, 0.59375, 0.34375, 0.9375]],
                1293.2630733605474, [0.39533573389053345, 0.9372769594192505,
                                     0.35441288352012634]),
    }
    for i, (label, box_labels, boxes, total, pixel) in golden.items():
        ex = src[i]
        assert ex["label"] == label and ex["box_labels"].tolist() == box_labels
        np.testing.assert_array_equal(ex["boxes"][:2], boxes)
        np.testing.assert_allclose(ex["image"].astype(np.float64).sum(), total, rtol=1e-6)
        np.testing.assert_allclose(ex["image"][16, 16], pixel, rtol=1e-6)
    points = {
        "xor": [[0.2658420205116272, 0.1838013082742691], [-0.9025905728340149, 0.7699048519134521]],
        "circles": [[0.033318351954221725, 0.10711579769849777],
                    [0.6845623254776001, -0.6319410800933838]],
        "spirals": [[-0.32613566517829895, -0.08576324582099915],
                    [0.9383023381233215, -0.2061140239238739]],
    }
    for name, xs in points.items():
        src = make_source(_config(name=name, noise=0.05), "train", 0)
        np.testing.assert_allclose([src[i]["inputs"] for i in range(2)], xs, rtol=1e-6)


def test_text_windows_gather_batches_like_single_windows(tmp_path):
    stream = np.frombuffer(bytes(range(256)) * 3, np.uint8)
    for rows in (0, 4):
        source = TextWindows(stream, 10, rows)
        indices = np.array([0, 3, len(source) - 1, 3])
        expected = stack_examples([source[int(i)] for i in indices])
        _assert_batches_equal(expected, source.get_batch(indices))


@pytest.mark.parametrize("case", [
    dict(dataset=dict(name="xor", num_train_examples=50), batch=8, processes=1),  # cached
    dict(dataset=dict(name="xor", num_train_examples=50), batch=8, processes=2),
    dict(dataset=dict(name="xor"), batch=16, processes=1),  # endless
    dict(dataset=dict(name="shapes", image_size=16), batch=4, processes=2),
    dict(dataset=dict(name="shapes", image_size=16, num_train_examples=12, shuffle=False),
         batch=4, processes=1),
    dict(dataset=dict(name="adding", T=20), batch=8, processes=1),
])
def test_train_batches_equal_the_per_example_pipeline(case):
    c = _config(**case["dataset"])
    for p in range(case["processes"]):
        reference = _per_example_stream(c, 3, case["batch"], _with_draws, p, case["processes"])
        batched = iter(train_dataset(c, 3, case["batch"], _with_draws, p, case["processes"]))
        for _ in range(9):  # several epochs of the finite splits
            _assert_batches_equal(next(reference), next(batched))


def test_augmented_image_batches_equal_the_per_example_pipeline():
    c = _config(name="shapes", image_size=16, channels=1)
    augment = _config(augment=("random_crop", "flip_lr"), crop_padding=3, resize_to=0,
                      crop_fraction=0.875, normalize_mean=(0.5,), normalize_std=(0.25,))
    image_preprocess = lambda ex, rng, train: preprocess(ex, rng, augment, train)  # noqa: E731
    reference = _per_example_stream(c, 5, 8, image_preprocess)
    batched = iter(train_dataset(c, 5, 8, image_preprocess))
    for _ in range(4):
        _assert_batches_equal(next(reference), next(batched))


def test_text_and_tfds_train_batches_equal_the_per_example_pipeline(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(bytes(range(256)) * 8)
    c = _config(name="text", path=str(path), seq_len=16, stream_batch_size=4)
    reference, batched = _per_example_stream(c, 0, 4, _with_draws), iter(
        train_dataset(c, 0, 4, _with_draws))
    for _ in range(5):
        _assert_batches_equal(next(reference), next(batched))
    with tfds.testing.mock_data(num_examples=12):
        c = _config(name="tfds:mnist")
        reference, batched = _per_example_stream(c, 0, 4, _with_draws), iter(
            train_dataset(c, 0, 4, _with_draws))
        for _ in range(5):  # uint8 images standardised to float32 in both
            _assert_batches_equal(next(reference), next(batched))


def test_eval_batches_equal_per_example_reads():
    c = resolve_dataset(_config(name="shapes", image_size=16, num_eval_examples=11))
    source = make_source(c, "test", 0)
    rows = []
    for p in range(2):
        for batch in eval_batches(c, 0, 8, _with_draws, p, 2):
            assert batch["image"].shape[0] == 4
            rows += [(batch["image"][j], batch["draws"][j]) for j in range(4)
                     if batch["_mask"][j]]
    order = [b * 8 + j * 2 + p for p in range(2) for b in range(2) for j in range(4)]
    order = [i for i in order if i < 11]
    assert len(rows) == 11
    for (image, draws), i in zip(rows, order, strict=True):
        np.testing.assert_array_equal(image, source[i]["image"])
        np.testing.assert_array_equal(draws, np.random.default_rng(i).random(3))


class _BatchedImages:
    """A task-like owner of `preprocess` with a batched form, as `Task` has."""

    def __init__(self, augment):
        self.augment = augment

    def preprocess(self, example, rng, train):
        return preprocess(example, rng, self.augment, train)

    def preprocess_batch(self, batch, rng_at, train):
        from dl_arch.data.augment import preprocess_batch

        return preprocess_batch(batch, rng_at, self.augment, train)


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_batched_eval_equals_the_per_example_eval_padding_included(processes):
    c = resolve_dataset(_config(name="shapes", image_size=16, channels=1, num_eval_examples=11))
    augment = _config(augment=("random_crop",), crop_padding=2, resize_to=0, crop_fraction=1.0,
                      normalize_mean=(0.5,), normalize_std=(0.25,))
    owner = _BatchedImages(augment)
    per_example = lambda ex, rng, train: owner.preprocess(ex, rng, train)  # noqa: E731
    padded = 0
    for p in range(processes):
        expected = list(eval_batches(c, 0, 6, per_example, p, processes))
        actual = list(eval_batches(c, 0, 6, owner.preprocess, p, processes))
        assert len(actual) == len(expected) == 2
        for e, a in zip(expected, actual, strict=True):
            _assert_batches_equal(e, a)
        padded += int((actual[-1]["_mask"] == 0).sum())
    assert padded == 1  # 12 rows for 11 examples: one padding row, equal to the per-example one


def test_finite_procedural_splits_are_cached_and_equal_to_their_source():
    source = make_source(_config(name="shapes", image_size=16, num_train_examples=30), "train", 2)
    cached = maybe_cached(source)
    assert isinstance(cached, CachedSource) and len(cached) == 30
    indices = np.array([29, 0, 7, 7])
    _assert_batches_equal(source.get_batch(indices), cached.get_batch(indices))
    for k, v in source[5].items():
        np.testing.assert_array_equal(cached[5][k], v)
    assert pickle.loads(pickle.dumps(cached))._arrays is None  # workers rebuild their own
    endless = make_source(_config(name="shapes"), "train", 2)
    assert maybe_cached(endless) is endless
    assert maybe_cached(source, limit_bytes=1000) is source  # too big for the limit
    with pytest.raises(IndexError):
        cached.get_batch(np.array([30]))


def test_sources_of_ragged_examples_are_preprocessed_before_stacking():
    """A TFDS-like source whose raw images differ in size: nothing stacks them raw."""
    from dl_arch.data.loader import LoadBatch

    class Ragged:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {"image": np.full((4 + i, 5 + 2 * i, 1), i, np.uint8), "label": np.int32(i)}

    crop = lambda ex, rng, train: dict(ex, image=ex["image"][:4, :4])  # noqa: E731
    batch = LoadBatch(Ragged(), crop, 0, 3)(1, np.array([5, 0, 2]))
    assert batch["image"].shape == (3, 4, 4, 1) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["label"], [5, 0, 2])


@pytest.mark.parametrize("spec", ["configs/lenet5_shapes.py", "configs/resnet_shapes.py",
                                  "configs/dae_shapes.py",
                                  "configs/gpt_text.py:smoke"])
def test_a_tasks_batched_preprocessing_gives_the_per_example_stream(spec):
    """The stream with a task's own `preprocess` (which has a batched form: augmentation of
    the whole batch at once) equals the per-example pipeline calling it example by example."""
    from dl_arch.testing import load_config
    from dl_arch.train.trainer import build_task

    config = load_config(spec)
    task = build_task(config)
    c = task.config.dataset
    rows = standardize(get_batch(make_source(c, c.train_split, 3), np.arange(8)))
    assert task.preprocess_batch(rows, np.random.default_rng, True) is not None  # batched
    per_example = lambda ex, rng, train: task.preprocess(ex, rng, train)  # noqa: E731
    reference = _per_example_stream(c, 3, 8, per_example)
    batched = iter(train_dataset(c, 3, 8, task.preprocess))
    for _ in range(3):
        _assert_batches_equal(next(reference), next(batched))


@pytest.mark.parametrize("examples,processes,shuffle", [(30, 1, True), (30, 2, True),
                                                        (None, 1, True), (25, 3, False)])
def test_reading_several_batches_at_once_equals_reading_them_one_by_one(examples, processes,
                                                                        shuffle):
    """`read(count)` (a chunk of steps) across epoch ends, shards and unshuffled splits."""
    c = _config(name="shapes", image_size=8, channels=1, num_train_examples=examples,
                shuffle=shuffle)
    for p in range(processes):
        one = iter(train_dataset(c, 4, 8 * processes, _with_draws, p, processes))
        many = iter(train_dataset(c, 4, 8 * processes, _with_draws, p, processes))
        for count in (1, 5, 3, 7, 2):  # past several epochs of the finite splits
            expected = [next(one) for _ in range(count)]
            chunk = many.read(count)
            if count == 1:
                _assert_batches_equal(expected[0], chunk)
            else:
                _assert_batches_equal({k: np.stack([b[k] for b in expected]) for k in chunk},
                                      chunk)
            assert many.get_state() == one.get_state()
        restored = iter(train_dataset(c, 4, 8 * processes, _with_draws, p, processes))
        restored.set_state(many.get_state())
        _assert_batches_equal(next(one), next(restored))
