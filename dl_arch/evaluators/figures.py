"""Matplotlib figures rendered to images (headless), for evaluators to return.

pyplot is imported on first use: importing it costs about a second, which every run and
every `launch.py` process would pay when the registry imports all evaluators.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pyplot() -> Any:
    """`matplotlib.pyplot` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_image(fig: Any) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 image (HWC); the figure is closed."""
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    pyplot().close(fig)
    return image
