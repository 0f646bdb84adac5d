"""LeNet-5's CPU shortcuts in `taps.window_conv`, each against XLA's convolution (stop 52).

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-04/lenet_taps_ab.py

The benchmark's LeNet-5 train step (`benchmarks.bench_cnn.our_sgd_step`, batch 128, 28x28)
built four ways in one process: as is; conv1's forward as XLA's convolution
(`FEW_CHANNELS` 0); conv2's input gradient as XLA's (`FEW_CHANNELS_INPUT_GRAD` 0); both.
Medians of 9 alternated rounds of 40 steps.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import bench_cnn
from dl_arch.models.cnn import taps
from dl_arch.registry import MODELS

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((128, 28, 28, 1), dtype=np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 128).astype(np.int32))
    kept = (taps.FEW_CHANNELS, taps.FEW_CHANNELS_INPUT_GRAD)
    steps = {}
    for name, few, few_grad in [("as is", *kept), ("conv1 forward XLA's", 0, kept[1]),
                                ("conv2 input grad XLA's", kept[0], 0), ("both XLA's", 0, 0)]:
        taps.FEW_CHANNELS, taps.FEW_CHANNELS_INPUT_GRAD = few, few_grad
        run, _, _ = bench_cnn.our_sgd_step(MODELS.get("lenet5")(num_classes=10, stem="small"),
                                           images, labels)
        jax.block_until_ready(run())  # traced and compiled under this setting
        steps[name] = run
    taps.FEW_CHANNELS, taps.FEW_CHANNELS_INPUT_GRAD = kept
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(9):
        for name, run in steps.items():
            start = time.perf_counter()
            for _ in range(40):
                out = run()
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / 40 * 1e3)
    for name, ms in times.items():
        print(f"{name:24s} median {statistics.median(ms):6.2f} ms  {[round(t, 2) for t in ms]}")
