"""The `arrays` source: a user's .npz / .npy files, memory-mapped, keys mapped to the model.

Rows are checked against numpy's own reading of the same files; the file is shown to be
read without loading it whole; the split, every one-line error, and end to end: an MLP, the
regression MLP and a LeNet-5 learn from .npz files these tests write.
"""

from __future__ import annotations

import os
import pickle

import ml_collections
import numpy as np
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.data.pipeline import make_source
from dl_arch.data.sources.arrays import ArrayFile
from dl_arch.testing import load_config
from dl_arch.train.loop import train_and_evaluate


def source(split: str = "train", **fields):
    return make_source(ml_collections.ConfigDict(dict(name="arrays", **fields)), split, 0)


def whole(path, **keys) -> ArrayFile:
    """Every row of `path` (eval_path is the same file, so no split is drawn)."""
    return source(path=str(path), eval_path=str(path), **keys)


# ----- reading, against numpy's own reading -----
def test_npz_rows_equal_numpy_reading(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)
    label = rng.integers(0, 4, 20)
    inputs = np.asfortranarray(rng.normal(size=(20, 7)))  # float64, Fortran order
    tokens = rng.integers(0, 100, (20, 9))
    path = tmp_path / "d.npz"
    np.savez(path, image=image, label=label, inputs=inputs, tokens=tokens)
    src = whole(path, image_key="image", label_key="label", inputs_key="inputs",
                targets_key="tokens", num_classes=4)
    ref = np.load(path)
    assert len(src) == 20
    for i in (0, 7, 19):
        ex = src[i]
        np.testing.assert_array_equal(ex["image"], ref["image"][i].astype(np.float32) / 255)
        assert ex["image"].dtype == np.float32 and ex["label"].dtype == np.int32
        assert int(ex["label"]) == ref["label"][i]
        np.testing.assert_array_equal(ex["inputs"], ref["inputs"][i].astype(np.float32))
        np.testing.assert_array_equal(ex["targets"], ref["tokens"][i])
        assert ex["targets"].dtype == np.int32  # integer arrays stay integers (token ids)
    idx = np.array([5, 0, 19, 5])
    batch = src.get_batch(idx)
    np.testing.assert_array_equal(batch["image"], ref["image"][idx].astype(np.float32) / 255)
    np.testing.assert_array_equal(batch["label"], ref["label"][idx])
    np.testing.assert_array_equal(batch["inputs"], ref["inputs"][idx].astype(np.float32))


def test_npy_files_beside_each_other_and_grayscale_float_images(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.random((12, 4, 4)).astype(np.float32))  # (N, H, W)
    np.save(tmp_path / "y.npy", rng.integers(0, 2, (12, 1)))  # (N, 1) labels are accepted
    src = whole(tmp_path / "x.npy", image_key="x", label_key="y")
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    batch = src.get_batch(np.arange(12))
    np.testing.assert_array_equal(batch["image"], x[..., None])
    np.testing.assert_array_equal(batch["label"], y[:, 0])
    assert src[3]["image"].shape == (4, 4, 1)


def test_compressed_npz_is_read(tmp_path):
    rng = np.random.default_rng(2)
    inputs, label = rng.normal(size=(10, 3)).astype(np.float32), np.arange(10) % 2
    np.savez_compressed(tmp_path / "c.npz", inputs=inputs, label=label)
    src = whole(tmp_path / "c.npz", inputs_key="inputs", label_key="label", num_classes=2)
    np.testing.assert_array_equal(src.get_batch(np.arange(10))["inputs"], inputs)
    np.testing.assert_array_equal(src.get_batch(np.arange(10))["label"], label)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_npz_is_memory_mapped_not_loaded_whole(tmp_path):
    """64 MiB of rows: reading 8 of them must touch only their pages."""
    path = tmp_path / "big.npz"
    rows = np.ones((16384, 1024), np.float32)
    rows[:, 0] = np.arange(16384)
    np.savez(path, inputs=rows, label=np.zeros(16384, np.int64))
    del rows
    before = _resident_bytes()
    src = whole(path, inputs_key="inputs", label_key="label")
    batch = src.get_batch(np.array([3, 16000, 9, 12345, 0, 1, 2, 8191]))
    grown = _resident_bytes() - before
    np.testing.assert_array_equal(batch["inputs"][:, 0], [3, 16000, 9, 12345, 0, 1, 2, 8191])
    assert isinstance(src.arrays()["inputs"], np.memmap)
    assert grown < 16 << 20, f"reading 8 rows grew the process by {grown >> 20} MiB"
    # grain's worker processes get the file's location, not its data
    copy = pickle.loads(pickle.dumps(src))
    assert len(pickle.dumps(src)) < 100_000
    np.testing.assert_array_equal(copy[16000]["inputs"], batch["inputs"][1])


