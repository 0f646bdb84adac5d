"""Offline sequence sources: determinism, the defining property of each task, text windows."""

from __future__ import annotations

import datetime

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.config.errors import ConfigError
from dl_arch.data.pipeline import make_source, train_dataset
from dl_arch.data.sources.sequence_tasks import (
    BOS,
    EOS,
    decode_chars,
    format_date,
    mackey_glass_euler,
    mackey_glass_series,
)
from dl_arch.data.sources.text import TextWindows, _in_eval_by_hash, default_corpus_files
from dl_arch.registry import DATASETS


def _src(name, split="train", seed=0, **fields):
    sizes = {"num_train_examples": 100, "num_eval_examples": 20}
    sizes = {k: v for k, v in sizes.items() if k in DATASETS.fields(name)}
    cfg = ml_collections.ConfigDict({"name": name, **sizes, **fields})
    return make_source(cfg, split, seed)


@pytest.mark.parametrize("name", ["adding", "copy_memory", "long_range_classification",
                                  "sine_series", "mackey_glass", "dates_to_iso"])
def test_sources_are_deterministic_and_split_dependent(name):
    a, b = _src(name, T=20), _src(name, T=20)
    test = _src(name, "test", T=20)
    for i in (0, 7):
        for k in a[i]:
            np.testing.assert_array_equal(a[i][k], b[i][k])
    assert any(not np.array_equal(a[0][k], test[0][k]) for k in a[0])
    assert len(test) == 20


def test_adding_target_is_sum_of_marked_values():
    src = _src("adding", T=30)
    for i in range(5):
        ex = src[i]
        x = ex["inputs"]
        marked = np.flatnonzero(x[:, 1])
        assert len(marked) == 2 and marked[0] < 15 <= marked[1]
        np.testing.assert_allclose(ex["targets"][0], x[marked, 0].sum(), rtol=1e-6)
    with pytest.raises(ValueError, match="config.dataset.T"):
        _src("adding", T=1)


def test_copy_memory_layout():
    ex = _src("copy_memory", T=12, num_symbols=8, copy_len=10)[3]
    x, y, w = ex["inputs"], ex["targets"], ex["weights"]
    assert x.shape == y.shape == w.shape == (12 + 20,)
    np.testing.assert_array_equal(y[-10:], x[:10])
    assert set(x[:10]) <= set(range(1, 9)) and x[10 + 12 - 1] == 9
    assert np.sum(x[10:] != 0) == 1 and np.all(y[:-10] == 0) and w.sum() == 10


def test_long_range_label_depends_on_far_apart_keys():
    src = _src("long_range_classification", T=50, min_length=20)
    for i in range(10):
        ex = src[i]
        n = int(ex["lengths"])
        tok = ex["inputs"]
        assert 20 <= n <= 50 and np.all(tok[n:] == 0) and np.all(tok[:n] > 0)
        keys = np.flatnonzero(tok[:n] < 3)
        assert len(keys) == 2 and keys[0] < n // 10 + 1 and keys[1] >= n - n // 10 - 1
        assert int(ex["label"]) == int(tok[keys[0]] == tok[keys[1]])


def test_mackey_glass_obeys_its_delay_equation():
    """Residual of dx/dt = 0.2 x(t-17)/(1+x(t-17)^10) - 0.1 x on the integration grid."""
    dt, lag = 0.1, 170
    x = mackey_glass_euler(300, dt=dt)
    dxdt = (x[lag + 1:] - x[lag:-1]) / dt
    delayed = x[:-lag - 1]
    rhs = 0.2 * delayed / (1 + delayed**10) - 0.1 * x[lag:-1]
    np.testing.assert_allclose(dxdt, rhs, atol=1e-9)
    tail = x[-1000:]
    assert 0.2 < tail.min() and tail.max() < 1.5 and tail.std() > 0.1  # chaotic, bounded
    s = mackey_glass_series(600)
    assert abs(s.mean()) < 1e-5 and abs(s.std() - 1) < 1e-4
    fc = _src("mackey_glass", "train", context=8, horizon=4, series_length=500)[0]
    assert fc["inputs"].shape == (8, 1) and fc["targets"].shape == (4, 1)


def test_sine_series_shapes_and_noise():
    ex = _src("sine_series", context=32, horizon=8, noise=0.0, num_components=1)[0]
    series = np.concatenate([ex["inputs"][:, 0], ex["targets"][:, 0]])
    # A single noiseless sine satisfies s[t+1] + s[t-1] = 2 cos(w) s[t].
    ratio = (series[2:] + series[:-2]) / np.where(np.abs(series[1:-1]) > 1e-3, series[1:-1], np.nan)
    assert np.nanstd(ratio) < 1e-3


def test_dates_to_iso_round_trip():
    src = _src("dates_to_iso")
    for i in range(20):
        ex = src[i]
        iso = decode_chars(ex["targets"])
        date = datetime.date.fromisoformat(iso)
        assert ex["targets"][10] == EOS and ex["decoder_inputs"][0] == BOS
        np.testing.assert_array_equal(ex["decoder_inputs"][1:], ex["targets"][:-1])
        text = decode_chars(ex["inputs"])
        assert len(text) == int(ex["input_lengths"])
        assert text in {format_date(date, s) for s in range(8)}
    assert format_date(datetime.date(1991, 3, 3), 2) == "the 3rd of march, 1991"
    assert format_date(datetime.date(2011, 2, 21), 5) == "twenty-one february 2011"


