"""Looking inside a CNN: first-layer filters and feature maps of chosen layers as image grids.

Layers are chosen by regular expressions (`re.fullmatch`) over the names of the model's
intermediates: the per-stage maps the CNN models sow (`layer1`, `stage2`, `group3`,
`inception4a_output`, ...) and every submodule output by its path (`layer2_0/conv1`).
Everything returns arrays; the loop writes the pictures (evaluator `feature_maps`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from dl_arch.config.errors import ConfigError


def first_conv_kernel(params: dict[str, Any]) -> tuple[str, np.ndarray]:
    """(path, kernel kH x kW x I x O) of the first 2-D convolution created by the model."""

    def walk(node: Any, prefix: str) -> tuple[str, np.ndarray] | None:
        if isinstance(node, dict):
            for key, child in node.items():  # insertion order = order of creation
                found = walk(child, f"{prefix}/{key}" if prefix else str(key))
                if found is not None:
                    return found
            return None
        if prefix.endswith("kernel") and np.ndim(node) == 4:
            return prefix, np.asarray(node)
        return None

    found = walk(params, "")
    if found is None:
        raise ConfigError("config.evaluators lists 'feature_maps', but the model has no 2-D "
                          "convolution kernel to draw; drop it from config.evaluators")
    return found


def _unit_range(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Min-max scales `x` to [0, 1] over `axes` (constant maps become 0.5)."""
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5).astype(np.float32)


def _upsample(images_NHWC: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour enlargement so tiny maps (3x3 filters) stay visible."""
    k = max(1, min_side // max(images_NHWC.shape[1:3]))
    return images_NHWC.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else images_NHWC


def filter_images(kernel_HWIO: np.ndarray, min_side: int = 32) -> np.ndarray:
    """One image per output filter (O, H, W, 3 or 1), each scaled to [0, 1] on its own.

    RGB inputs show as colour; other input counts are averaged over the input channels.
    """
    k = np.asarray(kernel_HWIO, np.float32)
    if k.shape[2] not in (1, 3):
        k = k.mean(axis=2, keepdims=True)
    images = _unit_range(k.transpose(3, 0, 1, 2), axes=(1, 2, 3))
    return _upsample(images, min_side)


def capture_feature_maps(model: nn.Module, variables: dict[str, Any], images_BHWC: Any,
                         layers: Sequence[str]) -> dict[str, np.ndarray]:
    """{name: (B, H, W, C) array} for every intermediate whose name fully matches a pattern."""
    patterns = [re.compile(p) for p in layers]
    selected = lambda name: any(p.fullmatch(name) for p in patterns)

    def module_filter(module: nn.Module, method: str) -> bool:
        return method == "__call__" and selected("/".join(module.path))

    variables = {k: v for k, v in variables.items() if k != "intermediates"}
    _, state = model.apply(variables, images_BHWC, train=False, mutable=["intermediates"],
                           capture_intermediates=module_filter)
    found: dict[str, np.ndarray] = {}
    names: list[str] = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
        keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        name = "/".join(k for k in keys if k not in ("__call__", "0"))
        names.append(name)
        if np.ndim(leaf) == 4 and selected(name):
            found[name] = np.asarray(leaf, np.float32)
    missing = [p.pattern for p in patterns if not any(p.fullmatch(n) for n in found)]
    if missing:
        known = ", ".join(n for n in names if not n.count("/"))
        raise ConfigError(f"config.feature_maps.layers: {missing} match no 4-D feature map; "
                          f"named stages are: {known} (or give module paths like 'conv1')")
    return found


def feature_map_images(maps_BHWC: np.ndarray, max_channels: int = 16,
                       min_side: int = 32) -> np.ndarray:
    """(B * C', H, W, 1): the first C' channels of each input, each scaled to [0, 1]."""
    maps = np.asarray(maps_BHWC, np.float32)[..., :max_channels]
    b, h, w, c = maps.shape
    tiles = _unit_range(maps.transpose(0, 3, 1, 2).reshape(b * c, h, w, 1), axes=(1, 2, 3))
    return _upsample(tiles, min_side)


def image_grid(images_NHWC: np.ndarray, ncols: int = 8) -> np.ndarray:
    """N images (floats in [0, 1]) as one RGB uint8 grid, `ncols` a row, 2-pixel white borders."""
    images = np.clip(np.asarray(images_NHWC, np.float32), 0, 1)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, c = images.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    grid = np.ones((nrows * (h + 2) + 2, ncols * (w + 2) + 2, c), np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        grid[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + col * (w + 2): 2 + col * (w + 2) + w] = img
    return (grid * 255).astype(np.uint8)


def layer_pictures(model: nn.Module, variables: dict[str, Any], images_BHWC: Any,
                   layers: Sequence[str], max_channels: int = 16) -> dict[str, np.ndarray]:
    """{"filters": grid of the first conv's filters, "<layer>": grid of its feature maps (one
    row per image, '/' in a layer path written '.')}, each an HWC uint8 grid."""
    _, kernel = first_conv_kernel(variables["params"])
    filters = filter_images(kernel)
    grids = {"filters": image_grid(filters, ncols=min(16, len(filters)))}
    if layers:
        for name, maps in capture_feature_maps(model, variables, images_BHWC, layers).items():
            grids[name.replace("/", ".")] = image_grid(feature_map_images(maps, max_channels),
                                                       ncols=min(max_channels, maps.shape[-1]))
    return grids
