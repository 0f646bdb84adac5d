"""TFDS segmentation datasets (`oxford_iiit_pet`, `scene_parse150`, `cityscapes`) mapped to
the segmentation keys: `image` uint8 HWC as stored, `mask` int32 [H, W] of class indices
with `IGNORE_LABEL` (255) for pixels that count nowhere.

Each dataset's own label values become classes through a 256-entry lookup table; a value
the table does not name (none in real data; TFDS mock data draws any byte) is ignored.
Resizing happens in the task's preprocessing (`dl_arch.data.mask_augment`), image and mask
together, so no pixel is resampled twice.

- `oxford_iiit_pet`: the `segmentation_mask` trimap (1 pet, 2 background, 3 border) ->
  0 background, 1 pet, 2 border; `border='ignore'` makes border pixels IGNORE_LABEL (2
  classes: the usual benchmark setting, as the border is the annotators' uncertain band).
- `scene_parse150`: ADE20K scenes. TFDS builds it from the Places Challenge 2017
  *instance* annotations (`annotations_instance`): `annotation` is RGB, its red channel
  the category among 100 object categories (1..100, `ADE_INSTANCE_CLASSES`; 0 = none of
  them: walls, floor, sky...), its green channel the instance (dropped). So it is not the
  150-class scene-parsing map: classes are the 100 objects, with 0 ignored (`other=
  'ignore'`, classes 0..99) or a background class (`other='class'`, 0 + 1..100).
- `cityscapes`: `segmentation_label` (Cityscapes label ids, 0..33) -> the 19 train ids of
  the benchmark (`CITYSCAPES_CLASSES`), every other id ignored; TFDS needs the zip files
  downloaded by hand (login) into its manual folder; the eval split is `validation` (the
  test split's labels are withheld).
All three read through `tfds.data_source` without TensorFlow once prepared.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.data.masks import IGNORE_LABEL, resize_nearest
from dl_arch.data.tfds_source import TFDS_FIELDS, tfds_source
from dl_arch.registry import register_dataset

PET_CLASSES = ("background", "pet", "border")
BORDER_MODES = ("class", "ignore")
# instanceInfo100 of the Places Challenge 2017: the red channel's categories 1..100, in order
ADE_INSTANCE_CLASSES = (
    "bed", "windowpane", "cabinet", "person", "door", "table", "curtain", "chair", "car",
    "painting", "sofa", "shelf", "mirror", "armchair", "seat", "fence", "desk", "wardrobe",
    "lamp", "bathtub", "railing", "cushion", "box", "column", "signboard", "chest of drawers",
    "counter", "sink", "fireplace", "refrigerator", "stairs", "case", "pool table", "pillow",
    "screen door", "bookcase", "coffee table", "toilet", "flower", "book", "bench", "countertop",
    "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "arcade machine",
    "bus", "towel", "light", "truck", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "apparel", "pole", "bannister", "ottoman", "bottle",
    "van", "ship", "fountain", "washer", "plaything", "stool", "barrel", "basket", "bag",
    "minibike", "oven", "ball", "food", "step", "trade name", "microwave", "pot", "animal",
    "bicycle", "dishwasher", "screen", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "plate", "monitor", "bulletin board", "radiator", "glass", "clock",
    "flag")
OTHER_MODES = ("ignore", "class")
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle")
# Cityscapes label id -> train id, for the 19 evaluated classes (all other ids: ignore)
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                         23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def lookup_table(classes: dict[int, int]) -> np.ndarray:
    """int32 [256]: stored label value -> class index; values not in `classes` -> ignore."""
    table = np.full(256, IGNORE_LABEL, np.int32)
    for value, cls in classes.items():
        table[value] = cls
    return table


def pet_classes(border: str) -> tuple[str, ...]:
    """The class names of `oxford_iiit_pet` for its `border` mode."""
    return PET_CLASSES if border == "class" else PET_CLASSES[:2]


def pet_table(border: str) -> np.ndarray:
    """The trimap (1 pet, 2 background, 3 border) as classes (see the module doc)."""
    return lookup_table({1: 1, 2: 0, 3: 2 if border == "class" else IGNORE_LABEL})


def ade_classes(other: str) -> tuple[str, ...]:
    """The class names of `scene_parse150` for its `other` mode."""
    return ADE_INSTANCE_CLASSES if other == "ignore" else ("other",) + ADE_INSTANCE_CLASSES


def ade_table(other: str) -> np.ndarray:
    """The red channel's category (0 none, 1..100) as classes (see the module doc)."""
    shift = 1 if other == "ignore" else 0
    classes = {k: k - shift for k in range(1, len(ADE_INSTANCE_CLASSES) + 1)}
    if other == "class":
        classes[0] = 0
    return lookup_table(classes)


