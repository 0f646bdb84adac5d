"""`coco_json`: a user's boxes in a COCO-format JSON with its image folder, for the detector.

    my_boxes/
      train.json   {"images": [{"id", "file_name", "width", "height"}, ...],
                    "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h]}, ...],
                    "categories": [{"id", "name"}, ...]}
      images/...   (file_name is relative to image_dir; '' = the JSON's folder)

The JSON is read with pycocotools (its index of images, annotations and categories) after a
check of every entry, so a malformed file fails in one line before training. Category ids
of `path`'s JSON, sorted, become labels 0..K-1 (an `eval_path` JSON is mapped with the same
table); boxes become the project's convention: (ymin, xmin, ymax, xmax) in [0, 1] from the
JSON's pixel `bbox` and image size, padded to `max_objects` with label -1 (see
`dl_arch.data.sources.detection_tfds`). Images are decoded as RGB and stretched to
`image_size` (boxes stay normalised); `label` is the class of the largest box (0 if none).
Crowd boxes (iscrowd=1) are left out unless `keep_crowd` (the AP here has no crowd
matching), with their count logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.image_files import fit_image, read_image
from dl_arch.data.user_files import USER_FILE_FIELDS, check_class_count, path_of, require, user_split
from dl_arch.registry import register_dataset

log = logging.getLogger("dl_arch")

# The keys every entry of each section needs (COCO's own names).
REQUIRED_KEYS = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}


def _read_json(json_path: str, where: str) -> dict[str, Any]:
    """The JSON's top-level object, each section's entries checked for COCO's keys."""
    if not os.path.isfile(json_path):
        raise ConfigError(f"{where} is not a file; give the COCO-format JSON of your boxes")
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not JSON ({e.msg} at line {e.lineno}); give a "
                          f"COCO-format JSON") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not a text file; give a COCO-format JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} holds a JSON {type(data).__name__}, not COCO's object of "
                          f"images, annotations and categories")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{where} lacks the key(s) {', '.join(missing)} (it has: "
                          f"{', '.join(map(str, data)) or 'none'}); a COCO JSON has images, "
                          f"annotations and categories")
    for section, keys in REQUIRED_KEYS.items():
        entries = data[section]
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: '{section}' is a {type(entries).__name__}, not a list")
        for k, entry in enumerate(entries):
            lacking = [key for key in keys if not isinstance(entry, dict) or key not in entry]
            if lacking:
                has = ", ".join(map(str, entry)) if isinstance(entry, dict) else repr(entry)
                raise ConfigError(f"{where}: {section}[{k}] lacks {', '.join(lacking)} (it has: "
                                  f"{has}); every entry needs {', '.join(keys)}")
        ids = [entry["id"] for entry in entries]
        if len(set(ids)) != len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"{where}: {section} id {twice!r} appears more than once")
    for section in ("images", "categories"):
        if not data[section]:
            raise ConfigError(f"{where} lists no {section}")
    return data


def load_coco(json_path: str, field: str) -> Any:
    """A pycocotools `COCO` index of the checked JSON at `config.dataset.<field>`."""
    from pycocotools.coco import COCO

    coco = COCO()  # no file: it is read and checked above, and COCO prints while loading
    coco.dataset = _read_json(json_path, f"config.dataset.{field}={json_path!r}")
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_categories(json_path: str, field: str) -> list[tuple[Any, str]]:
    """(category id, name) of a COCO JSON, sorted by id: label k is the k-th of them."""
    data = _read_json(json_path, f"config.dataset.{field}={json_path!r}")
    return sorted(((c["id"], str(c["name"])) for c in data["categories"]),
                  key=lambda c: c[0])


