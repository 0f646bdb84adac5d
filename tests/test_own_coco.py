"""`coco_json`: a user's boxes in a COCO-format JSON, against a reading of the same file with
the json module and Pillow; the train/eval split; every malformed file as one line; and the
detector config's `:data=PATH.json` overfitting a small JSON of boxes the test writes."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from dl_arch.config.errors import ConfigError
from dl_arch.data.pipeline import make_source
from dl_arch.testing import load_config
from dl_arch.train.loop import train_and_evaluate

COLOURS = {1: (230, 40, 40), 2: (40, 40, 230)}  # category id -> colour of its squares


def write_coco(root: str, count: int, seed: int = 0, size: tuple[int, int] = (48, 40),
               per_image: int = 1, name: str = "boxes.json", **extra) -> str:
    """`count` grey pictures with `per_image` coloured squares each (category 1 red, 2 blue,
    listed in the JSON as 2 then 1), their images under `root`/images; `extra` replaces
    top-level keys of the JSON."""
    rng = np.random.default_rng(seed)
    height, width = size
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        pixels = np.full((height, width, 3), 128, np.uint8)
        for _ in range(per_image):
            side = int(rng.integers(10, 18))
            y, x = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            category = int(rng.integers(1, 3))
            pixels[y:y + side, x:x + side] = COLOURS[category]
            annotations.append({"id": len(annotations) + 100, "image_id": i, "category_id": category,
                                "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0})
        Image.fromarray(pixels).save(os.path.join(root, "images", f"{i}.png"))
        images.append({"id": i, "file_name": f"images/{i}.png", "width": width, "height": height})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 2, "name": "blue"}, {"id": 1, "name": "red"}], **extra}
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def source(path: str, split: str = "train", **fields) -> object:
    return make_source(ml_collections.ConfigDict({"name": "coco_json", "path": path, **fields}),
                       split, 0)


def test_examples_equal_an_independent_reading(tmp_path):
    path = write_coco(str(tmp_path), 5, per_image=2)
    src = source(path, eval_path=path)
    with open(path) as f:
        data = json.load(f)
    assert src.class_names == ("red", "blue") and len(src) == 5 and src.max_objects == 2
    for i, image in enumerate(data["images"]):
        ex = src[i]
        pixels = np.asarray(Image.open(tmp_path / image["file_name"]).convert("RGB"), np.float32)
        np.testing.assert_allclose(ex["image"], pixels / 255.0, atol=1e-6)
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        h, w = image["height"], image["width"]
        expected = [[y / h, x / w, (y + bh) / h, (x + bw) / w] for x, y, bw, bh in
                    (a["bbox"] for a in anns)]
        np.testing.assert_allclose(ex["boxes"], expected, atol=1e-6)
        labels = [a["category_id"] - 1 for a in anns]  # ids 1, 2 -> labels 0, 1
        np.testing.assert_array_equal(ex["box_labels"], labels)
        areas = [a["bbox"][2] * a["bbox"][3] for a in anns]
        assert int(ex["label"]) == labels[int(np.argmax(areas))]  # the largest box's class


def test_resize_padding_crowd_and_images_without_boxes(tmp_path):
    path = write_coco(str(tmp_path), 3)
    with open(path) as f:
        data = json.load(f)
    data["annotations"][0]["iscrowd"] = 1
    with open(path, "w") as f:
        json.dump(data, f)
    src = source(path, eval_path=path, image_size=24, max_objects=3)
    ex = src[0]
    assert ex["image"].shape == (24, 24, 3) and ex["boxes"].shape == (3, 4)
    np.testing.assert_array_equal(ex["box_labels"], [-1, -1, -1])  # the crowd box left out
    assert int(ex["label"]) == 0
    kept = source(path, eval_path=path, image_size=24, max_objects=3, keep_crowd=True)[0]
    assert (kept["box_labels"] >= 0).sum() == 1
    one = src[1]  # boxes are normalised, so stretching the image leaves them as they were
    x, y, w, h = data["annotations"][1]["bbox"]
    np.testing.assert_allclose(one["boxes"][0], [y / 48, x / 40, (y + h) / 48, (x + w) / 40],
                               atol=1e-6)


def test_train_eval_split_disjoint_complete_and_seeded(tmp_path):
    path = write_coco(str(tmp_path), 20)

    def ids(split: str, seed: int) -> list[tuple[float, ...]]:
        src = source(path, split, eval_fraction=0.25, split_seed=seed)
        return sorted(tuple(src[i]["boxes"][0].round(4).tolist()) for i in range(len(src)))

    train, test = ids("train", 0), ids("test", 0)
    assert len(test) == 5 and len(train) == 15 and not set(train) & set(test)
    whole = source(path, eval_path=path)
    assert sorted(train + test) == sorted(tuple(whole[i]["boxes"][0].round(4).tolist())
                                          for i in range(20))
    assert ids("test", 0) == test and ids("test", 3) != test


def test_eval_json_is_labelled_with_the_train_jsons_categories(tmp_path):
    train = write_coco(str(tmp_path / "train"), 4)
    only_blue = write_coco(str(tmp_path / "eval"), 2, categories=[{"id": 2, "name": "blue"}])
    with open(only_blue) as f:
        data = json.load(f)
    data["annotations"] = [dict(a, category_id=2) for a in data["annotations"]]
    with open(only_blue, "w") as f:
        json.dump(data, f)
    src = source(train, "test", eval_path=only_blue)
    assert src.class_names == ("red", "blue")
    assert [int(src[i]["box_labels"][0]) for i in range(2)] == [1, 1]  # id 2 is label 1 in train


def _fails(match: str, path: str, split: str = "train", read: int | None = None, **fields
           ) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        src = source(path, split, **fields)
        if read is not None:
            src[read]
    assert "\n" not in str(info.value)


def _edit(path: str, change) -> str:
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def test_malformed_files_are_one_line_errors(tmp_path):
    fresh = lambda name: write_coco(str(tmp_path), 3, name=name)  # noqa: E731
    _fails(r"config.dataset.path='.*x.json': no such file or folder", str(tmp_path / "x.json"))
    (tmp_path / "bad.json").write_text("{not json")
    _fails(r"bad.json' is not JSON \(Expecting property name .* at line 1\)",
           str(tmp_path / "bad.json"))
    (tmp_path / "folder").mkdir()
    _fails(r"folder' is not a file; give the COCO-format JSON", str(tmp_path / "folder"))
    path = _edit(fresh("a.json"), lambda d: d.pop("annotations"))
    _fails(r"lacks the key\(s\) annotations \(it has: images, categories\)", path)
    path = _edit(fresh("b.json"), lambda d: d["images"][1].pop("height"))
    _fails(r"images\[1\] lacks height \(it has: id, file_name, width\)", path)
    path = _edit(fresh("c.json"), lambda d: d["annotations"][0].update(category_id=9))
    _fails(r"annotation 100 has category_id 9, not among the categories \[1, 2\]", path)
    path = _edit(fresh("d.json"), lambda d: d["annotations"][0].update(image_id=77))
    _fails(r"annotations refer to image id\(s\) \[77\] that 'images' does not list", path)
    path = _edit(fresh("e.json"), lambda d: d["annotations"][0].update(bbox=[1, 2, 0, 5]))
    _fails(r"annotation 100 has an empty box \[1, 2, 0, 5\]", path)
    path = _edit(fresh("f.json"), lambda d: d["annotations"][0].update(bbox=[1, 2, 3]))
    _fails(r"annotation 100 has bbox=\[1, 2, 3\]; COCO boxes are \[x, y, width, height\]", path)
    path = _edit(fresh("g.json"), lambda d: d["images"][2].update(file_name="images/gone.png"))
    _fails(r"images\[2\] file '.*gone.png' does not exist; set config.dataset.image_dir", path)
    path = _edit(fresh("h.json"), lambda d: d.update(images=[]))
    _fails(r"lists no images", path)
    path = _edit(fresh("i.json"), lambda d: d["annotations"].append(
        dict(d["annotations"][0], id=999)))
    _fails(r"images\[0\] \(.*0.png\) has 2 boxes but config.dataset.max_objects=1; raise it", path,
           max_objects=1)
    _fails(r"has 2 categories \(red, blue\) but the model was built for "
           r"config.dataset.num_classes=1", fresh("j.json"), num_classes=1)
    path = _edit(fresh("k.json"), lambda d: d["images"][1].update(width=41))
    _fails(r"images\[1\] is 48x41 but images\[0\] is 48x40; set config.dataset.image_size", path)
    # checked when the image is read: the file's real size, and whether it decodes at all
    _fails(r"images\[1\] \(.*1.png\) is 48x40 pixels but the JSON says 48x41", path, read=1,
           image_size=32, eval_path=path)
    path = fresh("l.json")
    (tmp_path / "images" / "2.png").write_bytes(b"garbage")
    _fails(r"images\[2\] \(.*2.png\) is not a readable image: .*; fix or remove the file", path,
           read=2, eval_path=path)


def test_detector_config_reads_the_json_and_sizes_the_model(tmp_path):
    path = write_coco(str(tmp_path), 4)
    config = load_config(f"configs/detector_shapes.py:smoke,data={path}")
    assert config.dataset.name == "coco_json" and config.model.num_classes == 2
    assert tuple(config.dataset.class_names) == ("red", "blue")
    with pytest.raises(ConfigError, match=r"a folder path is not a format this config reads; "
                                          r"give one of: json"):
        load_config(f"configs/detector_shapes.py:data={tmp_path}")


def test_detector_overfits_a_small_json(tmp_path):
    """16 grey pictures, one red or blue square each; trained and scored on the same file,
    so the detector must find and name every square: mAP50 near 1 (an untrained one, whose
    objectness starts at 1%, scores near 0)."""
    path = write_coco(str(tmp_path / "data"), 16)
    config = load_config(f"configs/detector_shapes.py:smoke,data={path}")
    config.dataset.eval_path = path  # an overfit: score the training images
    config.dataset.augment = False
    config.num_train_steps = 40
    config.eval_every_steps = config.checkpoint_every_steps = 40
    config.log_every_steps = 10
    config.optimizer.warmup_steps = 5
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        losses = [r["train/loss"] for r in map(json.loads, f) if "train/loss" in r]
    assert losses[-1] < 0.2 * losses[0]
    assert summary["eval/coco/mAP50"] > 0.8
