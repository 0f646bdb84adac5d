"""What grain's worker processes cost per array: batches a second that `mp_prefetch` with 2
workers hands over when each batch holds 4 small arrays (a `shapes` batch: image, label,
boxes, box_labels) against 2 (image, label), made by a trivial function so that only the
handover counts. Four rounds, one process (log: grain_handover_ab.log).
"""
import time

import grain
import numpy as np
from absl import flags

B = 128


def full(i):
    return {"image": np.full((B, 32, 32, 1), i, np.float32), "label": np.zeros(B, np.int32),
            "boxes": np.zeros((B, 4, 4), np.float32), "box_labels": np.zeros((B, 4), np.int32)}


def trimmed(i):
    batch = full(i)
    return {"image": batch["image"], "label": batch["label"]}


def rate(fn, n=3000):
    it = iter(grain.MapDataset.range(10**6).map(fn).to_iter_dataset().mp_prefetch(
        grain.MultiprocessingOptions(num_workers=2)))
    for _ in range(50):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    flags.FLAGS.mark_as_parsed()
    for rnd in range(4):
        for name, fn in (("4 arrays", full), ("2 arrays", trimmed)):
            print(rnd, name, f"{rate(fn):.0f} batches/s", flush=True)
