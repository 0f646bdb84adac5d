"""Pictures of detections: predicted boxes with class and score over dashed ground truth
(the `detections` evaluator draws a grid of them at each eval)."""

from __future__ import annotations

import numpy as np

# ten well-separated colours; class k is drawn in colour k mod 10
_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
            "#bcf60c", "#008080", "#9a6324")


def draw_detections(image_HWC: np.ndarray, dets: dict[str, np.ndarray],
                    class_names: list[str], min_score: float, gt_boxes: np.ndarray | None = None
                    ) -> np.ndarray:
    """One image with predicted boxes (class: score) and dashed ground truth, as uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    image = np.clip(np.asarray(image_HWC, np.float32), 0, 1)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)
    h, w = image.shape[:2]
    fig = Figure(figsize=(3, 3), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, extent=(0, w, h, 0))
    ax.set_axis_off()
    for box in [] if gt_boxes is None else gt_boxes:
        y0, x0, y1, x1 = box * np.array([h, w, h, w])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="white", lw=1,
                               ls="--"))
    for box, score, cls, ok in zip(dets["boxes"], dets["scores"], dets["classes"], dets["valid"],
                                   strict=True):
        if not ok or score < min_score:
            continue
        y0, x0, y1, x1 = box * np.array([h, w, h, w])
        colour = _COLOURS[int(cls) % len(_COLOURS)]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=2))
        name = class_names[int(cls)] if int(cls) < len(class_names) else str(int(cls))
        ax.text(x0, y0, f"{name} {score:.2f}", color="white", fontsize=7, va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "lw": 0})
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def detection_grid(images_NHWC: np.ndarray, dets: dict[str, np.ndarray], gt_boxes_NG4: np.ndarray,
                   gt_labels_NG: np.ndarray, class_names: list[str], min_score: float,
                   ncols: int = 4) -> np.ndarray:
    """The first images of a batch with their detections (`draw_detections`), tiled."""
    from dl_arch.tasks.image_grids import make_grid

    pictures = []
    for i in range(len(images_NHWC)):
        gt = np.asarray(gt_boxes_NG4[i])[np.asarray(gt_labels_NG[i]) >= 0]
        pictures.append(draw_detections(images_NHWC[i], {k: v[i] for k, v in dets.items()},
                                        class_names, min_score, gt))
    # draw_detections renders uint8, make_grid tiles floats in [0, 1]
    return make_grid(np.stack(pictures).astype(np.float32) / 255.0, ncols=ncols)
