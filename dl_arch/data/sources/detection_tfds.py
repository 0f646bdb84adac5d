"""TFDS detection datasets (`voc`, `coco`) mapped to the standard detection keys.

TFDS gives `image` (uint8, any size) and `objects/{bbox, label, ...}` with a variable
number of boxes per image; the detection task needs fixed shapes, so each example
becomes `image`, `boxes` `[max_objects, 4]` (ymin, xmin, ymax, xmax in [0, 1]),
`box_labels` `[max_objects]` (-1 = padding) and `label` (class of the largest box).
Resizing to `image_size` happens in the task's `preprocess` (`dl_arch.data.box_augment`),
after the box-aware crop, so no pixel is resampled twice.

VOC "difficult" boxes are dropped unless `keep_difficult`, COCO crowd boxes always (the
host-side COCO metric has no crowd matching). Reading `coco` through `tfds.data_source`
needs TensorFlow installed (its TFDS builder declares features with `tf` dtypes); `voc`
needs only tensorflow-datasets once prepared.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.data.tfds_source import TFDS_FIELDS, tfds_source
from dl_arch.registry import register_dataset


def to_detection_example(example: dict[str, Any], max_objects: int, drop: np.ndarray | None
                         ) -> dict[str, Any]:
    """A TFDS detection example -> image, padded boxes/box_labels and the main label."""
    objects = example["objects"]
    boxes = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
    labels = np.asarray(objects["label"], np.int32).reshape(-1)
    flags = None if drop is None else np.asarray(drop, bool).reshape(-1)
    # per-object fields have one length in real data; TFDS mock data draws each at random
    n = min(len(boxes), len(labels), len(boxes) if flags is None else len(flags))
    boxes, labels = boxes[:n], labels[:n]
    if flags is not None:
        boxes, labels = boxes[~flags[:n]], labels[~flags[:n]]
    # (min, max) order per axis: real TFDS boxes already are; generated mock boxes are not
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                            np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-area, kind="stable")[:max_objects]  # largest first if truncated
    padded = np.zeros((max_objects, 4), np.float32)
    padded_labels = np.full((max_objects,), -1, np.int32)
    padded[: len(order)] = np.clip(boxes[order], 0.0, 1.0)
    padded_labels[: len(order)] = labels[order]
    image = np.asarray(example["image"])
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)  # a few COCO images are greyscale
    return {"image": image, "boxes": padded, "box_labels": padded_labels,
            "label": np.int32(padded_labels[0] if len(order) else 0)}


class DetectionTFDS:
    """Random-access view of a TFDS detection split with fixed-size box arrays."""

    def __init__(self, source: Any, max_objects: int, drop_key: str | None):
        self._source = source
        self.max_objects = int(max_objects)
        self.drop_key = drop_key

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self._source[index]
        objects = example["objects"]
        drop = objects[self.drop_key] if self.drop_key and self.drop_key in objects else None
        return to_detection_example(example, self.max_objects, drop)


def _open(dataset_config: Any, split: str) -> Any:
    return tfds_source(ml_collections.ConfigDict({
        "name": f"tfds:{dataset_config.tfds_name}", "data_dir": dataset_config.data_dir,
        "download": dataset_config.download}), split)


def _max_objects(default: int) -> Field:
    return Field(default, "box slots per example (padded with label -1; the largest boxes are "
                          "kept)", low=1)


@register_dataset("voc", fields={
    "tfds_name": Field("voc/2007", "TFDS name of the VOC release, e.g. 'voc/2012'"),
    **TFDS_FIELDS,
    "max_objects": _max_objects(50),
    "keep_difficult": Field(False, "keep the boxes VOC marks 'difficult' (VOC eval leaves them "
                                   "out)")})
def voc(dataset_config: Any, split: str, seed: int) -> DetectionTFDS:
    """PASCAL VOC: 20 classes; "difficult" boxes dropped unless `keep_difficult`."""
    drop = None if dataset_config.keep_difficult else "is_difficult"
    return DetectionTFDS(_open(dataset_config, split), dataset_config.max_objects, drop)


@register_dataset("coco", fields={
    "tfds_name": Field("coco/2017", "TFDS name of the COCO release"),
    **TFDS_FIELDS,
    "max_objects": _max_objects(100)})
def coco(dataset_config: Any, split: str, seed: int) -> DetectionTFDS:
    """COCO: 80 classes; crowd boxes always dropped (the COCO metric here has no crowd matching)."""
    return DetectionTFDS(_open(dataset_config, split), dataset_config.max_objects, "is_crowd")
