"""Raw labelled examples of a split as numpy arrays, for evaluators that compare with data."""

from __future__ import annotations

from typing import Any

import numpy as np


def load_examples(dataset_config: Any, split: str, seed: int, count: int, start: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`count` (image in [0, 1], label) pairs of a split from index `start`, as numpy arrays
    (no augmentation or normalisation: the images a generator is compared with).

    A split shorter than `start + count` gives its last `count` examples (or all of them).
    """
    from dl_arch.data.loader import standardize
    from dl_arch.data.pipeline import make_source

    source = make_source(dataset_config, split, seed)
    count = min(count, len(source))
    start = max(0, min(start, len(source) - count))
    examples = [standardize(dict(source[i])) for i in range(start, start + count)]
    images = np.stack([np.asarray(e["image"], np.float32) for e in examples])
    labels = np.asarray([int(np.asarray(e["label"])) if "label" in e else 0 for e in examples],
                        np.int32)
    return images, labels
