"""A/B (stop 59): one train step with the convolutions of a dilated input that XLA:CPU runs
as Eigen's transposed convolution (a strided convolution's input gradient, a transposed
convolution's forward) taken by phases (`taps._input_grad_by_phases`,
`taps._dilated_conv_by_phases`) where their column buffer would reach T bytes, for each T
given, in one process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/phases_input_grad_ab.py TARGET T1,T2,...

TARGET as in keep_in_memory_ab.py (`dcgan:SIZE`, `model:batch` or a config file), or
`layer:BxHxWxC:COUT:K` (one KxK stride-2 convolution, padded as "SAME", forward and both
gradients of sum(y * g)). T = 1e18 is XLA everywhere (the code before); 67108864 (64 MiB) is
`PHASES_MIN_COLUMN_BYTES`; 0 takes every such convolution.
Logs: `phases_input_grad_ab.log` (the first version: strided input gradients only, in a
space-to-depth form for kernels the stride divides), `_general_ab.log` (the phase form for
every strided input gradient, with the page faults a step), `_final_ab.log` (transposed
convolutions' forwards as well).
"""

import os
import sys

from dl_arch.train.host_memory import keep_freed_memory

keep_freed_memory()

import flax.linen as nn  # noqa: E402

from dl_arch.models.cnn import taps  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build as build_step  # noqa: E402
from keep_in_memory_ab import compare_taps_constant, conv_layer_grads, layer_input  # noqa: E402


def build(target):
    """`run()` of the target; a layer's returns its two gradients."""
    if not target.startswith("layer:"):
        return build_step(target)
    _, dims, cout, k = target.split(":")
    rng, x = layer_input(dims)
    conv = nn.Conv(int(cout), (int(k),) * 2, strides=2, padding="SAME", use_bias=False,
                   conv_general_dilated=taps.window_conv)
    return conv_layer_grads(conv, x, rng)


def main():
    compare_taps_constant("PHASES_MIN_COLUMN_BYTES", "T", build)


if __name__ == "__main__":
    main()
