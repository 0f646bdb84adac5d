"""A/B (stop 60): one train step with the input gradient on taps (a stride-1 unpadded
convolution of at most 8 channels: LeNet-5's conv2) summing its kh * kw shifted shares in
one pass (the code before: the transpose of `window_taps`) against two passes, over each
row's taps and then over the rows (`taps._input_grad_by_taps` now), in one process; prints
ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/input_grad_separable_ab.py TARGET

TARGET as in keep_in_memory_ab.py (lenet5:128).
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dl_arch.models.cnn import taps  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build, compare_settings  # noqa: E402

NOW = taps._input_grad_by_taps


def one_pass(x_BHWC, kernel, dy_BHWF):
    """_input_grad_by_taps as it was: every share sent back through its tap's slice."""
    kh, kw, channels, features = kernel.shape
    per_tap = jax.lax.dot_general(dy_BHWF.reshape(-1, features),
                                  kernel.reshape(kh * kw * channels, features),
                                  (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    per_tap = per_tap.reshape(*dy_BHWF.shape[:3], kh * kw, channels)
    _, back = jax.vjp(lambda x: taps.window_taps(x, (kh, kw), (1, 1), ((0, 0), (0, 0))),
                      x_BHWC.astype(per_tap.dtype))
    (dx,) = back([per_tap[..., t, :] for t in range(kh * kw)])
    return dx


if __name__ == "__main__":
    compare_settings(sys.argv[1], [("one pass", one_pass), ("two passes", NOW)],
                     lambda f: setattr(taps, "_input_grad_by_taps", f), build)