def test_text_windows_shift_and_tbptt_order(tmp_path):
    data = bytes(range(256)) * 3
    (tmp_path / "a.txt").write_bytes(data)
    cfg = dict(path=str(tmp_path / "*.txt"), seq_len=10, split_by="position", eval_fraction=0.25)
    train = _src("text", **cfg)
    test = _src("text", "test", **cfg)
    n_train = int(len(data) * 0.75)
    assert len(train) == (n_train - 1) // 10
    ex = train[3]
    np.testing.assert_array_equal(ex["inputs"], np.frombuffer(data[30:40], np.uint8))
    np.testing.assert_array_equal(ex["targets"], np.frombuffer(data[31:41], np.uint8))
    np.testing.assert_array_equal(test[0]["inputs"], np.frombuffer(data[n_train:n_train + 10],
                                                                   np.uint8))
    stream = np.frombuffer(data, np.uint8)
    tb = TextWindows(stream, 10, stream_batch_size=4)
    row_len = (len(stream) - 1) // 4
    for step in range(3):
        for row in range(4):
            ex = tb[step * 4 + row]
            start = row * row_len + step * 10
            np.testing.assert_array_equal(ex["inputs"], stream[start:start + 10])
            assert int(ex["reset"]) == int(step == 0)
    with pytest.raises(ValueError, match="config.dataset.path"):
        _src("text", path=str(tmp_path / "nothing*.md"))


def test_default_corpus_is_the_standard_library():
    files = default_corpus_files()
    assert any(f.endswith("/os.py") for f in files)
    assert not any("site-packages" in f for f in files)


def test_tfds_text_sources_on_mock_data():
    with tfds.testing.mock_data(num_examples=4):
        lm = _src("text", tfds_name="tiny_shakespeare", seq_len=8)
        ex = lm[0]
        np.testing.assert_array_equal(ex["inputs"][1:], ex["targets"][:-1])
        clf = _src("text_classification", tfds_name="imdb_reviews", max_len=16)
        ex = clf[1]
        assert ex["inputs"].shape == (16,) and ex["label"] in (0, 1)
        assert 1 <= ex["lengths"] <= 16


def _text_train_and_eval(**fields):
    cfg = ml_collections.ConfigDict({"name": "text", **fields})
    return make_source(cfg, "train", 0), make_source(cfg, "test", 0)


def test_one_text_file_is_split_by_position_by_default(tmp_path):
    """Issue 20: one file as `path` trains and evaluates (its tail is held out)."""
    data = bytes(range(256)) * 8
    (tmp_path / "notes.txt").write_bytes(data)
    train, test = _text_train_and_eval(path=str(tmp_path / "notes.txt"), seq_len=16,
                                       eval_fraction=0.25)
    cut = int(len(data) * 0.75)
    assert len(train) == (cut - 1) // 16 and len(test) == (len(data) - cut - 1) // 16
    np.testing.assert_array_equal(test[0]["inputs"], np.frombuffer(data[cut:cut + 16], np.uint8))


def test_hash_split_of_one_text_file_fails_before_training(tmp_path):
    """Issue 20: split_by=hash cannot split one file; that is one line when the training data
    is built, not a seq_len error at the final evaluation."""
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)
    cfg = ml_collections.ConfigDict({"name": "text", "path": str(tmp_path / "notes.txt"),
                                     "split_by": "hash", "seq_len": 8})
    with pytest.raises(ConfigError, match=r"config\.dataset\.split_by=hash .* one file.*"
                                          r"split_by=position") as e:
        train_dataset(cfg, 0, 4, lambda ex, rng, train: ex)
    assert "\n" not in str(e.value)


def test_hash_split_that_leaves_eval_without_files_fails(tmp_path):
    names = [f"part{i}.txt" for i in range(3)]
    for n in names:
        (tmp_path / n).write_bytes(b"y" * 500)
    fraction = 1e-4
    assert not any(_in_eval_by_hash(str(tmp_path / n), fraction) for n in names)
    with pytest.raises(ConfigError, match="none of the 3 files .* in the eval split"):
        _text_train_and_eval(path=str(tmp_path / "*.txt"), eval_fraction=fraction)


def test_eval_split_too_small_for_a_window_fails_when_the_train_split_is_built(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"z" * 1000)
    cfg = ml_collections.ConfigDict({"name": "text", "path": str(tmp_path / "a.txt"),
                                     "seq_len": 64, "eval_fraction": 0.05})
    with pytest.raises(ConfigError, match="the eval split has 50 tokens.*seq_len=64"):
        make_source(cfg, "train", 0)
    cfg.seq_len = 32  # 50 bytes hold one window of 32
    assert len(make_source(cfg, "test", 0)) == 1


def test_stream_rows_too_many_for_the_train_split_name_the_field(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"z" * 1000)
    cfg = ml_collections.ConfigDict({"name": "text", "path": str(tmp_path / "a.txt"),
                                     "seq_len": 16, "stream_batch_size": 100})
    with pytest.raises(ConfigError, match="train split .*stream_batch_size=100"):
        make_source(cfg, "train", 0)


def test_sequence_fields_are_checked_where_declared():
    with pytest.raises(ConfigError, match=r"config\.dataset\.copy_len=0 is out of range"):
        _src("copy_memory", copy_len=0)
    with pytest.raises(ConfigError, match=r"config\.dataset\.min_length=60.*T=50"):
        _src("long_range_classification", T=50, min_length=60)
    assert len(_src("long_range_classification", T=50)[0]["inputs"]) == 50  # min_length T // 2
    with pytest.raises(ConfigError, match="series_length=100 leaves the eval part 20 samples"):
        _src("mackey_glass", context=16, horizon=8, series_length=100)