# ----- the split -----
def test_split_is_disjoint_complete_and_seeded(tmp_path):
    np.savez(tmp_path / "d.npz", ids=np.arange(200))
    fields = dict(path=str(tmp_path / "d.npz"), inputs_key="ids", eval_fraction=0.25)

    def ids(split, seed):
        s = source(split, split_seed=seed, **fields)
        return set(s.get_batch(np.arange(len(s)))["inputs"].tolist())

    train, held = ids("train", 0), ids("test", 0)
    assert len(held) == 50 and not train & held and train | held == set(range(200))
    assert ids("train", 0) == train and ids("test", 0) == held  # same seed, same split
    assert ids("test", 1) != held


def test_eval_path_is_a_second_file(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.arange(30))
    np.savez(tmp_path / "test.npz", x=np.arange(100, 107))
    fields = dict(path=str(tmp_path / "train.npz"), eval_path=str(tmp_path / "test.npz"),
                  inputs_key="x")
    assert len(source("train", **fields)) == 30
    assert source("test", **fields).get_batch(np.arange(7))["inputs"].tolist() == list(range(100, 107))


# ----- one-line errors -----
def _error(tmp_path, arrays, match, name="d.npz", **keys):
    if arrays is not None:
        np.savez(tmp_path / name, **arrays)
    with pytest.raises(ConfigError, match=match) as info:
        whole(tmp_path / name, **keys)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config.dataset.path=.*nope.npz.*no such file"):
        source(path=str(tmp_path / "nope.npz"), inputs_key="x")


def test_missing_key_lists_the_arrays(tmp_path):
    _error(tmp_path, dict(x=np.zeros((4, 2)), y=np.zeros(4)),
           r"config.dataset.label_key='label' in .*d.npz.*no such array; the file holds: "
           r"x \(4, 2\) float64, y \(4,\) float64", inputs_key="x", label_key="label")


def test_lengths_disagree(tmp_path):
    _error(tmp_path, dict(x=np.zeros((5, 2)), y=np.zeros(4, int)),
           r"disagree in length \(label_key='y' has 4, inputs_key='x' has 5 rows\)",
           inputs_key="x", label_key="y")


def test_label_outside_num_classes(tmp_path):
    _error(tmp_path, dict(x=np.zeros((4, 2)), y=np.array([0, 1, 3, 1])),
           r"label_key='y' .* label 3 at row 2 is outside \[0, num_classes=3\); labels run 0..3: "
           r"set num_classes \(and the model's\) to at least 4", inputs_key="x", label_key="y",
           num_classes=3)


def test_labels_must_be_whole_and_not_negative(tmp_path):
    _error(tmp_path, dict(y=np.array([0.0, 0.5])), r"label 0.5 at row 1 .*store integer class ids",
           label_key="y")
    _error(tmp_path, dict(y=np.array([0, -1])), r"label -1 at row 1 is outside whole numbers >= 0",
           label_key="y")


def test_non_numeric_array(tmp_path):
    _error(tmp_path, dict(x=np.array(["a", "b"]), y=np.zeros(2, int)),
           r"inputs_key='x' .* holds <U1 values, not numbers", inputs_key="x", label_key="y")


