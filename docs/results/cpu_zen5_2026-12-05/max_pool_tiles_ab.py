"""A/B (stop 60): one train step with CPU max-pools over tiles (window == stride, no
padding: LeNet-5's, VGG's, the small AlexNet's) as a reshape and a reduction, whose gradient
is jax's for a maximum (the code before: every tap compared with its tile's maximum, the
ties counted, dy shared), against `taps.max_pool_by_taps` (as `common.max_pool` now runs
every CPU max-pool: the first maximum's tap index written once, dy sent to it), in one
process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/max_pool_tiles_ab.py TARGET

TARGET as in keep_in_memory_ab.py (`model:batch`, 32x32 with the small stem; LeNet-5 28x28).
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

from dl_arch.models.cnn import common  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build, compare_settings  # noqa: E402

NOW = common.max_pool_by_taps


def tiles_before(x, window, stride, padding):
    """max_pool's CPU path as it was: tiles as a reshape and a reduction."""
    if window == stride and not any(map(any, padding)):
        return common.tiled_max_pool(x, window)
    return NOW(x, window, stride, padding)


if __name__ == "__main__":
    compare_settings(sys.argv[1], [("before", tiles_before), ("now", NOW)],
                     lambda f: setattr(common, "max_pool_by_taps", f), build)
