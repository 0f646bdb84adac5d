"""A/B (stop 58): MobileNetV2's 1x1 convolutions through `taps.window_conv` (on CPU their
inputs of at least `KEEP_MIN_BYTES` kept in memory for the kernel gradients; landed) against
XLA's convolution as before, in one process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/pointwise_keep_ab.py TARGET...

TARGET as in keep_in_memory_ab.py (`mobilenet_v2:32`, `configs/mobilenet_v2_shapes.py`).
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dl_arch.models.cnn import mobilenet, taps  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build, print_rounds  # noqa: E402


def xla_for_1x1(lhs, rhs, *args, **kwargs):
    """window_conv, except a 1x1 kernel goes to XLA's convolution directly (before)."""
    if rhs.shape[:2] == (1, 1):
        return jax.lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
    return taps.window_conv(lhs, rhs, *args, **kwargs)


def main():
    runs = {}
    for target in sys.argv[1:]:
        for mode, conv in (("1x1 XLA", xla_for_1x1), ("1x1 window_conv", taps.window_conv)):
            mobilenet.window_conv = conv  # read when the model is traced
            run = build(target)
            first = round(float(jnp.ravel(jax.tree.leaves(run())[0])[0]), 5)
            print(target, mode, "first output", first, flush=True)
            runs[f"{target} {mode}"] = run
    print_rounds("", runs, 5)


if __name__ == "__main__":
    main()
