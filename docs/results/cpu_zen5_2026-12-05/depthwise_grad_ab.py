"""A/B (stop 58): one train step with the depthwise kernel gradient of
`taps._depthwise_kernel_grad` for layers of at least M channels, for each M given, in one
process; prints ms a step per round.

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/depthwise_grad_ab.py TARGET M1,M2,...

TARGET as in keep_in_memory_ab.py (`model:batch`, `dcgan:SIZE` or a config file), or
`layer:BxHxWxC:S` (one depthwise 3x3 layer of stride S, forward and both gradients, as the
benchmark's depthwise row times it). M = 1e9 is autodiff's gradient everywhere (the code
before the change); 128 is `DEPTHWISE_GRAD_MIN_CHANNELS`.
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
    _, dims, stride = target.split(":")
    _, x = layer_input(dims)
    c = x.shape[-1]
    conv = nn.Conv(c, (3, 3), strides=int(stride), padding=1, feature_group_count=c,
                   use_bias=False, conv_general_dilated=taps.window_conv)
    return conv_layer_grads(conv, x)


def main():
    compare_taps_constant("DEPTHWISE_GRAD_MIN_CHANNELS", "M", build)


if __name__ == "__main__":
    main()
