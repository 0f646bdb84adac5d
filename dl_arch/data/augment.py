"""Per-example image preprocessing and augmentation, applied in the grain pipeline.

`preprocess(example, rng, dataset_config, train)` is called for every example; `rng` is a
numpy Generator that is deterministic per (seed, index), so augmentation is reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def preprocess(example: dict[str, Any], rng: np.random.Generator, dataset_config: Any,
               train: bool) -> dict[str, Any]:
    """Returns the example unchanged; the CNN family fills in crop/flip/normalise."""
    return example
