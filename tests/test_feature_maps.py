"""Feature-map and filter pictures: the right tensors, scaled per tile, tiled into grids."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.evaluators.layer_pictures import (
    capture_feature_maps,
    feature_map_images,
    filter_images,
    first_conv_kernel,
    image_grid,
    layer_pictures,
)
from dl_arch.models.cnn.common import numpy_init
from dl_arch.registry import MODELS


@pytest.fixture(scope="module")
def resnet():
    model = MODELS.get("resnet_tiny")(num_classes=3)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    return model, numpy_init(model, x), x


def test_first_conv_kernel_is_the_stem(resnet):
    model, variables, _ = resnet
    path, kernel = first_conv_kernel(variables["params"])
    assert path == "conv1/kernel" and kernel.shape == (3, 3, 3, 8)


def test_filter_images_scale_each_filter_to_unit_range():
    kernel = np.random.default_rng(0).standard_normal((5, 5, 3, 4)).astype(np.float32)
    images = filter_images(kernel, min_side=10)
    assert images.shape == (4, 10, 10, 3)  # 5x5 enlarged 2x by repetition
    for o in range(4):
        k = kernel[..., o]
        expected = (k - k.min()) / (k.max() - k.min())
        np.testing.assert_allclose(images[o, ::2, ::2], expected, atol=1e-6)
    gray = filter_images(kernel[:, :, :2], min_side=5)  # 2 input channels -> their mean
    m = kernel[:, :, :2, 1].mean(axis=2)
    np.testing.assert_allclose(gray[1, ..., 0], (m - m.min()) / (m.max() - m.min()), atol=1e-6)


def test_captured_maps_are_the_models_activations(resnet):
    model, variables, x = resnet
    maps = capture_feature_maps(model, variables, x, ["layer1", "layer2_0/conv1"])
    assert sorted(maps) == ["layer1", "layer2_0/conv1"]
    _, state = model.apply(variables, x, mutable=["intermediates"])
    np.testing.assert_allclose(maps["layer1"], state["intermediates"]["layer1"][0], atol=1e-6)
    # layer2_0/conv1 is a strided 3x3 conv of layer1's output, without bias.
    kernel = variables["params"]["layer2_0"]["conv1"]["kernel"]
    conv = jax.lax.conv_general_dilated(jnp.asarray(maps["layer1"]), kernel, (2, 2),
                                        ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(maps["layer2_0/conv1"], conv, atol=1e-5)


def test_unknown_layer_names_list_the_known_stages(resnet):
    model, variables, x = resnet
    with pytest.raises(ConfigError, match="config.feature_maps.layers.*layer1, layer2"):
        capture_feature_maps(model, variables, x, ["layer9"])


def test_feature_map_images_tile_each_channel():
    maps = np.random.default_rng(1).standard_normal((2, 4, 4, 20)).astype(np.float32)
    tiles = feature_map_images(maps, max_channels=16, min_side=4)
    assert tiles.shape == (32, 4, 4, 1)
    ch = maps[1, :, :, 5]
    np.testing.assert_allclose(tiles[16 + 5, ..., 0], (ch - ch.min()) / (ch.max() - ch.min()),
                               atol=1e-6)
    constant = feature_map_images(np.zeros((1, 3, 3, 2)), min_side=3)
    np.testing.assert_allclose(constant, 0.5)  # dead channels show as mid grey


def test_image_grid_tiles_with_white_borders():
    images = np.random.default_rng(2).uniform(size=(5, 3, 4, 1)).astype(np.float32)
    grid = image_grid(images, ncols=3)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 5 + 2, 3 * 6 + 2, 3)
    np.testing.assert_array_equal(grid[2:5, 8:12, 1], (images[1, ..., 0] * 255).astype(np.uint8))
    assert np.all(grid[:2] == 255) and np.all(grid[5:7, :, 0] == 255)  # borders
    assert np.all(grid[7:10, 14:18] == 255)  # the empty sixth cell stays white


def test_layer_pictures_return_one_grid_per_layer(resnet):
    model, variables, x = resnet
    grids = layer_pictures(model, variables, x, ["layer1", "layer2", "layer2_0/conv1"])
    assert set(grids) == {"filters", "layer1", "layer2", "layer2_0.conv1"}
    for name, grid in grids.items():
        assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[-1] == 3, name
    # 2 images x 8 channels of 16x16 maps enlarged to 32x32, 2-pixel borders
    assert grids["layer1"].shape[:2] == (2 * 34 + 2, 8 * 34 + 2)
    # 8 stem filters of 3x3 enlarged to 30x30 (32 // 3 = 10 times), one row
    assert grids["filters"].shape[:2] == (32 + 2, 8 * 32 + 2)
    only = layer_pictures(model, variables, x, [])
    assert set(only) == {"filters"} and np.array_equal(only["filters"], grids["filters"])
