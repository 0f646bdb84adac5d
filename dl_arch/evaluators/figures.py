"""Matplotlib figures rendered to images (headless), for evaluators to return."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_image(fig: Any) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 image (HWC); the figure is closed."""
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
