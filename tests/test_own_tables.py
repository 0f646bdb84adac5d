"""Your own tables and text: `text_table` (CSV/TSV/JSONL of text, label), `series_csv`
(numeric CSV columns, split by time) and `parallel_text` (TSV sentence pairs, SentencePiece),
and the configs' `:data=PATH` option. Every file is written here, in tmp_path.

Each source is checked against an independent reading of its file (the csv / json modules,
numpy, sentencepiece itself), for its split, for each one-line error, and end to end: a
model trained on the written file learns (GRU and BERT classifiers, an LSTM forecaster, a
Transformer and an RNN translator, a GPT language model).
"""

from __future__ import annotations

import csv
import json
import os
import pickle

import ml_collections
import numpy as np
import pytest
import sentencepiece as spm

from dl_arch.config.errors import ConfigError
from dl_arch.config.resolve import resolve_config
from dl_arch.data.pipeline import dataset_fields, make_source, resolve_dataset
from dl_arch.data.sources.parallel_text import split_pairs, tokenizer
from dl_arch.data.tokenizers import BOS, EOS, train_sentencepiece
from dl_arch.testing import load_config
from dl_arch.train.loop import train_and_evaluate

POSITIVE, NEGATIVE = ("good", "great", "nice"), ("bad", "awful", "poor")
FILLER = ("the", "film", "was", "plot", "and")


def _source(name: str, split: str = "train", **fields):
    return make_source(ml_collections.ConfigDict({"name": name, **fields}), split, 0)


