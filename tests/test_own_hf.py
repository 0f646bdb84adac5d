"""The `hf_dataset` source: Hugging Face `datasets` over local files these tests write (csv,
json lines, parquet, an image folder), offline. Rows are checked against the csv / json /
pyarrow / PIL modules' own reading; then the split, every one-line error, and an MLP that
learns from a csv through `configs/mlp_xor.py:data=hf:<file>`.
"""

from __future__ import annotations

import csv
import json
import os
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read before datasets is imported: no network
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("datasets")  # the `data` extra (in the `test` extra too)

from PIL import Image  # noqa: E402

from dl_arch.config.errors import ConfigError  # noqa: E402
from dl_arch.data.pipeline import make_source  # noqa: E402
from dl_arch.testing import load_config  # noqa: E402
from dl_arch.train.loop import train_and_evaluate  # noqa: E402


@pytest.fixture
def hf(tmp_path):
    """make_source for `hf_dataset`, with datasets' Arrow cache inside tmp_path."""
    def make(split: str = "train", **fields):
        config = dict(name="hf_dataset", cache_dir=str(tmp_path / "hf_cache"), **fields)
        return make_source(ml_collections.ConfigDict(config), split, 0)
    return make


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def everything(src):
    return src.get_batch(np.arange(len(src))) if hasattr(src, "get_batch") else {
        k: np.stack([src[i][k] for i in range(len(src))]) for k in src[0]}


# ----- reading, against an independent reading of the same file -----
def test_csv_rows_equal_the_csv_module(tmp_path, hf):
    rng = np.random.default_rng(0)
    rows = [[f"{a:.6f}", f"{b:.6f}", int(c), f"{t:.6f}"] for a, b, c, t in
            zip(rng.normal(size=12), rng.normal(size=12), rng.integers(0, 3, 12), rng.normal(size=12))]
    path = write_csv(tmp_path / "t.csv", ["a", "b", "label", "y"], rows)
    src = hf(path=path, eval_path=path, inputs_columns=("a", "b"), label_column="label",
             targets_columns=("y",), num_classes=3)
    with open(path) as f:
        ref = list(csv.DictReader(f))
    batch = everything(src)
    np.testing.assert_allclose(batch["inputs"], [[float(r["a"]), float(r["b"])] for r in ref], rtol=1e-6)
    np.testing.assert_array_equal(batch["label"], [int(r["label"]) for r in ref])
    np.testing.assert_allclose(batch["targets"][:, 0], [float(r["y"]) for r in ref], rtol=1e-6)
    assert batch["inputs"].dtype == np.float32 and batch["label"].dtype == np.int32
    ex = src[4]
    np.testing.assert_array_equal(ex["inputs"], batch["inputs"][4])
    assert ex["label"].shape == ()


def test_star_takes_every_other_column(tmp_path, hf):
    path = write_csv(tmp_path / "t.csv", ["x1", "label", "x2"], [[1, 0, 2], [3, 1, 4]])
    src = hf(path=f"hf:{path}", eval_path=path, inputs_columns=("*",), label_column="label")
    np.testing.assert_array_equal(everything(src)["inputs"], [[1, 2], [3, 4]])


