"""A user's images fed to LeNet-5: a folder of PNGs against an .npz of the same images.

For each source and `num_workers` 0 and 2, in one process: examples/s of the training
stream alone (`Trainer.train_dataset`, LeNet-5's preprocessing included), and steps/s of a
whole LeNet-5 run (`train_and_evaluate` through `configs/lenet5_shapes.py:data=PATH`)
against its bare loop step on one device-resident batch. The files are written to a
temporary folder first: 10,000 32x32 RGB images (2,000 with --quick).
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from benchmarks.bench_loop import bare_steps_per_sec, loop_run
from benchmarks.harness import Row
from dl_arch.config.resolve import resolve_config
from dl_arch.testing import load_config
from dl_arch.train.trainer import Trainer


def write_images(root: str, count: int) -> tuple[str, str]:
    """(folder with one sub-folder per class, .npz with `image` and `label`) of the same
    `count` random 32x32 RGB images of two classes (dark and bright)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, count).astype(np.int32)
    images = (rng.random((count, 32, 32, 3)) * 120 + labels[:, None, None, None] * 120).astype(np.uint8)
    folder = os.path.join(root, "images")
    for k in (0, 1):
        os.makedirs(os.path.join(folder, f"class_{k}"), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(os.path.join(folder, f"class_{label}", f"{i:05d}.png"))
    npz = os.path.join(root, "images.npz")
    np.savez(npz, image=images, label=labels)
    return folder, npz


def _config(path: str, workers: int, steps: int):
    config = resolve_config(load_config(f"configs/lenet5_shapes.py:data={path}"),
                            [("evaluators", ())])  # no pictures
    config.dataset.num_workers = workers
    config.num_train_steps = steps
    config.eval_every_steps = steps
    config.checkpoint_every_steps = steps
    config.log_every_steps = 50
    config.eval_max_batches = 1
    config.progress = "none"
    return config


def examples_per_sec(config, batches: int) -> float:
    """Examples/s of the training stream alone (after two warm-up batches)."""
    stream = iter(Trainer(config).train_dataset())
    for _ in range(2):
        next(stream)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * config.batch_size / (time.perf_counter() - t0)


def rows(quick: bool):
    count, steps = (2000, 100) if quick else (10000, 300)
    with tempfile.TemporaryDirectory() as root:
        folder, npz = write_images(root, count)
        for name, path in (("png folder", folder), ("npz", npz)):
            for workers in (0, 2):
                config = _config(path, workers, steps)
                rate = examples_per_sec(config, 20 if quick else 60)
                loop, wait, busy = loop_run(config)[:3]
                bare = bare_steps_per_sec(config, steps)
                yield Row(f"own data: lenet5 {name} workers={workers}", 1.0 / loop, 1.0 / bare,
                          "bare step", extra=f"stream={rate:,.0f} ex/s loop={loop:.0f} steps/s "
                                             f"bare={bare:.0f} steps/s loop/bare={loop / bare:.2f} "
                                             f"input_wait={wait:.0%} input_busy={busy:.0%}")
