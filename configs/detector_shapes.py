"""Single-shot detector on procedural `shapes` scenes (offline; a few minutes on CPU).

Every 64x64 image holds `num_objects` coloured shapes of `num_classes` kinds with their
boxes; the detector is the tiny ResNet + FPN + anchor head of `dl_arch.models.detection`.

    python launch.py --config=configs/detector_shapes.py --workdir=runs/detector_shapes
    python launch.py --config=configs/detector_shapes.py:smoke --workdir=/tmp/det_smoke
    python launch.py --config=configs/detector_shapes.py:focal=False --workdir=runs/det_ohem
    python launch.py --config=configs/detector_shapes.py:data=/data/boxes/train.json \
        --workdir=runs/det_mine

`data=PATH.json`: your boxes instead of `shapes`: a COCO-format JSON whose file_name entries
are relative to the JSON's folder (else set --config.dataset.image_dir), its images stretched
to image_size; the model gets one class per category (see dl_arch/data/sources/coco_json.py).
"""

import ml_collections

from configs.base import base_config, own_images, parse_options, shrink_for_smoke
from dl_arch.data.image_files import data_classes
from dl_arch.data.sources.shapes import SHAPE_NAMES


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=64, num_classes=4, num_objects=3, steps=1500,
                         focal=True, box_loss="both", width=16, data="")
    classes = data_classes(opts.data)  # a COCO JSON's categories
    num_classes = len(classes) if classes else opts.num_classes
    c = base_config()
    c.task.name = "detection"
    c.task.focal_loss = opts.focal  # True: sigmoid focal objectness; False: BCE + hard negatives
    c.task.focal_alpha = 0.25  # focal weight of positives
    c.task.focal_gamma = 2.0  # focal down-weighting of easy anchors
    c.task.neg_pos_ratio = 3.0  # focal=False: negatives kept per positive (SSD)
    c.task.min_negatives = 8  # focal=False: negatives kept per image even with no object
    c.task.pos_iou = 0.5  # anchors at IoU >= this with a box are positives
    c.task.neg_iou = 0.4  # anchors below this IoU with every box are negatives
    c.task.box_loss = opts.box_loss  # smooth_l1 | giou | both
    c.task.smooth_l1_beta = 1.0  # smooth-L1 switches from quadratic to linear here
    c.task.box_weight = 1.0  # weight of the box loss against objectness + class
    c.task.class_weight = 1.0  # weight of the class cross-entropy
    c.task.score_threshold = 0.05  # detections below this score are dropped before NMS
    c.task.nms_iou = 0.5  # same-class boxes above this IoU with a better one are removed
    c.task.max_detections = 100  # fixed number of detections per image after NMS
    c.task.pre_nms_top_k = 400  # best (anchor, class) candidates entering NMS
    c.task.score_bins = 1000  # resolution of the in-loop AP histograms
    # pictures of predicted boxes at each eval; exact COCO AP -> detection_metrics.json at the end
    c.evaluators = ("detections", "coco_ap")
    c.detections = ml_collections.ConfigDict(dict(
        report_images=8,  # images drawn with predicted boxes
        draw_min_score=0.3))  # boxes drawn in the pictures need at least this score

    c.model = dict(
        name="ssd_tiny",
        num_classes=num_classes,
        backbone="resnet18",  # a registered ResNet; its blocks per stage are overridden below
        backbone_features=(),  # () = ResNet stages; other family CNNs: their sown map names
        backbone_width=opts.width,  # channels of the first stage (64 in the real ResNet-18)
        backbone_stage_sizes=(1, 1, 1, 1),  # one basic block per stage (stage 4 unused: not built)
        backbone_stem="imagenet",  # 7x7/2 conv + max pool: stage strides 4, 8, 16, 32
        feature_stages=(1, 2, 3),  # 16x16, 8x8, 4x4 feature maps for 64x64 images
        extra_levels=0,  # no SSD extra levels: objects are at most half the image
        fpn=True,  # top-down merge of coarse levels into fine ones
        head_width=32,  # channels of the shared head
        head_depth=1,  # conv layers per head tower
        anchor_sizes=(0.12, 0.25, 0.5),  # anchor side per level (fraction of the image)
        anchor_scales=(1.0, 1.41),  # each size also at sqrt(2) x
        aspect_ratios=(1.0,),  # shapes are about square
        prior_prob=0.01,  # initial objectness probability
    )
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size  # square RGB images
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.class_names = SHAPE_NAMES[: opts.num_classes]  # labels in the pictures
    c.dataset.num_objects = opts.num_objects  # objects per image
    c.dataset.max_objects = opts.num_objects  # boxes per example (padded with label -1)
    c.dataset.min_size = 0.2  # object diameter range, fraction of the image
    c.dataset.max_size = 0.45
    c.dataset.noise = 0.05  # pixel noise std
    c.dataset.augment = True  # random scale-crop and horizontal flip (train only)
    c.dataset.flip_prob = 0.5
    c.dataset.crop_prob = 0.3
    c.dataset.min_crop_scale = 0.6  # smallest crop side (fraction of the image)
    c.dataset.max_crop_aspect = 1.3  # crop aspect jitter
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 500

    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 10.0  # early focal-loss steps can spike
    if opts.smoke:
        shrink_for_smoke(c, steps=6)
        c.batch_size = 8
        c.dataset.num_eval_examples = 16
        c.detections.report_images = 2
        c.task.pre_nms_top_k = 100
        # a 3-stage backbone on 32x32 images: two levels (4x4, 2x2), fast to compile
        c.dataset.image_size = 32
        c.dataset.min_size, c.dataset.max_size = 0.3, 0.6
        c.model.backbone_stage_sizes = (1, 1, 1)
        c.model.feature_stages = (2, 3)
        c.model.anchor_sizes = (0.3, 0.6)
    if opts.data:
        own_images(c, opts.data, classes, c.dataset.image_size, 3, labelled=False,
                   sources={"json": "coco_json"})
    return c
