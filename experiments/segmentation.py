"""Study: do skip connections recover fine detail? Segmenters compared on `shapes` masks.

Claims tested: a decoder that sees the encoder's high-resolution maps (U-Net's skips,
FCN-8s's pool3/pool4 scores) draws sharper boundaries and finds small objects that a
decoder upsampling only the coarsest map (U-Net without skips, FCN-32s) blurs away; and a
ViT segmenter, whose only spatial detail is its patch grid, behaves like the coarse CNNs.
Every model trains on the same offline scenes (64x64 RGB, three shapes of four kinds
from 15% to 50% of the image side, classes background + kinds; eval on 512 fixed scenes)
with the same recipe (AdamW, warmup-cosine, batch 32, `steps` steps; the ViT at lr 1e-3
on 8x8 patches, the 8x8 grid of DeepLabV3, the CNNs at 3e-3). Report: mean IoU, per-class
IoU (the thin star and the others), IoU of small / medium / large objects (`iou_by_size`:
objects under 2% of the image, 2-6%, over 6%), parameters, FLOPs per step and images/s.

    python launch.py --experiment=experiments/segmentation.py --workdir=runs/segmentation
    python launch.py --experiment=experiments/segmentation.py:smoke --workdir=/tmp/seg_study

Default size: 6 runs, 35 minutes with --parallel=2 on a 2-core CPU shared with other jobs
(load average 4-16); report in docs/results/segmentation.
Options: smoke, seeds (count), steps.
"""

import ml_collections

from configs.base import parse_options

# trial label -> (config, its options): the CPU-sized offline configs of the family
TRIALS = {
    "unet": ("configs/unet_shapes.py", ""),
    "unet_noskip": ("configs/unet_shapes.py", "skips=False"),
    "fcn8s": ("configs/fcn_shapes.py", "stride=8"),
    "fcn32s": ("configs/fcn_shapes.py", "stride=32"),
    "deeplabv3": ("configs/deeplabv3_shapes.py", ""),
    "vit_segmenter": ("configs/vit_segmenter_shapes.py", ""),
}


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: segmenter x seeds, one recipe."""
    opts = parse_options(arg, seeds=1, steps=1000)
    seeds, steps = list(range(opts.seeds)), opts.steps
    trials = []
    for label, (config, options) in TRIALS.items():
        parts = [p for p in (options, f"steps={steps}", "smoke" if opts.smoke else "") if p]
        trials.append({"name": label, "config": f"{config}:{','.join(parts)}",
                       "params": {"model": label, "batch_size": 8 if opts.smoke else 32}})
    e = ml_collections.ConfigDict()
    e.title = "Segmenters on shapes masks: do skip connections recover fine detail?"
    e.trials = trials
    e.seeds = seeds
    e.derived = [{"name": "images_per_sec", "kind": "scale", "metric": "steps_per_sec",
                  "factor": "batch_size"}]
    e.metrics = ["eval/mean_iou:max", "eval/pixel_accuracy:max", "eval/iou_small:max",
                 "eval/iou_medium:max", "eval/iou_large:max", "eval/iou/star:max",
                 "num_params:min", "flops_per_step:min", "images_per_sec:max", "wall_time_s:min"]
    e.plots = [
        {"name": "mean_iou", "kind": "bar", "y": "eval/mean_iou", "title": "Eval mean IoU"},
        {"name": "iou_by_size", "kind": "bar", "y": "eval/iou_small",
         "title": "IoU of small objects (< 2% of the image)"},
        {"name": "iou_vs_params", "kind": "metric", "x": "num_params", "y": "eval/mean_iou",
         "group": "model", "logx": True, "lines": False, "title": "Mean IoU vs parameters"},
        {"name": "learning_curves", "kind": "curves", "y": "eval/mean_iou",
         "title": "Eval mean IoU during training"},
    ]
    return e
