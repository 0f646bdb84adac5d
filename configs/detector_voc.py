"""SSD-style detector (ResNet-18 + FPN, 5 levels) on PASCAL VOC 2007 (TFDS `voc/2007`).

Trains on VOC2007 trainval, evaluates on VOC2007 test (COCO-style AP; mAP50 is the VOC
metric without the "difficult" boxes). Needs `voc/2007` prepared for TFDS once (network
and `pip install 'dl_arch[tfds]'`). Starting from an ImageNet ResNet-18 run helps a lot:
add `--config.init_from=<workdir of a resnet18 ImageNet run>`.

    python launch.py --config=configs/detector_voc.py --workdir=runs/detector_voc
    python launch.py --config=configs/detector_voc.py:smoke --workdir=/tmp/det_voc_smoke
"""

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=320, backbone="resnet18", steps=60_000, focal=True)
    return tfds_detector_config(opts)


def tfds_detector_config(opts):
    """The VOC recipe; `configs/detector_coco.py` starts from it and swaps the dataset."""
    c = base_config()
    c.task.name = "detection"
    c.task.focal_loss = opts.focal  # True: sigmoid focal objectness; False: BCE + hard negatives
    c.task.focal_alpha = 0.25  # focal weight of positives
    c.task.focal_gamma = 2.0  # focal down-weighting of easy anchors
    c.task.neg_pos_ratio = 3.0  # focal=False: negatives kept per positive (SSD)
    c.task.min_negatives = 8  # focal=False: negatives kept per image even with no object
    c.task.pos_iou = 0.5  # anchors at IoU >= this with a box are positives
    c.task.neg_iou = 0.4  # anchors below this IoU with every box are negatives
    c.task.box_loss = "both"  # smooth_l1 | giou | both
    c.task.smooth_l1_beta = 1.0  # smooth-L1 switches from quadratic to linear here
    c.task.box_weight = 1.0  # weight of the box loss against objectness + class
    c.task.class_weight = 1.0  # weight of the class cross-entropy
    c.task.score_threshold = 0.05  # detections below this score are dropped before NMS
    c.task.nms_iou = 0.5  # same-class boxes above this IoU with a better one are removed
    c.task.max_detections = 100  # fixed number of detections per image after NMS
    c.task.pre_nms_top_k = 1000  # best (anchor, class) candidates entering NMS
    c.task.score_bins = 1000  # resolution of the in-loop AP histograms
    # pictures of predicted boxes at each eval; exact COCO AP -> detection_metrics.json at the end
    c.evaluators = ("detections", "coco_ap")
    c.detections = ml_collections.ConfigDict(dict(
        report_images=8,  # images drawn with predicted boxes
        draw_min_score=0.3))  # boxes drawn in the pictures need at least this score

    c.model = dict(
        name="ssd_resnet18",  # the backbone field below picks the ResNet
        num_classes=len(VOC_CLASSES),
        backbone=opts.backbone,  # any registered ResNet: resnet18 | resnet34 | resnet50 | ...
        backbone_features=(),  # other family CNNs: names of their sown maps, e.g. mobilenet_v2
        # with ("group3", "group5", "group7"); () reads a ResNet's feature_stages directly
        feature_stages=(2, 3, 4),  # strides 8, 16, 32
        extra_levels=2,  # SSD extra levels: strides 64, 128 for large objects
        fpn=True,  # top-down merge of coarse levels into fine ones
        head_width=128,  # channels of the shared head
        head_depth=2,  # conv layers per head tower
        anchor_size_factor=4.0,  # anchor side = 4 cells of its level (RetinaNet)
        anchor_scales=(1.0, 1.41),  # each size also at sqrt(2) x
        aspect_ratios=(0.5, 1.0, 2.0),  # h / w
        prior_prob=0.01,  # initial objectness probability
    )
    c.dataset.name = "voc"  # dl_arch/data/sources/detection_tfds.py
    c.dataset.tfds_name = "voc/2007"
    c.dataset.train_split = "train+validation"  # VOC2007 trainval
    c.dataset.eval_split = "test"
    c.dataset.class_names = VOC_CLASSES  # labels in the pictures and per-class AP
    c.dataset.image_size = opts.image_size  # images are resized to a square of this side
    c.dataset.max_objects = 50  # boxes per example (padded with label -1)
    c.dataset.keep_difficult = False  # VOC "difficult" boxes are left out, as in VOC eval
    c.dataset.augment = True  # random scale-crop and horizontal flip (train only)
    c.dataset.flip_prob = 0.5
    c.dataset.crop_prob = 0.7
    c.dataset.min_crop_scale = 0.3  # smallest crop side (fraction of the image)
    c.dataset.max_crop_aspect = 2.0  # crop aspect jitter
    c.dataset.num_workers = 8  # grain worker processes for decoding and augmentation

    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.eval_max_batches = 20  # in-loop and final eval on 640 test images (0 = all 4952)
    c.checkpoint_every_steps = 5000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 1000
    c.optimizer.clip_norm = 10.0
    if opts.smoke:
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
        c.eval_max_batches = 1
        c.dataset.num_workers = 0
        c.dataset.image_size = 64
        c.detections.report_images = 2
        c.task.pre_nms_top_k = 100
        c.model.name = "ssd_tiny"
        c.model.backbone_stage_sizes = (1, 1, 1)
        c.model.feature_stages = (2, 3)
        c.model.extra_levels = 0
        c.model.head_width = 16
        c.model.head_depth = 1
    return c
