"""Small matplotlib helpers shared by tasks (headless: the Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_confusion_matrix(confusion: np.ndarray, path: str,
                          class_names: Sequence[str] | None = None) -> None:
    """Row-normalised confusion matrix [true, predicted] as a PNG heat map."""
    n = confusion.shape[0]
    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    size = min(12, 2 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (rows normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_image_grid(images: np.ndarray, path: str, ncols: int = 8, titles: Sequence[str] | None = None
                    ) -> np.ndarray:
    """Saves N images (NHWC floats in [0, 1]) as one PNG grid; returns the grid as HWC uint8."""
    images = np.clip(np.asarray(images, np.float32), 0, 1)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, c = images.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    grid = np.ones((nrows * (h + 2) + 2, ncols * (w + 2) + 2, c), np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        grid[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = img
    grid_u8 = (grid * 255).astype(np.uint8)
    plt.imsave(path, grid_u8)
    return grid_u8
