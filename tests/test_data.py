"""Sources are deterministic; the pipeline shards, batches, pads and resumes correctly."""

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.config.errors import ConfigError
from dl_arch.data.pipeline import (
    WORKER_OPTIONS,
    dataset_fields,
    eval_batches,
    first_train_batch,
    make_source,
    train_dataset,
)
from dl_arch.data.sources.shapes import SHAPE_NAMES, shape_mask
from dl_arch.registry import DATASETS
from dl_arch.testing import load_config

IDENTITY = lambda ex, rng, train: ex


def _dataset_config(**kw):
    c = load_config("configs/mlp_shapes.py:smoke").dataset
    c.update(kw)
    return c


@pytest.mark.parametrize("name", ["xor", "circles", "spirals", "shapes"])
def test_sources_are_deterministic_and_split_dependent(name):
    c = _dataset_config(name=name, num_eval_examples=10)
    a, b = make_source(c, "train", 0), make_source(c, "train", 0)
    for i in (0, 5, 12345):
        for k in a[i]:
            np.testing.assert_array_equal(a[i][k], b[i][k])
    key = "image" if name == "shapes" else "inputs"
    assert not np.array_equal(a[0][key], make_source(c, "test", 0)[0][key])
    assert not np.array_equal(a[0][key], make_source(c, "train", 1)[0][key])
    assert len(make_source(c, "test", 0)) == 10


@pytest.mark.parametrize("name", ["xor", "circles", "spirals"])
def test_point_sets_are_balanced_and_not_linearly_separable(name):
    src = make_source(_dataset_config(name=name), "train", 0)
    xs = np.stack([src[i]["inputs"] for i in range(2000)]).astype(np.float64)
    ys = np.array([src[i]["label"] for i in range(2000)])
    assert ys.mean() == 0.5
    # best least-squares linear classifier: far from separating the classes
    design = np.concatenate([xs, np.ones((len(xs), 1))], 1)
    w, *_ = np.linalg.lstsq(design, 2.0 * ys - 1, rcond=None)
    assert ((design @ w > 0) == ys).mean() < 0.7


def test_xor_labels_follow_quadrants():
    src = make_source(_dataset_config(name="xor", noise=0.0), "train", 0)
    xs = np.stack([src[i]["inputs"] for i in range(200)])
    ys = np.array([src[i]["label"] for i in range(200)])
    np.testing.assert_array_equal(ys, (xs[:, 0] * xs[:, 1] < 0).astype(int))
    assert ys.mean() == 0.5


def test_shapes_boxes_enclose_the_objects():
    c = _dataset_config(num_objects=3, max_objects=4, image_size=48, num_classes=8, noise=0.0)
    src = make_source(c, "train", 0)
    for i in range(10):
        ex = src[i]
        labels, boxes = ex["box_labels"], ex["boxes"]
        assert (labels[:3] >= 0).all() and labels[3] == -1 and ex["label"] == labels[0]
        assert (boxes[:3, 2:] > boxes[:3, :2]).all()
        assert ((boxes[:3] >= 0) & (boxes[:3] <= 1)).all()
        # outside every box the image is the plain background colour (noise is off)
        inside = np.zeros((48, 48), bool)
        for y0, x0, y1, x1 in np.round(boxes[:3] * 48).astype(int):
            inside[y0:y1, x0:x1] = True
        outside = ex["image"][~inside]
        np.testing.assert_allclose(outside, np.broadcast_to(outside[0], outside.shape))
        assert ex["image"].shape == (48, 48, 3) and ex["image"].dtype == np.float32