def to_segmentation_example(image: np.ndarray, labels: np.ndarray, table: np.ndarray
                            ) -> dict[str, Any]:
    """A TFDS image and its label map ([H, W] or [H, W, 1], uint8) -> `image` (3 channels)
    and `mask` int32 [H, W] through `table`."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[..., 0]
    mask = table[labels]
    if mask.shape != image.shape[:2]:  # real data: never; TFDS mock data draws sizes apart
        mask = resize_nearest(mask, *image.shape[:2])
    return {"image": image, "mask": mask}


class SegmentationTFDS:
    """Random-access view of a TFDS split as (image, mask) examples."""

    def __init__(self, source: Any, image_key: str, label_key: str, channel: int,
                 table: np.ndarray, class_names: tuple[str, ...]):
        self._source = source
        self.image_key, self.label_key, self.channel = image_key, label_key, channel
        self.table, self.class_names = table, class_names
        self.num_classes = len(class_names)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self._source[index]
        labels = np.asarray(example[self.label_key])
        if labels.ndim == 3:
            labels = labels[..., self.channel]
        return to_segmentation_example(example[self.image_key], labels, self.table)


def _open(dataset_config: Any, split: str) -> Any:
    return tfds_source(ml_collections.ConfigDict({
        "name": f"tfds:{dataset_config.tfds_name}", "data_dir": dataset_config.data_dir,
        "download": dataset_config.download}), split)


@register_dataset("oxford_iiit_pet", fields={
    "tfds_name": Field("oxford_iiit_pet", "TFDS name (and version) of the Oxford-IIIT Pet data"),
    **TFDS_FIELDS,
    "border": Field("class", "the trimap's border band: class (class 2 of 3) | ignore (255: 2 "
                             "classes, background and pet)", choices=BORDER_MODES)})
def oxford_iiit_pet(dataset_config: Any, split: str, seed: int) -> SegmentationTFDS:
    """Oxford-IIIT Pet trimaps: background, pet and (unless ignored) border."""
    border = dataset_config.border
    return SegmentationTFDS(_open(dataset_config, split), "image", "segmentation_mask", 0,
                            pet_table(border), pet_classes(border))


@register_dataset("scene_parse150", fields={
    "tfds_name": Field("scene_parse150", "TFDS name (and version) of the ADE20K scenes"),
    **TFDS_FIELDS,
    "other": Field("ignore", "pixels of none of the 100 object categories: ignore (255; classes "
                             "0..99) | class (class 0; the objects 1..100)", choices=OTHER_MODES)})
def scene_parse150(dataset_config: Any, split: str, seed: int) -> SegmentationTFDS:
    """ADE20K scenes with TFDS's instance annotations: 100 object categories (module doc)."""
    other = dataset_config.other
    return SegmentationTFDS(_open(dataset_config, split), "image", "annotation", 0,
                            ade_table(other), ade_classes(other))


@register_dataset("cityscapes", fields={
    "tfds_name": Field("cityscapes/semantic_segmentation", "TFDS name of the Cityscapes config "
                                                           "with fine labels"),
    **TFDS_FIELDS,
    "eval_split": Field("validation", "split name to evaluate on (test labels are withheld)")})
def cityscapes(dataset_config: Any, split: str, seed: int) -> SegmentationTFDS:
    """Cityscapes street scenes: the 19 benchmark classes, every other label ignored."""
    return SegmentationTFDS(_open(dataset_config, split), "image_left", "segmentation_label", 0,
                            lookup_table(CITYSCAPES_TRAIN_IDS), CITYSCAPES_CLASSES)