def test_empty_file_and_no_rows_and_not_npz(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    _error(tmp_path, None, r"empty.npz' is an empty file", name="empty.npz", inputs_key="x")
    _error(tmp_path, dict(x=np.zeros((0, 3))), r"holds no examples", inputs_key="x")
    (tmp_path / "text.npz").write_text("a,b\n1,2\n")
    _error(tmp_path, None, r"text.npz' is not a .npz file", name="text.npz", inputs_key="x")


def test_no_key_mapped_lists_the_arrays(tmp_path):
    _error(tmp_path, dict(x=np.zeros((3, 2))), r"no array is mapped to the model; set at least one "
           r"of image_key, .* \(x \(3, 2\) float64\)")


def test_image_shapes(tmp_path):
    _error(tmp_path, dict(im=np.zeros((4, 3, 8, 8), np.uint8)), r"looks channels-first", image_key="im")
    _error(tmp_path, dict(im=np.zeros((4, 8), np.uint8)), r"images are \(N, H, W, C\)", image_key="im")
    _error(tmp_path, dict(im=np.zeros((4, 8, 8), np.int16)), r"images are uint8", image_key="im")


def test_npy_keys_name_files_beside_it(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(ConfigError, match=r"label_key='y' .* no file .*y.npy.* beside it .*: x\)"):
        whole(tmp_path / "x.npy", inputs_key="x", label_key="y")
    with pytest.raises(ConfigError, match=r"is the array 'x', which no \*_key field names"):
        whole(tmp_path / "x.npy", inputs_key="features")


def test_config_option_rejects_a_format_it_cannot_read(tmp_path):
    with pytest.raises(ConfigError, match=r"a txt path is not a format this config reads"):
        load_config(f"configs/mlp_xor.py:data={tmp_path}/x.txt")


@pytest.mark.parametrize("spec, fields", [
    ("configs/mlp_shapes.py:data=D/x.npz,num_classes=3", dict(name="arrays", image_key="image",
                                                             label_key="label", num_classes=3)),
    ("configs/mlp_shapes.py:data=hf:D/imgs", dict(name="hf_dataset", image_column="image",
                                                  label_column="label", num_classes=4)),
    ("configs/mlp_xor.py:data=D/inputs.npy,num_classes=5", dict(name="arrays", inputs_key="inputs",
                                                                label_key="label", num_classes=5)),
    ("configs/mlp_xor.py:data=hf:D/t.csv", dict(name="hf_dataset", inputs_columns=("*",),
                                               label_column="label", num_classes=2)),
    ("configs/mlp_regression.py:data=D/x.npz,outputs=2", dict(name="arrays", inputs_key="inputs",
                                                              targets_key="targets")),
    ("configs/mlp_regression.py:data=hf:D/t.parquet", dict(name="hf_dataset", inputs_columns=("*",),
                                                           targets_columns=("targets",))),
])
def test_data_option_of_each_config_resolves(spec, fields, tmp_path):
    from dl_arch.config.resolve import resolve_config

    c = resolve_config(load_config(spec.replace("D/", f"{tmp_path}/")))
    for key, value in fields.items():
        assert c.dataset[key] == value, key
    assert c.dataset.path.endswith(spec.split("data=")[1].split(",")[0].replace("D/", "").replace("hf:", ""))
    assert "num_train_examples" not in c.dataset  # the procedural source's fields are gone
    if "outputs=2" in spec:
        assert c.model.num_classes == 2


# ----- end to end: the model learns from the user's file -----
def _steps(c, steps: int, batch: int = 32):
    c.num_train_steps, c.eval_every_steps, c.checkpoint_every_steps = steps, steps, steps
    c.batch_size = c.eval_batch_size = batch
    c.eval_max_batches = 0  # the whole eval split
    return c


def test_mlp_learns_a_separable_table_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(np.int64)
    np.savez(tmp_path / "table.npz", inputs=x, label=y)
    c = _steps(load_config(f"configs/mlp_xor.py:smoke,data={tmp_path}/table.npz"), 80)
    assert c.dataset.name == "arrays" and c.dataset.num_classes == 2
    summary = train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["eval/accuracy"] > 0.9, summary


def test_regression_mlp_fits_a_linear_target_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(600, 3)).astype(np.float32)
    t = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)  # variance ~1.75
    np.savez(tmp_path / "lin.npz", inputs=x, targets=t)
    c = _steps(load_config(f"configs/mlp_regression.py:smoke,data={tmp_path}/lin.npz"), 150)
    summary = train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["eval/loss"] < 0.05 * t.var(), summary


def test_lenet5_learns_two_brightness_classes_from_npz(tmp_path):
    rng = np.random.default_rng(2)
    label = rng.integers(0, 2, 256)
    level = np.where(label == 1, 170, 80)[:, None, None, None]  # dark vs bright, plus noise
    image = np.clip(level + rng.normal(0, 30, (256, 32, 32, 1)), 0, 255).astype(np.uint8)
    np.savez(tmp_path / "gray.npz", pixels=image, kind=label)
    c = _steps(load_config("configs/lenet5_shapes.py:smoke"), 40, batch=16)
    c.dataset = ml_collections.ConfigDict(dict(
        name="arrays", path=str(tmp_path / "gray.npz"), image_key="pixels", label_key="kind",
        num_classes=c.model.num_classes, normalize_mean=(0.5,), normalize_std=(0.25,)))
    summary = train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["eval/accuracy"] > 0.9, summary