class CocoJson:
    """Every image of one COCO JSON with padded boxes; images decoded on each read."""

    def __init__(self, json_path: str, field: str, image_dir: str,
                 categories: list[tuple[Any, str]] | None, image_size: int, max_objects: int,
                 keep_crowd: bool):
        coco = load_coco(json_path, field)
        where = self.where = f"config.dataset.{field}={json_path!r}"
        if categories is None:
            categories = sorted(((c["id"], str(c["name"])) for c in coco.cats.values()),
                                key=lambda c: c[0])
        self.class_names = tuple(name for _, name in categories)
        label_of = {cid: k for k, (cid, _) in enumerate(categories)}
        stray = set(coco.imgToAnns) - set(coco.imgs)
        if stray:
            raise ConfigError(f"{where}: annotations refer to image id(s) "
                              f"{sorted(stray, key=str)[:5]} that 'images' does not list")
        self.files, self.sizes, self.labels, boxes, labels = [], [], [], [], []
        crowd = 0
        for index, image in enumerate(coco.dataset["images"]):
            height, width = image["height"], image["width"]
            if not all(isinstance(v, (int, float)) and v >= 1 and v == int(v)
                       for v in (height, width)):
                raise ConfigError(f"{where}: images[{index}] has height={height!r}, "
                                  f"width={width!r}; both must be positive whole pixels")
            height, width = int(height), int(width)
            file = os.path.join(image_dir, image["file_name"])
            if not os.path.isfile(file):
                raise ConfigError(f"{where}: images[{index}] file {file!r} does not exist; set "
                                  f"config.dataset.image_dir to the folder holding the images")
            self.files.append(file)
            self.sizes.append((height, width))
            rows, kinds, areas = [], [], []
            for ann in coco.imgToAnns[image["id"]]:
                if "iscrowd" in ann and ann["iscrowd"] and not keep_crowd:
                    crowd += 1
                    continue
                if ann["category_id"] not in label_of:
                    raise ConfigError(f"{where}: annotation {ann['id']!r} has category_id "
                                      f"{ann['category_id']!r}, not among the categories "
                                      f"{list(label_of)} of config.dataset.path")
                rows.append(self._box(ann, height, width))
                kinds.append(label_of[ann["category_id"]])
                areas.append(ann["bbox"][2] * ann["bbox"][3])
            boxes.append(np.asarray(rows, np.float32).reshape(-1, 4))
            labels.append(np.asarray(kinds, np.int32))
            # the image's label: its largest box's class (the first of equals), 0 when none
            self.labels.append(kinds[int(np.argmax(areas))] if kinds else 0)
        if crowd:
            log.info("%s: %d crowd annotation(s) left out (config.dataset.keep_crowd=True keeps "
                     "them)", where, crowd)
        most = max(len(k) for k in labels)
        if max_objects and most > max_objects:
            worst = int(np.argmax([len(k) for k in labels]))
            raise ConfigError(f"{where}: images[{worst}] ({self.files[worst]}) has {most} boxes "
                              f"but config.dataset.max_objects={max_objects}; raise it (0: the "
                              f"most boxes of any image)")
        self.max_objects = max_objects or max(most, 1)
        self.boxes = np.zeros((len(boxes), self.max_objects, 4), np.float32)
        self.box_labels = np.full((len(boxes), self.max_objects), -1, np.int32)
        for i, (b, k) in enumerate(zip(boxes, labels, strict=True)):
            self.boxes[i, : len(k)], self.box_labels[i, : len(k)] = b, k
        self.image_size = int(image_size)
        if not self.image_size and len(set(self.sizes)) > 1:
            other = next(i for i, s in enumerate(self.sizes) if s != self.sizes[0])
            raise ConfigError(f"{where}: images[{other}] is {self.sizes[other][0]}x"
                              f"{self.sizes[other][1]} but images[0] is {self.sizes[0][0]}x"
                              f"{self.sizes[0][1]}; set config.dataset.image_size to resize "
                              f"every image to one square size")

    def _box(self, ann: dict[str, Any], height: int, width: int) -> list[float]:
        """COCO's pixel [x, y, w, h] -> normalised (ymin, xmin, ymax, xmax), clipped to [0, 1]."""
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) for v in bbox)):
            raise ConfigError(f"{self.where}: annotation {ann['id']!r} has bbox={bbox!r}; COCO "
                              f"boxes are [x, y, width, height] in pixels")
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise ConfigError(f"{self.where}: annotation {ann['id']!r} has an empty box {bbox} "
                              f"(width and height must be > 0); fix or remove it")
        box = [y / height, x / width, (y + h) / height, (x + w) / width]
        return [min(max(v, 0.0), 1.0) for v in box]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        file = self.files[index]
        image = read_image(file, 3, f"{self.where}: images[{index}]")
        if image.shape[:2] != self.sizes[index]:
            raise ConfigError(f"{self.where}: images[{index}] ({file}) is {image.shape[0]}x"
                              f"{image.shape[1]} pixels but the JSON says {self.sizes[index][0]}x"
                              f"{self.sizes[index][1]} (height x width); the boxes would be off")
        return {"image": fit_image(image, self.image_size, "stretch"),
                "boxes": self.boxes[index].copy(), "box_labels": self.box_labels[index].copy(),
                "label": np.int32(self.labels[index])}


@register_dataset("coco_json", fields={
    **USER_FILE_FIELDS,
    "image_dir": Field("", "folder that the JSON's file_name entries are relative to ('': the "
                           "JSON's own folder)"),
    "eval_image_dir": Field("", "the same for eval_path ('': image_dir when set, else "
                                "eval_path's folder)"),
    "image_size": Field(0, "side of the square images (each stretched to it; boxes stay "
                           "normalised); 0: the files' size, which must then agree", low=0),
    "max_objects": Field(0, "box slots per example, padded with label -1 (0: the most boxes "
                            "of any image; an image with more is an error)", low=0),
    "num_classes": Field(0, "classes the model was built for: more categories in the JSON is "
                            "an error (0: no check)", low=0),
    "keep_crowd": Field(False, "keep iscrowd=1 boxes (left out by default, their count "
                               "logged: the AP here has no crowd matching)"),
})
def coco_json(dataset_config: Any, split: str, seed: int) -> Any:
    """Boxes of a COCO-format JSON and its images (module doc), split into train and eval."""
    c = dataset_config
    is_eval = bool(c.eval_path) and split != c.train_split
    json_path = path_of(c, split)
    # labels follow the categories of path's JSON, also when reading eval_path's
    categories = coco_categories(require(c.path, "path", "COCO JSON"), "path") if is_eval else None
    image_dir = (c.eval_image_dir or c.image_dir) if is_eval else c.image_dir
    reader = CocoJson(json_path, "eval_path" if is_eval else "path",
                      image_dir or os.path.dirname(os.path.abspath(json_path)), categories,
                      c.image_size, c.max_objects, c.keep_crowd)
    names = reader.class_names
    check_class_count(c, names, "categories")
    return user_split(reader, c, split)