def test_light_on_dark_palette_draws_light_shapes_on_black_and_bad_palette_is_an_error():
    c = _dataset_config(palette="light_on_dark", noise=0.0, channels=1, image_size=32)
    src = make_source(c, "train", 0)
    for i in range(20):
        ex = src[i]
        y0, x0, y1, x1 = np.round(ex["boxes"][0] * 32).astype(int)
        outside = np.ones((32, 32), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(ex["image"][outside], 0.0)  # black background
        shape = ex["image"][ex["image"] > 0]
        assert shape.size > 0 and np.all(shape == shape[0]) and 0.5 <= shape[0] <= 1.0
    with pytest.raises(ValueError, match="config.dataset.palette='pastel'"):
        make_source(_dataset_config(palette="pastel"), "train", 0)


def test_shape_masks_are_distinct():
    yy, xx = np.mgrid[-1.2:1.2:64j, -1.2:1.2:64j]
    masks = [shape_mask(k, xx, yy) for k in range(len(SHAPE_NAMES))]
    for i in range(len(masks)):
        assert masks[i].sum() > 100
        for j in range(i):
            assert (masks[i] != masks[j]).sum() > 40, (SHAPE_NAMES[i], SHAPE_NAMES[j])


def test_process_shards_partition_the_global_stream():
    c = _dataset_config(name="xor", num_train_examples=50)
    full = iter(train_dataset(c, 0, 8, IDENTITY))
    shards = [iter(train_dataset(c, 0, 8, IDENTITY, p, 2)) for p in range(2)]
    for _ in range(15):  # crosses epoch boundaries (50 examples, reshuffled each epoch)
        whole = next(full)["inputs"]
        parts = [next(s)["inputs"] for s in shards]
        np.testing.assert_array_equal(np.sort(np.concatenate(parts), 0), np.sort(whole, 0))


def test_epochs_are_reshuffled_and_cover_the_data():
    c = _dataset_config(name="xor", num_train_examples=16)
    it = iter(train_dataset(c, 0, 16, IDENTITY))
    e1, e2 = next(it)["inputs"], next(it)["inputs"]
    np.testing.assert_array_equal(np.sort(e1, 0), np.sort(e2, 0))
    assert not np.array_equal(e1, e2)


def test_iterator_state_resumes_exactly():
    c = _dataset_config(name="shapes")
    it = iter(train_dataset(c, 3, 4, IDENTITY))
    next(it)
    state = it.get_state()
    expected = next(it)["image"]
    it2 = iter(train_dataset(c, 3, 4, IDENTITY))
    it2.set_state(state)
    np.testing.assert_array_equal(next(it2)["image"], expected)


def test_eval_batches_cover_each_example_once_across_processes():
    c = _dataset_config(name="xor", num_eval_examples=21)
    src = make_source(c, "test", 0)
    seen = []
    counts = []
    for p in range(2):
        batches = list(eval_batches(c, 0, 8, IDENTITY, p, 2))
        counts.append(len(batches))
        for b in batches:
            assert b["inputs"].shape == (4, 2)
            seen += [tuple(x) for x, m in zip(b["inputs"], b["_mask"]) if m]
    assert counts == [3, 3]
    assert sorted(seen) == sorted(tuple(src[i]["inputs"]) for i in range(21))


def test_batch_size_must_divide_by_processes():
    with pytest.raises(ValueError, match="config.batch_size=9 must divide by the number of processes"):
        train_dataset(_dataset_config(name="xor"), 0, 9, IDENTITY, 0, 2)


def _double_image(ex, rng, train):
    return dict(ex, image=ex["image"] * 2)


@pytest.mark.parametrize("batch,image_size", [(4, 16), (48, 48)])
def test_worker_processes_give_the_same_stream_and_resume(batch, image_size):
    """Small arrays come from the workers pickled, those of 1 MiB and more (48 RGB images
    of 48x48: 1.3 MiB) in shared memory (`pipeline.WORKER_OPTIONS`): the same batches."""
    c = _dataset_config(name="shapes", image_size=image_size)
    plain = iter(train_dataset(c, 0, batch, _double_image))
    c.num_workers = 1
    workers = iter(train_dataset(c, 0, batch, _double_image))
    for _ in range(3):
        expected = next(plain)
        got = next(workers)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    assert (expected["image"].nbytes >= WORKER_OPTIONS.min_shm_size) == (batch == 48)
    state = workers.get_state()
    expected = next(workers)["image"]
    resumed = iter(train_dataset(c, 0, batch, _double_image))
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)["image"], expected)


# Sources whose defaults need no download (text reads the whole standard library: covered
# in test_sequence_data with a local file instead).
OFFLINE = ("xor", "circles", "spirals", "function1d", "shapes", "adding", "copy_memory",
           "long_range_classification", "sine_series", "mackey_glass", "dates_to_iso",
           "synthetic_translation", "synthetic_sentences", "reports", "reading_comprehension",
           "synthetic_passages", "spoken_digits", "spoken_commands")


@pytest.mark.parametrize("name", DATASETS.names() + ["tfds:mnist"])
def test_every_dataset_field_is_documented_and_its_default_is_valid(name):
    fields = dataset_fields(name)
    assert fields, name
    for key, field in fields.items():
        assert field.doc.strip() and "\n" not in field.doc, f"{name}.{key} has no one-line doc"
        assert field.check(field.default, f"dataset.{key}") == field.default, f"{name}.{key}"


def test_every_offline_dataset_is_registered_and_builds_from_its_defaults():
    assert set(OFFLINE) <= set(DATASETS.names())
    for name in OFFLINE:
        c = ml_collections.ConfigDict({"name": name})
        for split in ("train", "test"):
            ex = make_source(c, split, 0)[0]
            assert ex and all(np.asarray(v).size for v in ex.values()), (name, split)


def test_bare_dataset_sections_are_checked_against_their_declarations():
    with pytest.raises(ConfigError, match=r"config\.dataset\.noise=-1.0 is out of range"):
        make_source(ml_collections.ConfigDict({"name": "xor", "noise": -1.0}), "train", 0)
    with pytest.raises(ConfigError, match=r"config\.dataset\.split_by='file' is not one of"):
        make_source(ml_collections.ConfigDict({"name": "text", "split_by": "file"}), "train", 0)


def test_tfds_split_sizes_cut_the_splits():
    """`num_train_examples` / `num_eval_examples` of a `tfds:` dataset take the first N."""
    with tfds.testing.mock_data(num_examples=10):
        c = ml_collections.ConfigDict({"name": "tfds:mnist", "num_train_examples": 3})
        train, test = make_source(c, "train", 0), make_source(c, "test", 0)
        assert len(train) == 3 and len(test) == 10
        full = make_source(ml_collections.ConfigDict({"name": "tfds:mnist"}), "train", 0)
        np.testing.assert_array_equal(train[2]["image"], full[2]["image"])
        with pytest.raises(IndexError):
            train[3]


@pytest.mark.parametrize("name,workers,process", [("xor", 0, 0), ("shapes", 1, 1)])
def test_first_train_batch_is_the_streams_first_batch(name, workers, process):
    """The batch a run initialises and compiles with is the one its stream yields first,
    whether the stream reads in worker processes or in this one, on any process."""
    c = _dataset_config(name=name)
    c.num_workers = workers
    preprocess = _double_image if name == "shapes" else IDENTITY
    first = first_train_batch(c, 5, 8, preprocess, process, 2)
    stream = next(iter(train_dataset(c, 5, 8, preprocess, process, 2)))
    assert first.keys() == stream.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], stream[key])
