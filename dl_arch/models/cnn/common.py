"""Pieces shared by the CNN family: stem checks, initialisers, torchvision-exact pooling."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.models.cnn.taps import max_pool_by_taps

STEMS = ("imagenet", "small")
# A CNN's `field_checks`: the stems every model of the family knows.
STEM_CHECKS: dict[str, dict[str, Any]] = {"stem": dict(choices=STEMS)}

# torchvision's conv init (kaiming normal, fan_out), so from-scratch runs start alike.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# He init over fan_in: keeps activation scale through deep stacks without BatchNorm.
conv_init_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def check_stem(stem: str, model: str) -> None:
    """Fails early with a one-line fix when `config.model.stem` is not a known stem."""
    if stem not in STEMS:
        raise ConfigError(
            f"config.model.stem='{stem}' is unknown for {model}; use 'imagenet' "
            "(224x224 inputs) or 'small' (28x28/32x32 inputs)"
        )


@dataclasses.dataclass(frozen=True)
class Window:
    """One spatial step of a CNN: a convolution or pool of `kernel` x `kernel` (torch rules)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False

    def out(self, n: int) -> int:
        """Output side for an input side `n` (0 when the window does not fit), as `max_pool`."""
        span = n + 2 * self.padding - self.kernel
        if not self.ceil_mode:
            return max(0, span // self.stride + 1)
        out = -(-span // self.stride) + 1
        if (out - 1) * self.stride >= n + self.padding:
            out -= 1
        return max(0, out)


def fits(side: int, windows: Sequence[Window]) -> bool:
    """Whether an input side of `side` pixels leaves every map of `windows` at least 1 pixel."""
    for window in windows:
        side = window.out(side)
        if side < 1:
            return False
    return side >= 1


def min_image_side(windows: Sequence[Window]) -> int:
    """The smallest input side that every convolution and pool of `windows` can take."""
    side = 1
    while not fits(side, windows):
        side += 1
    return side


def check_images(x: jax.Array, model: str, plan: Callable[[str], Sequence[Window]] | None = None,
                 stem: str = "") -> None:
    """Fails early unless `x` is a channels-last image batch (B, H, W, C) that the
    convolutions and pools `plan(stem)` of the model can take (names the minimum and the fix)."""
    if x.ndim != 4:
        raise ConfigError(
            f"{model} takes images shaped (batch, height, width, channels), got shape "
            f"{tuple(x.shape)}; check config.dataset (images must be HWC)"
        )
    if plan is None:
        return
    _, h, w, _ = x.shape
    windows = plan(stem)
    if fits(h, windows) and fits(w, windows):
        return
    least = min_image_side(windows)
    other = [s for s in STEMS if s != stem and stem in STEMS]
    hint = ""
    if other and fits(h, plan(other[0])) and fits(w, plan(other[0])):
        hint = f" or config.model.stem='{other[0]}'"
    with_stem = f" with stem='{stem}'" if stem else ""
    raise ConfigError(
        f"{model}{with_stem} needs images of at least {least}x{least} (got {h}x{w}); set "
        f"config.dataset.resize_to >= {least} (or a larger config.dataset.image_size){hint}"
    )


def batch_norm(train: bool, dtype: Any, param_dtype: Any, epsilon: float = 1e-5,
               name: str | None = None) -> nn.BatchNorm:
    """BatchNorm with torchvision's defaults (momentum 0.1 there = 0.9 here, eps 1e-5)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon,
                        dtype=dtype, param_dtype=param_dtype, name=name)


@functools.lru_cache(maxsize=64)
def _pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging weights of torch's AdaptiveAvgPool along one axis."""
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)  # ceil((i + 1) * n_in / n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x_BHWC: jax.Array, out_hw: int) -> jax.Array:
    """torch.nn.AdaptiveAvgPool2d(out_hw) in channels-last: any input size -> out_hw x out_hw."""
    _, h, w, _ = x_BHWC.shape
    if h == out_hw and w == out_hw:
        return x_BHWC
    if out_hw == 1:
        return jnp.mean(x_BHWC, axis=(1, 2), keepdims=True)
    ph_PH = jnp.asarray(_pool_matrix(h, out_hw), x_BHWC.dtype)
    pw_QW = jnp.asarray(_pool_matrix(w, out_hw), x_BHWC.dtype)
    return jnp.einsum("ph,bhwc,qw->bpqc", ph_PH, x_BHWC, pw_QW)


def max_pool(x_BHWC: jax.Array, window: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jax.Array:
    """torch.nn.MaxPool2d(window, stride, padding, ceil_mode) in channels-last."""
    pads = []
    for n in x_BHWC.shape[1:3]:
        span = n + 2 * padding - window
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= n + padding:
            out -= 1  # torch: the last window must start inside the input or left padding
        extra = max(0, (out - 1) * stride + window - (n + 2 * padding))
        pads.append((padding, padding + extra))
    pads = tuple(pads)
    if window == stride and not any(lo or hi for lo, hi in pads):
        default = lambda x: tiled_max_pool(x, window)  # noqa: E731
    else:
        default = lambda x: nn.max_pool(x, (window, window), (stride, stride),  # noqa: E731
                                        padding=pads)
    # XLA's CPU select-and-scatter is slow, and so is the tiles' reduction gradient (taps.py)
    return jax.lax.platform_dependent(
        x_BHWC, cpu=lambda x: max_pool_by_taps(x, window, stride, pads), default=default)


def tiled_max_pool(x_BHWC: jax.Array, window: int) -> jax.Array:
    """Max over non-overlapping window x window tiles (rows and columns past the last whole
    tile dropped, as torch's floor mode does), as a reshape and a reduction: `max_pool`'s
    tiles on GPU and TPU.

    Equal to `nn.max_pool` forward; its gradient is a compare-and-multiply instead of XLA's
    select-and-scatter. Ties share the gradient equally, where select-and-scatter (and
    `max_pool_by_taps`, which `max_pool` runs on CPU: LeNet-5's b128 step 4.4-4.7 -> 3.4-3.6
    ms) gives it to the first maximum (the same sum).
    """
    b, h, w, c = x_BHWC.shape
    oh, ow = h // window, w // window
    tiles = x_BHWC[:, :oh * window, :ow * window].reshape(b, oh, window, ow, window, c)
    return tiles.max(axis=(2, 4))


def flatten_hwc(x_BHWC: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H*W*C); torchvision flattens C, H, W (see interop.torchvision)."""
    return x_BHWC.reshape(x_BHWC.shape[0], -1)


_lecun = nn.initializers.lecun_normal()


def head(num_classes: int, param_dtype: Any, name: str = "head",
         kernel_init: Any = _lecun) -> nn.Dense:
    """The classifier layer; computes in float32 so logits and losses stay float32."""
    return nn.Dense(num_classes, dtype=jnp.float32, param_dtype=param_dtype,
                    kernel_init=kernel_init, name=name)


def param_count(tree: Any) -> int:
    """Number of scalars in a parameter tree (works on `jax.eval_shape` outputs too)."""
    return int(sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree)))


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of `divisor`, never below 90% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def as_tuple(x: Sequence[Any]) -> tuple[Any, ...]:
    """Nested lists (from a ConfigDict) -> nested tuples, so module fields stay hashable."""
    return tuple(as_tuple(v) if isinstance(v, (list, tuple)) else v for v in x)


def numpy_init(model: nn.Module, x: jax.Array, seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """Variables with He-normal kernels drawn by numpy, shapes from `jax.eval_shape`.

    Skips compiling the jax RNG of `model.init`, which dominates start-up of deep nets on a
    CPU (tests, benchmarks); kernels ~ N(0, 2 / fan_in), biases/means 0, scales/vars 1.
    """
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, **kwargs), x)
    rng = np.random.default_rng(seed)

    def fill(path: tuple[Any, ...], leaf: jax.ShapeDtypeStruct) -> jax.Array:
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            value = rng.standard_normal(leaf.shape) * np.sqrt(2.0 / fan_in)
        elif name in ("scale", "var"):
            value = np.ones(leaf.shape)
        else:
            value = np.zeros(leaf.shape)
        return jax.device_put(value.astype(leaf.dtype))  # no jnp program per shape

    return jax.tree_util.tree_map_with_path(fill, shapes)
