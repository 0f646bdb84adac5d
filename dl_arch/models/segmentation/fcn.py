"""FCN-32s, FCN-16s and FCN-8s on VGG-16 (Long, Shelhamer & Darrell 2015).

Layout (the paper's, with same-padding so no crop is needed):
  VGG trunk (`conv{s}_{i}` [+ `bn{s}_{i}`], pools after every stage: pool3 /8, pool4 /16,
  pool5 /32) -> fc6: the classifier's fc1 applied as a 7x7 conv, 4096, ReLU, dropout
  -> fc7: fc2 as a 1x1 conv, 4096, ReLU, dropout -> `score_fr` 1x1 conv to the classes.
  FCN-32s: score_fr upsampled x32.
  FCN-16s: `upscore2` (learnable x2, bilinear start) of score_fr + `score_pool4`(pool4),
           upsampled x16.
  FCN-8s:  `upscore_pool4` (learnable x2) of that sum + `score_pool3`(pool3), upsampled x8.
The score layers start at zero (the paper: new score layers zero-initialised, so FCN-16s/8s
start from the coarser net's prediction), the x2 upsamplings as bilinear interpolation, and
the last upsampling is a fixed bilinear resize (no parameters; the paper's fixed bilinear
deconvolution, equal inside the map).

Sizes: the paper pads conv1_1 by 100 and crops every fused map; here every conv keeps its
size (fc6 pads 3), so pool5 is exactly 1/32 of the input, each x2 upsampling lands on the
next pool's grid, and the output is the input size for any side that is a multiple of 32
(other sides are refused in one line).

Parameters `fc1`, `fc2` hold the classifier's dense kernels, (7*7*512, 4096) and
(4096, 4096), reshaped into conv kernels in the forward pass (the paper's
"convolutionalization"), so a VGG-16 classifier's weights, all of them but its head, load by
path. 134,376,863 parameters for FCN-8s at 21 classes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.models.cnn.common import as_tuple
from dl_arch.models.cnn.vgg import VGG_STAGES, vgg_trunk
from dl_arch.models.segmentation.common import check_sides
from dl_arch.models.segmentation.upsample import bilinear_conv_transpose, resize_bilinear
from dl_arch.registry import register_model

_fc_init = nn.initializers.normal(0.01)  # the VGG classifier's dense init


class ConvolutionalizedDense(nn.Module):
    """A dense layer slid over a feature map as a k x k convolution with same padding.

    The kernel is stored as the dense layer's (k*k*C_in, features), rows in the (h, w, c)
    order of the classifier's flatten, so a classifier's fc layer loads unchanged and gives,
    at a pixel whose k x k window lies inside the map, the classifier's value on that window.
    """

    features: int
    kernel_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        k, c_in = self.kernel_size, x_BHWC.shape[-1]
        kernel = self.param("kernel", _fc_init, (k * k * c_in, self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        y = jax.lax.conv_general_dilated(
            x_BHWC.astype(self.dtype), kernel.reshape(k, k, c_in, self.features).astype(self.dtype),
            (1, 1), ((k // 2, (k - 1) // 2),) * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias.astype(self.dtype).reshape(1, 1, 1, -1)


class FCN(nn.Module):
    """FCN-32s / 16s / 8s on a VGG encoder: logits [B, H, W, num_classes] (module doc)."""

    num_classes: int = 21  # classes of the per-pixel logits (background included)
    fcn_stride: int = 8  # 32: FCN-32s | 16: FCN-16s (+ pool4) | 8: FCN-8s (+ pool4, pool3)
    stages: Sequence[Sequence[int]] = VGG_STAGES[16]  # channels of the 3x3 convs of the five stages
    batch_norm: bool = False  # BatchNorm after every conv of the encoder (vgg*_bn)
    fc_width: int = 4096  # channels of fc6 and fc7
    fc_kernel: int = 7  # side of fc6's kernel (7: the VGG classifier's 7x7 pooled fc1)
    dropout_rate: float = 0.5  # dropout after fc6 and fc7 in training
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    field_checks: ClassVar[dict[str, dict[str, Any]]] = {
        "fcn_stride": dict(choices=(8, 16, 32)), "fc_kernel": dict(low=1),
        "stages": dict(each=Field((64,), "channels of a stage", each=Field(1, "channels", low=1)))}

    @nn.compact
    def __call__(self, x_BHWC: jax.Array, *, train: bool = False) -> jax.Array:
        if self.fcn_stride not in (8, 16, 32):
            raise ConfigError(f"config.model.fcn_stride={self.fcn_stride}; use 32, 16 or 8")
        if len(self.stages) != 5:
            raise ConfigError(f"config.model.stages has {len(self.stages)} stages; FCN needs the "
                              "five pooled stages of VGG (pool3, pool4, pool5)")
        check_sides(x_BHWC, 32, f"fcn{self.fcn_stride}s")
        _, h, w, _ = x_BHWC.shape
        pools = vgg_trunk(self, x_BHWC, train, stages=as_tuple(self.stages), bn=self.batch_norm)
        pool3, pool4, pool5 = pools[2], pools[3], pools[4]
        fc = functools.partial(ConvolutionalizedDense, dtype=self.dtype,
                               param_dtype=self.param_dtype)
        dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
        x = dropout(nn.relu(fc(self.fc_width, self.fc_kernel, name="fc1")(pool5)))
        x = dropout(nn.relu(fc(self.fc_width, 1, name="fc2")(x)))
        score = functools.partial(nn.Conv, self.num_classes, (1, 1), dtype=jnp.float32,
                                  param_dtype=self.param_dtype, kernel_init=nn.initializers.zeros)
        up = functools.partial(bilinear_conv_transpose, self.num_classes, 2, dtype=jnp.float32,
                               param_dtype=self.param_dtype)
        score_BhwK = score(name="score_fr")(x)
        self.sow("intermediates", "coarse_scores", score_BhwK)
        if self.fcn_stride <= 16:
            score_BhwK = up(name="upscore2")(score_BhwK) + score(name="score_pool4")(pool4)
        if self.fcn_stride == 8:
            score_BhwK = up(name="upscore_pool4")(score_BhwK) + score(name="score_pool3")(pool3)
        return resize_bilinear(score_BhwK, h, w)


for _stride in (32, 16, 8):
    register_model(f"fcn{_stride}s_vgg16", functools.partial(FCN, fcn_stride=_stride))
    register_model(f"fcn{_stride}s_tiny", functools.partial(
        FCN, fcn_stride=_stride, stages=((8,), (16,), (16,), (32,), (32,)), batch_norm=True,
        fc_width=64, fc_kernel=3))
