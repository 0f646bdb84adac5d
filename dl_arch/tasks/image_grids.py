"""Pictures of generative models: image grids, comparison rows, latent scatter plots.

Everything here is host-side numpy/matplotlib. Pictures are uint8 HWC arrays that the
evaluators (`dl_arch.evaluators`) return and the loop writes as PNG files and to TensorBoard;
`save_samples` writes the grid of `launch.py --sample`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dl_arch.config.fields import Field, Fields

# `config.sample` of the tasks whose `sample()` draws images (gan, autoencoding with a VAE).
IMAGE_SAMPLE_FIELDS: Fields = {
    "num_samples": Field(64, "images drawn by --sample", low=1),
    "seed": Field(0, "seed of the noise the images are drawn from"),
    "output": Field("", "PNG file for the grid of samples ('': do not save)"),
    "ncols": Field(8, "images per row of the saved grid", low=1),
}


def to_uint8(images: Any) -> np.ndarray:
    """Float images in [0, 1] (any shape) -> uint8, clipped."""
    return (np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _rgb(images_NHWC: np.ndarray) -> np.ndarray:
    """Grayscale images become three identical channels so every grid is RGB."""
    images_NHWC = np.asarray(images_NHWC, np.float32)
    if images_NHWC.ndim == 3:
        images_NHWC = images_NHWC[..., None]
    if images_NHWC.shape[-1] == 1:
        images_NHWC = np.repeat(images_NHWC, 3, axis=-1)
    return images_NHWC


def make_grid(images_NHWC: Any, ncols: int, pad: int = 1, pad_value: float = 1.0,
              min_cell: int = 48) -> np.ndarray:
    """Tiles N images (floats in [0, 1]) row by row into one uint8 RGB picture.

    Small images are enlarged by an integer nearest-neighbour factor so cells are at least
    `min_cell` pixels wide and stay sharp when viewed.
    """
    images = _rgb(images_NHWC)
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    scale = max(1, -(-min_cell // max(h, w)))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return to_uint8(grid)


def comparison_grid(rows: Sequence[Any], ncols: int = 8, **kwargs: Any) -> np.ndarray:
    """Stacks aligned image sets (e.g. input, noisy, reconstruction) as bands of rows.

    For each block of `ncols` examples, one row per set, so each column shows one example
    and what the model made of it.
    """
    rows = [_rgb(r) for r in rows]
    n = min(len(r) for r in rows)
    tiles = []
    for start in range(0, n, ncols):
        for r in rows:
            block = r[start:start + ncols]
            if len(block) < ncols:  # blank cells keep the columns aligned
                block = np.concatenate([block, np.ones((ncols - len(block),) + block.shape[1:],
                                                       np.float32)])
            tiles.append(block)
    return make_grid(np.concatenate(tiles), ncols, **kwargs)


def interpolate(a: np.ndarray, b: np.ndarray, num: int) -> np.ndarray:
    """`num` points on the straight line from latent a to latent b (both ends included)."""
    t = np.linspace(0.0, 1.0, num, dtype=np.float32)[:, None]
    return (1.0 - t) * np.asarray(a, np.float32)[None] + t * np.asarray(b, np.float32)[None]


def scatter_image(points_N2: Any, labels_N: Any | None, title: str = "",
                  class_names: Sequence[str] | None = None) -> np.ndarray:
    """A 2-D scatter plot of latent codes coloured by class, rendered to uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = np.asarray(points_N2, np.float32)
    fig = Figure(figsize=(5, 5), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if labels_N is None:
        ax.scatter(points[:, 0], points[:, 1], s=6)
    else:
        labels = np.asarray(labels_N).astype(int)
        sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6,
                        vmin=-0.5, vmax=9.5)
        classes = np.unique(labels)
        handles = [ax.scatter([], [], color=sc.cmap(sc.norm(k)), s=12) for k in classes]
        names = [class_names[k] if class_names and k < len(class_names) else str(k)
                 for k in classes]
        ax.legend(handles, names, fontsize=7, loc="best", markerscale=1.5)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_samples(images_NHWC: np.ndarray, sample_config: Any, workdir: str = "") -> np.ndarray:
    """`launch.py --sample`: writes the images as a grid PNG to `config.sample.output`
    (a relative path lies under `workdir` when one is given)."""
    path = sample_config.output
    if path:
        import matplotlib.image

        path = os.path.join(workdir, path) if workdir else path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        matplotlib.image.imsave(path, make_grid(images_NHWC, int(sample_config.ncols)))
        print(f"wrote {len(images_NHWC)} samples to {os.path.abspath(path)}")
    return images_NHWC