def test_json_lines_with_text_and_list_columns_equal_the_json_module(tmp_path, hf):
    records = [{"text": "héllo", "label": 1, "v": [0.5, 1.5]}, {"text": "a b c d e f", "label": 0,
                                                                 "v": [2.0, -1.0]}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    src = hf(path=str(path), eval_path=str(path), text_column="text", label_column="label",
             targets_columns=("v",), max_length=8)
    with open(path) as f:
        ref = [json.loads(line) for line in f]
    batch = everything(src)
    for i, r in enumerate(ref):
        ids = [b + 4 for b in r["text"].encode("utf-8")][:8]  # bytes after the 4 special ids
        assert batch["inputs"][i].tolist() == ids + [0] * (8 - len(ids))
        assert batch["lengths"][i] == len(ids)
        np.testing.assert_array_equal(batch["targets"][i], r["v"])
        assert batch["label"][i] == r["label"]


def test_parquet_equals_pyarrow(tmp_path, hf):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    table = pa.table({"f": rng.normal(size=9), "g": rng.integers(0, 5, 9), "label": np.arange(9) % 2})
    pq.write_table(table, tmp_path / "t.parquet")
    src = hf(path=str(tmp_path / "t.parquet"), eval_path=str(tmp_path / "t.parquet"),
             inputs_columns=("f", "g"), label_column="label")
    ref = pq.read_table(tmp_path / "t.parquet").to_pydict()
    batch = everything(src)
    np.testing.assert_allclose(batch["inputs"], np.stack([ref["f"], ref["g"]], 1).astype(np.float32))
    np.testing.assert_array_equal(batch["label"], ref["label"])


def write_images(root, sizes=None):
    """cat/ (dark) and dog/ (bright) PNGs; returns {file path: (pixels, label)}."""
    rng = np.random.default_rng(2)
    files = {}
    for label, name in enumerate(["cat", "dog"]):
        os.makedirs(root / name, exist_ok=True)
        for i in range(4):
            h, w = (sizes or {}).get((name, i), (6, 5))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            file = str(root / name / f"{i}.png")
            Image.fromarray(pixels).save(file)
            files[file] = (pixels, label)
    return files


def test_imagefolder_equals_pil_and_names_classes_by_folder(tmp_path, hf):
    files = write_images(tmp_path / "imgs")
    folder = f"hf:{tmp_path / 'imgs'}"
    src = hf(path=folder, eval_path=folder, image_column="image", label_column="label")
    assert len(src) == 8 and not hasattr(src, "get_batch")  # images are read one by one
    for i in range(len(src)):
        ex = src[i]
        matches = [(p, lab) for p, lab in files.values() if np.allclose(ex["image"] * 255, p, atol=1e-3)]
        assert len(matches) == 1 and ex["label"] == matches[0][1]  # folders sorted: cat 0, dog 1
        assert ex["image"].dtype == np.float32 and ex["image"].shape == (6, 5, 3)
    gray = hf(path=folder, eval_path=folder, image_column="image", channels=1)[0]["image"]
    assert gray.shape == (6, 5, 1)
    pixels = np.asarray(Image.open(next(iter(files))).convert("L"))
    assert any(np.allclose(hf(path=folder, eval_path=folder, image_column="image", channels=1)[i]
                           ["image"][..., 0] * 255, pixels, atol=1e-3) for i in range(8))


# ----- the split -----
def test_split_fraction_eval_split_and_eval_path(tmp_path, hf):
    path = write_csv(tmp_path / "ids.csv", ["id"], [[i] for i in range(100)])
    fields = dict(path=path, inputs_columns=("id",), eval_fraction=0.2)

    def ids(split, seed=0, **more):
        return set(everything(hf(split, split_seed=seed, **{**fields, **more}))["inputs"][:, 0].tolist())

    train, held = ids("train"), ids("test")
    assert len(held) == 20 and not train & held and train | held == set(range(100))
    assert ids("train") == train and ids("test") == held and ids("test", seed=1) != held
    other = write_csv(tmp_path / "other.csv", ["id"], [[i] for i in range(500, 505)])
    assert ids("test", eval_path=other) == set(range(500, 505))
    assert ids("train", eval_path=other) == set(range(100))
    assert ids("test", hf_split="train[:50%]", hf_eval_split="train[50%:]") == set(range(50, 100))


# ----- one-line errors -----
def _raises(match, make, **fields):
    with pytest.raises(ConfigError, match=match) as info:
        make(**fields)
    assert "\n" not in str(info.value)


def test_missing_package_names_the_extra(tmp_path, hf, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    path = write_csv(tmp_path / "t.csv", ["a"], [[1], [2]])
    _raises(r"needs the Hugging Face datasets package: pip install 'dl_arch\[data\]'", hf,
            path=path, inputs_columns=("a",))


def test_missing_column_lists_the_columns(tmp_path, hf):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2], [3, 4]])
    _raises(r"config.dataset.label_column: .*t.csv' has no column 'label'; its columns: a, b", hf,
            path=path, inputs_columns=("a",), label_column="label")