def _all(source) -> dict[str, np.ndarray]:
    return source.get_batch(np.arange(len(source)))


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _reviews(n: int, seed: int) -> list[tuple[str, int]]:
    """Texts of three filler words and two words of their class: separable by the words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, 3)) + list(rng.choice(POSITIVE if label else NEGATIVE, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _decode(inputs: np.ndarray, lengths: np.ndarray) -> list[str]:
    return [bytes(row[:n].astype(np.uint8)).decode() for row, n in zip(inputs, lengths)]


# ----- text_table -----
TABLE_ROWS = [("a fine film, really", "pos"), ('"quoted" and\nmultiline', "neg"),
              ("héllo wörld", "pos"), ("", "neutral"), ("short", "neg")]


def _table_file(tmp_path, fmt: str) -> str:
    path = tmp_path / f"table.{fmt}"
    if fmt == "jsonl":
        lines = [json.dumps({"id": i, "text": t, "label": y}) for i, (t, y) in enumerate(TABLE_ROWS)]
        return _write(path, "\n".join(lines) + "\n")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
        w.writerow(["id", "text", "label"])
        w.writerows([i, t, y] for i, (t, y) in enumerate(TABLE_ROWS))
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_text_table_matches_the_csv_and_json_modules(tmp_path, fmt):
    path = _table_file(tmp_path, fmt)
    with open(path, newline="", encoding="utf-8") as f:
        if fmt == "jsonl":
            expected = [json.loads(line) for line in f]
        else:
            expected = list(csv.DictReader(f, delimiter="," if fmt == "csv" else "\t"))
    names = sorted({r["label"] for r in expected})
    both = [_source("text_table", split, path=path, max_len=12, eval_fraction=0.4)
            for split in ("train", "test")]
    for source in both:
        got = _all(source)
        for row, i in enumerate(source.indices):
            data = expected[i]["text"].encode()[:12]
            assert got["lengths"][row] == max(len(data), 1)
            np.testing.assert_array_equal(got["inputs"][row, :len(data)], list(data))
            assert not got["inputs"][row, len(data):].any()  # zero padding
            assert got["label"][row] == names.index(expected[i]["label"])
    assert got["inputs"].dtype == np.int32 and got["label"].dtype == np.int32


def test_text_table_special_bytes_and_integer_labels(tmp_path):
    path = _write(tmp_path / "t.csv", "label,text\n1,abcdef\n0,xy\n2,abcdef\n")
    source = _source("text_table", path=path, eval_path=path, tokenizer="special_bytes",
                     max_len=5, num_classes=3)
    got = _all(source)
    np.testing.assert_array_equal(got["inputs"][0], [BOS, *(np.frombuffer(b"abc", np.uint8) + 4),
                                                     EOS])
    np.testing.assert_array_equal(got["inputs"][1], [BOS, ord("x") + 4, ord("y") + 4, EOS, 0])
    np.testing.assert_array_equal(got["lengths"], [5, 4, 5])
    np.testing.assert_array_equal(got["label"], [1, 0, 2])  # integers are class ids as they are
    assert pickle.loads(pickle.dumps(source))[1]["label"] == 0  # grain workers get a copy


def _texts_of(source) -> list[str]:
    got = _all(source)
    return _decode(got["inputs"], got["lengths"])


def test_text_table_split_is_disjoint_complete_and_seeded(tmp_path):
    rows = [(f"row {i}", i % 3) for i in range(50)]
    path = _write(tmp_path / "t.csv", "text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    split = lambda seed, s: set(_texts_of(_source("text_table", s, path=path, eval_fraction=0.2,
                                                  split_seed=seed)))
    train, held = split(0, "train"), split(0, "test")
    assert not train & held and train | held == {t for t, _ in rows} and len(held) == 10
    assert split(0, "test") == held and split(1, "test") != held


def test_text_table_reads_eval_path_as_the_eval_split_with_shared_label_names(tmp_path):
    train = _write(tmp_path / "train.jsonl", '{"text": "x", "label": "b"}\n'
                                             '{"text": "y", "label": "c"}\n')
    held = _write(tmp_path / "eval.jsonl", '{"text": "z", "label": "a"}\n')
    fields = dict(path=train, eval_path=held)
    assert list(_all(_source("text_table", "train", **fields))["label"]) == [1, 2]
    assert list(_all(_source("text_table", "test", **fields))["label"]) == [0]


@pytest.mark.parametrize("content, fields, message", [
    ("text,lab\nhi,1\n", {}, r"label_column='label' is not a column of config\.dataset\.path="
                             r"'.*t\.csv'; its columns: text, lab"),
    ("", {}, r"config\.dataset\.path='.*t\.csv' is empty: it holds no header row"),
    ("text,label\n", {}, r"is empty: it holds no rows below its header"),
    ("text,label\nhi,1\nho,\n", {}, r"t\.csv' line 3: the label \(column 'label'\) is missing"),
    ("text,label\nhi,1\nho\n", {}, r"line 3: the label .* is missing"),
    ("text,label\nhi,1\n\nho,one\n", {}, r"line 4: label 'one' is not an integer; .*label_type=name"),
    ("text,label\nhi,1\nho,2\n", {"num_classes": 2}, r"line 3: label 2 is outside the classes 0\.\.1"),
    ("text,label\nhi,-1\n", {}, r"line 2: label -1 is outside the classes >= 0"),
    ("text,label\nhi,a\nho,b\nha,c\n", {"num_classes": 2},
     r"holds 3 label names \(a, b, c\) but the model has config\.dataset\.num_classes=2"),
    ("text,label\nhi, there,1\n", {}, r"line 2: 3 cells but the header has 2; quote texts"),
    ('text,label\n"open quote,1\n', {}, r"line 2: not valid CSV"),
])
def test_text_table_errors_are_one_line(tmp_path, content, fields, message):
    path = _write(tmp_path / "t.csv", content)
    with pytest.raises(ConfigError, match=message) as info:
        _source("text_table", path=path, **fields)
    assert "\n" not in str(info.value)


def test_text_table_format_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot tell the format from the extension '\.txt'"):
        _source("text_table", path=_write(tmp_path / "t.txt", "text,label\n"))
    bad = _write(tmp_path / "t.jsonl", '{"text": "a", "label": 0}\n{"text": "b", label: 1}\n')
    with pytest.raises(ConfigError, match=r"t\.jsonl' line 2: not JSON"):
        _source("text_table", path=bad)
    other = _write(tmp_path / "u.jsonl", '{"review": "a", "stars": 0}\n')
    with pytest.raises(ConfigError, match=r"text_column='text' is not a column .*: review, stars"):
        _source("text_table", path=other)
    (tmp_path / "v.csv").write_bytes(b"text,label\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match=r"v\.csv' line 2: byte 0xff is not UTF-8"):
        _source("text_table", path=str(tmp_path / "v.csv"))
    with pytest.raises(ConfigError, match=r"config\.dataset\.path='.*nope\.csv': no such file"):
        _source("text_table", path=str(tmp_path / "nope.csv"))


def _reviews_csv(tmp_path, n: int = 400) -> str:
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([t, "pos" if y else "neg"] for t, y in _reviews(n, 0))
    return str(path)


def test_gru_classifier_learns_from_a_csv(tmp_path):
    config = load_config(f"configs/gru_imdb.py:smoke,data={_reviews_csv(tmp_path)}")
    config.update(num_train_steps=60, eval_every_steps=60, batch_size=16, eval_max_batches=0)
    config.optimizer.update(learning_rate=1e-2, warmup_steps=10)
    config.model.dropout = 0.0
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["eval/accuracy"] >= 0.95, summary  # 40 held-out reviews


def test_bert_finetune_learns_from_a_jsonl_through_launch(tmp_path, launch_cli):
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"review": t, "stars": ["low", "high"][y]}) + "\n"
                            for t, y in _reviews(300, 1)))
    code, _, err = launch_cli(f"--config=configs/bert_finetune_offline.py:smoke,data={path},classes=2,"
                              "max_len=24", "--config.dataset.text_column=review",
                              "--config.dataset.label_column=stars", "--config.num_train_steps=80",
                              "--config.eval_every_steps=80", "--config.eval_max_batches=0",
                              "--config.optimizer.learning_rate=3e-3", f"--workdir={tmp_path / 'run'}")
    assert code == 0, err[-3000:]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r for r in rows if "eval/accuracy" in r][-1]["eval/accuracy"] >= 0.95


# ----- series_csv -----
def _series_file(tmp_path, rows: int = 60) -> tuple[str, np.ndarray]:
    t = np.arange(rows)
    values = np.stack([10 + 3 * np.sin(t / 4), np.cos(t / 7) * 100], axis=1)
    path = tmp_path / "series.csv"
    with open(path, "w") as f:
        f.write("date,a,b\n")
        f.writelines(f"2024-01-{i:03d},{a:.6f},{b:.6f}\n" for i, (a, b) in enumerate(values))
    return str(path), values


def test_series_csv_windows_match_numpy(tmp_path):
    path, _ = _series_file(tmp_path)
    values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2))  # independent reading
    fields = dict(path=path, columns=("a", "b"), context=5, horizon=3, stride=2,
                  eval_fraction=0.25)
    cut = 60 - 15
    mean, std = values[:cut].mean(0), values[:cut].std(0)
    norm = (values - mean) / std
    train = _all(_source("series_csv", "train", **fields))
    assert len(train["inputs"]) == (cut - 8) // 2 + 1 and train["inputs"].shape[1:] == (5, 2)
    for i in range(len(train["inputs"])):
        np.testing.assert_allclose(train["inputs"][i], norm[2 * i:2 * i + 5], atol=1e-5)
        np.testing.assert_allclose(train["targets"][i], norm[2 * i + 5:2 * i + 8], atol=1e-5)
    raw = _all(_source("series_csv", "train", **fields, normalize=False))
    np.testing.assert_allclose(raw["inputs"][3], values[6:11], rtol=1e-6)
    assert raw["inputs"].dtype == np.float32


def test_series_csv_splits_by_time(tmp_path):
    path = _write(tmp_path / "t.csv", "t,noise\n" + "".join(f"{i},{i % 3}\n" for i in range(50)))
    fields = dict(path=path, columns=("t",), context=6, horizon=2, eval_fraction=0.2,
                  normalize=False)  # the value of column t is its row
    train, held = (_all(_source("series_csv", s, **fields)) for s in ("train", "test"))
    assert train["targets"].max() < 40 and train["inputs"].max() < 40 and len(train["inputs"]) == 33
    assert sorted(set(held["targets"].reshape(-1))) == list(range(40, 50))  # every eval step
    assert held["inputs"].min() == 40 - 6  # the eval context reaches back into the past
    np.testing.assert_array_equal(held["inputs"][0, :, 0], np.arange(34, 40))
    assert "split_seed" not in dataset_fields("series_csv")  # a split by time has no seed


def test_series_csv_eval_path_and_header_false(tmp_path):
    train = _write(tmp_path / "a.csv", "".join(f"{i}\n" for i in range(20)))
    held = _write(tmp_path / "b.csv", "".join(f"{100 + i}\n" for i in range(8)))
    fields = dict(path=train, eval_path=held, header=False, context=4, horizon=2, normalize=False)
    got = _all(_source("series_csv", "test", **fields))
    np.testing.assert_array_equal(got["inputs"][:, :, 0], [[100, 101, 102, 103],
                                                           [101, 102, 103, 104],
                                                           [102, 103, 104, 105]])
    assert len(_source("series_csv", "train", **fields)) == 15


@pytest.mark.parametrize("content, fields, message", [
    ("a,b\n1,2\n3,x\n", {}, r"series\.csv' line 3, column 'b': 'x' is not a number"),
    ("a,b\n1,2\n3,\n", {}, r"line 3, column 'b': is empty"),
    ("a,b\n1,2\n3,nan\n", {}, r"line 3, column 'b': 'nan' is not a finite number"),
    ("a,b\n1,2\n3\n", {}, r"line 3: 1 cells but the first row has 2"),
    ("a,b\n" + "1,2\n" * 9, {}, r"the train part has 7 rows, too few for one window of "
                                 r"context\+horizon=8"),
    ("a,b\n1,2\n", {"columns": ("c",)}, r"'c' is not a column of .*; its columns: a, b"),
    ("", {}, r"series\.csv' is empty: it holds no rows"),
])
def test_series_csv_errors_are_one_line(tmp_path, content, fields, message):
    path = _write(tmp_path / "series.csv", content)
    with pytest.raises(ConfigError, match=message):
        _source("series_csv", path=path, context=6, horizon=2, eval_fraction=0.2, **fields)


def test_series_csv_eval_file_too_short(tmp_path):
    train = _write(tmp_path / "a.csv", "v\n" + "1\n" * 20)
    held = _write(tmp_path / "b.csv", "v\n" + "1\n" * 3)
    with pytest.raises(ConfigError, match=r"eval_path='.*b\.csv': 3 rows, too few for one window"):
        _source("series_csv", path=train, eval_path=held, context=4, horizon=2)


def test_lstm_forecaster_beats_naive_on_a_csv_sine(tmp_path):
    t = np.arange(1200)
    wave = 10 + 3 * np.sin(2 * np.pi * t / 25) + 0.05 * np.random.default_rng(0).normal(size=1200)
    path = _write(tmp_path / "sine.csv", "step,value\n" + "".join(
        f"{i},{v:.5f}\n" for i, v in zip(t, wave)))
    config = load_config(f"configs/lstm_forecast.py:smoke,data={path}")
    config.dataset.columns = ("value",)
    config.update(num_train_steps=100, eval_every_steps=100, eval_max_batches=0)
    config.optimizer.learning_rate = 1e-2
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["eval/skill"] > 0.8, summary  # 1 - mse / naive_mse on the last 20%


# ----- parallel_text -----
WORDS = "ant bee cat dog eel fox gnu hen ibis jay kea lynx".split()


def _reversed_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(WORDS, int(rng.integers(3, 6))))
        out.append((" ".join(words), " ".join(reversed(words))))
    return out


def _tsv(tmp_path, pairs, name: str = "pairs.tsv") -> str:
    return _write(tmp_path / name, "".join(f"{s}\t{t}\n" for s, t in pairs))


def _models(folder) -> list[str]:
    return [f for f in os.listdir(folder) if f.endswith(".model")]


def test_parallel_text_matches_sentencepiece_itself(tmp_path):
    path = _tsv(tmp_path, _reversed_pairs(40))
    fields = dict(path=path, eval_path=path, vocab_size=40, max_len=5,
                  tokenizer_dir=str(tmp_path / "spm"))
    got = _all(_source("parallel_text", "train", **fields))
    (model,) = _models(tmp_path / "spm")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm" / model))
    lines = [line.split("\t") for line in open(path).read().splitlines()]  # independent reading
    assert len(got["inputs"]) == len(lines) == 40
    for row, (source, target) in enumerate(lines):
        for key, text in (("inputs", source), ("targets", target)):
            ids = sp.encode(text)[:4] + [EOS]  # cut to max_len with <eos>
            np.testing.assert_array_equal(got[key][row], ids + [0] * (5 - len(ids)))
        assert got["input_lengths"][row] == min(len(sp.encode(source)) + 1, 5)


def test_parallel_text_sentencepiece_is_trained_on_the_train_split_alone(tmp_path):
    pairs = _reversed_pairs(40)
    fields = dict(path=_tsv(tmp_path, pairs), vocab_size=40, max_len=16,
                  tokenizer_dir=str(tmp_path / "spm"))
    train = _source("parallel_text", "train", **fields)
    held = _source("parallel_text", "test", **fields)
    assert len(train) == 36 and len(held) == 4 and len(_models(tmp_path / "spm")) == 1
    tok = tokenizer(resolve_dataset(ml_collections.ConfigDict({"name": "parallel_text",
                                                               **fields})))
    got = _all(train)
    texts = [tok.decode(ids) for row in zip(got["inputs"], got["targets"]) for ids in row]
    assert set(zip(texts[::2], texts[1::2])) <= set(pairs)
    # training on those sentences alone finds the cached model (its file name hashes them)
    again = train_sentencepiece(texts, 40, str(tmp_path / "spm"))
    assert len(_models(tmp_path / "spm")) == 1
    assert again.sp.serialized_model_proto() == tok.sp.serialized_model_proto()


def test_parallel_text_split_is_disjoint_complete_and_seeded(tmp_path):
    pairs = [(f"s{i} x", f"t{i} y") for i in range(30)]
    fields = dict(name="parallel_text", path=_tsv(tmp_path, pairs), vocab_size=80,
                  tokenizer_dir=str(tmp_path / "spm"))
    cfg = lambda **more: resolve_dataset(ml_collections.ConfigDict({**fields, **more}))
    train, held = (set(split_pairs(cfg(), s)) for s in ("train", "test"))
    assert not train & held and train | held == set(pairs) and len(held) == 3
    assert set(split_pairs(cfg(), "test")) == held != set(split_pairs(cfg(split_seed=1), "test"))
    tok = tokenizer(cfg())
    source = make_source(cfg(), "test", 0)
    got = _all(source)
    assert {(tok.decode(a), tok.decode(b)) for a, b in zip(got["inputs"], got["targets"])} == held
    assert pickle.loads(pickle.dumps(source))[0]["inputs"].dtype == np.int32  # grain workers


@pytest.mark.parametrize("content, message", [
    ("a b\tb a\nno tab here\n", r"pairs\.tsv' line 2 has no tab; each line is a source sentence"),
    ("a b\tb a\n\t b\n", r"line 2: the source \(before the tab\) is empty"),
    ("a b\tb a\n\nc\t  \n", r"line 3: the target \(after the tab\) is empty"),
    ("\n\n", r"pairs\.tsv' is empty: it holds no sentence pairs"),
])
def test_parallel_text_errors_are_one_line(tmp_path, content, message):
    path = _write(tmp_path / "pairs.tsv", content)
    with pytest.raises(ConfigError, match=message):
        _source("parallel_text", path=path, tokenizer_dir=str(tmp_path / "spm"))


def _translation_config(tmp_path, spec: str):
    path = _tsv(tmp_path, _reversed_pairs(64))
    config = load_config(f"{spec}:smoke,data={path},vocab=64,max_len=12")
    config.dataset.eval_path = path  # overfit: evaluate on the training pairs
    config.dataset.tokenizer_dir = str(tmp_path / "spm")
    config.update(num_train_steps=100, eval_every_steps=50, batch_size=32, eval_max_batches=0,
                  log_every_steps=10)
    config.optimizer.update(warmup_steps=10)
    return config


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def test_transformer_overfits_a_tsv_of_reversed_sentences(tmp_path):
    config = _translation_config(tmp_path, "configs/transformer_translate.py")
    config.task.label_smoothing = 0.0
    config.model.dropout_rate = 0.0
    config.optimizer.learning_rate = 5e-3
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    rows = _rows(tmp_path / "run")
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    exact = [r["eval/exact_match"] for r in rows if "eval/exact_match" in r]
    assert losses[-1] < 0.1 * losses[0], losses
    assert exact[-1] >= 0.8 and exact[-1] > exact[0], exact
    assert summary["eval/bleu_greedy"] > 80, summary  # decoded back to text by the same model
    assert "ref: " in open(tmp_path / "run" / "translations.txt").read()


def test_rnn_seq2seq_overfits_a_tsv_of_reversed_sentences(tmp_path):
    config = _translation_config(tmp_path, "configs/seq2seq_dates.py")
    config.update(num_train_steps=100, eval_every_steps=100)
    config.task.beam_size = 0  # greedy decoding is enough here
    config.evaluators = ()  # attention.png is not what this test checks
    del config.attention_map
    config.optimizer.learning_rate = 2e-2
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    losses = [r["train/loss"] for r in _rows(tmp_path / "run") if "train/loss" in r]
    assert losses[-1] < 0.2 * losses[0], losses
    assert summary["eval/exact_match_greedy"] >= 0.8, summary


# ----- a language model from your .txt, and the configs' data= option -----
def test_gpt_learns_from_a_users_text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and saw one dog".split()
    path = _write(tmp_path / "story.txt", "".join(" ".join(rng.choice(words, 8)) + ".\n"
                                                  for _ in range(400)))
    config = load_config(f"configs/gpt_text.py:smoke,data={path}")
    assert (config.dataset.name, config.dataset.path) == ("text", path)
    config.update(num_train_steps=100, eval_every_steps=100, log_every_steps=10)
    config.optimizer.learning_rate = 1e-2
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    losses = [r["train/loss"] for r in _rows(tmp_path / "run") if "train/loss" in r]
    assert losses[-1] < 0.3 * losses[0], losses
    assert summary["eval/loss"] < 1.5, summary  # the held-out last 5% of the file; ln 256 = 5.5


@pytest.mark.parametrize("spec, ext, source", [
    ("gru_imdb", "csv", "text_table"), ("gru_imdb", "tsv", "text_table"),
    ("bert_imdb", "jsonl", "text_table"), ("bert_finetune_offline", "csv", "text_table"),
    ("lstm_forecast", "csv", "series_csv"), ("transformer_translate", "tsv", "parallel_text"),
    ("seq2seq_dates", "tsv", "parallel_text"), ("lstm_text", "md", "text"),
    ("gpt_text", "txt", "text"),
])
def test_configs_data_option_picks_the_source_and_resolves(spec, ext, source):
    for arg in ("", "smoke,"):
        config = resolve_config(load_config(f"configs/{spec}.py:{arg}data=/data/mine.{ext}"))
        assert (config.dataset.name, config.dataset.path) == (source, f"/data/mine.{ext}")


def test_configs_data_option_rejects_other_formats():
    with pytest.raises(ConfigError, match=r"data='/data/mine\.tsv': a tsv path is not a format "
                                          r"this config reads; give one of: csv"):
        load_config("configs/lstm_forecast.py:data=/data/mine.tsv")
    with pytest.raises(ConfigError, match=r"give one of: csv, jsonl, tsv"):
        load_config("configs/gru_imdb.py:data=/data/mine.npz")


def test_text_configs_pass_the_models_classes_and_tokens_to_the_source():
    gru = load_config("configs/gru_imdb.py:data=/d/x.csv,classes=3")
    assert (gru.model.num_outputs, gru.dataset.num_classes, gru.dataset.tokenizer) == \
        (3, 3, "bytes")
    bert = load_config("configs/bert_finetune_offline.py:data=/d/x.csv,classes=4,max_len=40")
    assert (bert.model.num_classes, bert.dataset.num_classes, bert.dataset.tokenizer) == \
        (4, 4, "special_bytes")
    assert bert.model.max_len == bert.dataset.max_len == 40 and bert.model.vocab_size >= 260
    tr = load_config("configs/transformer_translate.py:data=/d/x.tsv,vocab=500,max_len=40")
    assert tr.model.vocab_size == tr.dataset.vocab_size == 500
    assert tr.model.max_len == tr.dataset.max_len == 40
