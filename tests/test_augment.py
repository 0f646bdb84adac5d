"""Image preprocessing: uint8 conversion, random crop with padding, flips, normalisation."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from dl_arch.data.augment import preprocess, random_crop


def _config(**fields) -> ml_collections.ConfigDict:
    base = {"augment": ("random_crop", "flip_lr"), "crop_padding": 2, "normalize_mean": (),
            "normalize_std": ()}
    return ml_collections.ConfigDict({**base, **fields})


def _image(h=6, w=5, c=3) -> np.ndarray:
    return np.arange(h * w * c, dtype=np.uint8).reshape(h, w, c)


def _windows(image: np.ndarray, pad: int) -> list[np.ndarray]:
    """Every crop a padded random crop may produce, and its mirror image."""
    h, w = image.shape[:2]
    padded = np.zeros((h + 2 * pad, w + 2 * pad, image.shape[2]), image.dtype)
    padded[pad:pad + h, pad:pad + w] = image
    crops = [padded[i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return crops + [c[:, ::-1] for c in crops]


def test_uint8_becomes_float_in_unit_range_and_eval_is_untouched():
    example = {"image": _image(), "label": np.int32(3)}
    out = preprocess(example, np.random.default_rng(0), _config(), train=False)
    assert out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], _image() / 255.0, rtol=1e-6)
    assert out["label"] == 3
    assert example["image"].dtype == np.uint8  # the input example is not modified


def test_train_crop_and_flip_produce_every_window_and_nothing_else():
    image = _image()
    windows = _windows(image.astype(np.float32) / 255.0, pad=2)
    seen = set()
    for seed in range(400):
        out = preprocess({"image": image}, np.random.default_rng(seed), _config(), True)["image"]
        assert out.shape == image.shape
        matches = [k for k, w in enumerate(windows) if np.array_equal(w, out)]
        assert matches, f"seed {seed} produced a crop that is no padded window"
        seen.update(matches)
    assert len(seen) == len(windows)  # 25 offsets x {plain, mirrored}


@pytest.mark.parametrize("shape", [(6, 5, 3), (4, 7), (3, 3, 1)])
@pytest.mark.parametrize("pad", [1, 2, 8])
def test_random_crop_is_the_window_of_the_zero_padded_image(shape, pad):
    """Padding larger than the image included: the window may hold no pixel of it."""
    image = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
    padded = np.pad(image, [(pad, pad), (pad, pad)] + [(0, 0)] * (len(shape) - 2))
    for seed in range(12):
        top, left = np.random.default_rng(seed).integers(0, 2 * pad + 1, size=2)
        out = random_crop(image, np.random.default_rng(seed), pad)
        assert out.dtype == image.dtype
        np.testing.assert_array_equal(out, padded[top:top + shape[0], left:left + shape[1]])


def test_augmentation_is_deterministic_per_rng_seed():
    image = np.random.default_rng(5).random((8, 8, 3), dtype=np.float32)
    a = preprocess({"image": image}, np.random.default_rng([1, 2, 3]), _config(), True)
    b = preprocess({"image": image}, np.random.default_rng([1, 2, 3]), _config(), True)
    np.testing.assert_array_equal(a["image"], b["image"])


def test_normalisation_per_channel_in_train_and_eval():
    image = np.random.default_rng(0).random((4, 4, 3), dtype=np.float32)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    cfg = _config(augment=(), normalize_mean=mean, normalize_std=std)
    for train in (False, True):
        out = preprocess({"image": image}, np.random.default_rng(0), cfg, train)["image"]
        for c in range(3):
            np.testing.assert_allclose(out[..., c], (image[..., c] - mean[c]) / std[c], rtol=1e-5)


def test_grayscale_scalar_normalisation():
    image = np.full((28, 28, 1), 255, np.uint8)
    cfg = _config(augment=(), normalize_mean=(0.1307,), normalize_std=(0.3081,))
    out = preprocess({"image": image}, np.random.default_rng(0), cfg, False)["image"]
    np.testing.assert_allclose(out, (1.0 - 0.1307) / 0.3081, rtol=1e-5)


def test_bad_fields_fail_with_the_field_name():
    with pytest.raises(ValueError, match="config.dataset.augment has unknown op 'rotate'"):
        preprocess({"image": _image()}, np.random.default_rng(0), _config(augment=("rotate",)),
                   False)
    with pytest.raises(ValueError, match="config.dataset.normalize_std"):
        preprocess({"image": _image()}, np.random.default_rng(0),
                   _config(normalize_std=(0.0, 1.0, 1.0)), False)


def test_examples_without_images_pass_through():
    example = {"inputs": np.ones(3)}
    assert preprocess(example, np.random.default_rng(0), _config(), True) is example


def test_resize_to_gives_square_centre_crops_in_eval():
    image = np.random.default_rng(0).random((64, 80, 3), dtype=np.float32)
    cfg = _config(augment=("random_resized_crop", "flip_lr"), resize_to=56, crop_fraction=0.875)
    out = preprocess({"image": image}, np.random.default_rng(0), cfg, False)["image"]
    assert out.shape == (56, 56, 3)
    # shorter side already 56 / 0.875 = 64: no resize, the exact central 56x56 window
    np.testing.assert_array_equal(out, image[4:60, 12:68])


def test_random_resized_crop_shapes_and_full_crop_identity():
    from dl_arch.data.augment import random_resized_crop

    image = np.random.default_rng(1).random((40, 30, 3), dtype=np.float32)
    cfg = _config(augment=("random_resized_crop",), resize_to=24)
    for seed in range(5):
        out = preprocess({"image": image}, np.random.default_rng(seed), cfg, True)["image"]
        assert out.shape == (24, 24, 3)
        assert image.min() - 1e-6 <= out.min() and out.max() <= image.max() + 1e-6
    square = image[:30]
    same = random_resized_crop(square, np.random.default_rng(0), 30, scale=(1, 1), ratio=(1, 1))
    np.testing.assert_allclose(same, square, atol=1e-6)  # the whole image at its own size
    flat = random_resized_crop(np.full((50, 70, 1), 0.25, np.float32), np.random.default_rng(0),
                               16)
    np.testing.assert_allclose(flat, 0.25, atol=1e-6)


@pytest.mark.parametrize("fields,train", [
    ({}, True),
    ({"crop_padding": 0}, True),  # a crop without padding draws nothing
    ({"augment": ("flip_lr", "random_crop", "flip_lr"), "crop_padding": 3,
      "normalize_mean": (0.5, 0.4, 0.3), "normalize_std": (0.25, 0.2, 0.5)}, True),
    ({"normalize_mean": (0.5,), "normalize_std": (0.25,)}, False),
])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_batched_preprocessing_equals_stacking_the_examples(fields, train, dtype):
    from dl_arch.data.augment import preprocess_batch

    c = _config(resize_to=0, **fields)
    images = np.random.default_rng(0).integers(0, 256, (9, 7, 6, 3)).astype(dtype)
    if dtype == np.float32:
        images /= 255.0
    batch = {"image": images, "label": np.arange(9)}
    expected = [preprocess({"image": images[j], "label": j}, np.random.default_rng(j), c, train)
                for j in range(9)]
    out = preprocess_batch(batch, np.random.default_rng, c, train)
    assert out["image"].dtype == np.float32
    np.testing.assert_array_equal(out["image"], np.stack([e["image"] for e in expected]))
    np.testing.assert_array_equal(out["label"], np.arange(9))


def test_batched_preprocessing_declines_resizing_and_passes_imageless_batches():
    from dl_arch.data.augment import preprocess_batch

    images = np.zeros((2, 8, 8, 3), np.float32)
    assert preprocess_batch({"image": images}, np.random.default_rng,
                            _config(resize_to=4), True) is None
    assert preprocess_batch({"image": images}, np.random.default_rng,
                            _config(resize_to=0, augment=("random_resized_crop",)), True) is None
    tokens = {"tokens": np.arange(6).reshape(2, 3)}
    assert preprocess_batch(tokens, np.random.default_rng, _config(), True) is tokens
