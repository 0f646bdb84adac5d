"""SSD-style detector (ResNet + FPN, 5 levels) on COCO 2017 (TFDS `coco/2017`).

Trains on train2017, evaluates on val2017 with the COCO protocol (crowd boxes left out,
see dl_arch/data/sources/detection_tfds.py). Reading COCO through TFDS needs TensorFlow
(`pip install 'dl_arch[tfds]'`) and the dataset prepared once. Starting from an ImageNet
ResNet run helps a lot: add `--config.init_from=<workdir of a ResNet ImageNet run>`.

    python launch.py --config=configs/detector_coco.py --workdir=runs/detector_coco
    python launch.py --config=configs/detector_coco.py:backbone=resnet50 --workdir=runs/det_coco50
    python launch.py --config=configs/detector_coco.py:smoke --workdir=/tmp/det_coco_smoke
"""

from configs.base import parse_options
from configs.detector_voc import tfds_detector_config

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=512, backbone="resnet18", steps=180_000, focal=True)
    c = tfds_detector_config(opts)
    c.model.num_classes = len(COCO_CLASSES)
    c.dataset.name = "coco"  # dl_arch/data/sources/detection_tfds.py
    c.dataset.tfds_name = "coco/2017"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"
    c.dataset.class_names = COCO_CLASSES  # labels in the pictures and per-class AP
    del c.dataset["keep_difficult"]  # VOC only
    c.dataset.max_objects = 100  # boxes per example (padded with label -1; COCO has <= 93)
    return c  # eval_max_batches=20: 640 of the 5,000 val images (0 = all)