def test_non_numeric_and_empty_cells_name_the_row(tmp_path, hf):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2], [3, ""], ["x", 4]])
    _raises(r"inputs_columns: column 'a' of .* holds 'x' at row 2, not a number", hf, path=path,
            inputs_columns=("a",))
    _raises(r"inputs_columns: column 'b' of .* is empty at row 1; fill or drop", hf, path=path,
            inputs_columns=("b",))


def test_labels_outside_num_classes_and_text_labels(tmp_path, hf):
    path = write_csv(tmp_path / "t.csv", ["a", "label", "name"], [[1, 0, "cat"], [2, 5, "dog"]])
    _raises(r"label_column='label' in .*: label 5 at row 1 is outside \[0, num_classes=2\)", hf,
            path=path, inputs_columns=("a",), label_column="label", num_classes=2)
    _raises(r"label_column: column 'name' of .* holds 'cat' at row 0, not a number", hf,
            path=path, label_column="name")


def test_empty_missing_and_unloadable_data(tmp_path, hf):
    (tmp_path / "empty.csv").write_text("")
    _raises(r"config.dataset.path=.*empty.csv' is an empty file", hf,
            path=str(tmp_path / "empty.csv"), inputs_columns=("a",))
    _raises(r"config.dataset.path='hf:.*nowhere': datasets cannot load split 'train'", hf,
            path=f"hf:{tmp_path / 'nowhere'}", inputs_columns=("a",))
    path = write_csv(tmp_path / "t.csv", ["a"], [[1], [2]])
    _raises(r"cannot load split 'test': Unknown split", hf, path=path, inputs_columns=("a",),
            hf_eval_split="test", split="test")
    _raises(r"config.dataset.path is not set", hf, inputs_columns=("a",))
    _raises(r"are both set", hf, path=path, hf_name="csv", inputs_columns=("a",))
    _raises(r"no column of .* is mapped to the model; .*its columns: a\)", hf, path=path)


def test_images_of_mixed_sizes_need_a_resize(tmp_path, hf):
    write_images(tmp_path / "imgs", sizes={("dog", 2): (9, 9)})
    folder = f"hf:{tmp_path / 'imgs'}"
    src = hf(path=folder, eval_path=folder, image_column="image", label_column="label")
    with pytest.raises(ConfigError, match=r"image at row \d \(.*dog/2.png\) is 9x9, the first is "
                                          r"6x5; set config.dataset.resize_to"):
        [src[i] for i in range(len(src))]
    resized = hf(path=folder, eval_path=folder, image_column="image", resize_to=8)
    assert {resized[i]["image"].shape for i in range(len(resized))} == {(6, 5, 3), (9, 9, 3)}


def test_corrupt_image_is_named(tmp_path, hf):
    write_images(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "1.png").write_bytes(b"not a png at all")
    folder = f"hf:{tmp_path / 'imgs'}"
    src = hf(path=folder, eval_path=folder, image_column="image", resize_to=8)
    with pytest.raises(ConfigError, match=r"image at row \d \(.*cat/1.png\) cannot be decoded"):
        [src[i] for i in range(len(src))]


# ----- end to end: an MLP learns from a local csv read by datasets -----
def test_mlp_learns_from_a_csv_through_datasets(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 3))
    rows = [[f"{a:.5f}", f"{b:.5f}", f"{c:.5f}", int(a + b > 0)] for a, b, c in x]
    path = write_csv(tmp_path / "table.csv", ["f1", "f2", "f3", "label"], rows)
    c = load_config(f"configs/mlp_xor.py:smoke,data=hf:{path}")
    c.dataset.cache_dir = str(tmp_path / "hf_cache")
    c.num_train_steps = c.eval_every_steps = c.checkpoint_every_steps = 80
    c.batch_size = c.eval_batch_size = 32
    c.eval_max_batches = 0
    assert c.dataset.name == "hf_dataset" and c.dataset.inputs_columns == ("*",)
    summary = train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["eval/accuracy"] > 0.9, summary
