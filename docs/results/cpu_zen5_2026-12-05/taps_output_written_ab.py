"""A/B (stop 60): one train step with the sums of taps of `_cpu_conv` (the output of a
convolution whose forward runs on taps: at most 3 input channels, stride 1, as LeNet-5's
conv1 and the small stems' first layer; the input gradient on taps: at most 8 channels,
unpadded, as LeNet-5's conv2) recomputed by XLA in their consumers (the code before)
against written to memory once (`taps.written_out`, as `_cpu_conv` now does), in one
process; prints ms a step per round. (`taps_output_written_ab.log` opens with a first
version: the output alone, from `KEEP_MIN_BYTES` up.)

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/taps_output_written_ab.py TARGET

TARGET as in keep_in_memory_ab.py, for a model without overlapping max-pools (`written_out`
also serves `max_pool_by_taps`): lenet5:128, resnet18:128, mobilenet_v2:32.
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

from dl_arch.models.cnn import taps  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build, compare_settings  # noqa: E402

NOW = taps.written_out


def recomputed(f, x):
    """written_out as if it were not there: f(x), left to XLA's fusion."""
    return f(x)


if __name__ == "__main__":
    compare_settings(sys.argv[1], [("before", recomputed), ("now", NOW)],
                     lambda f: setattr(taps, "written_out", f), build)
