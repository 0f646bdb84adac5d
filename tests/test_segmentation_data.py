"""Segmentation data: `shapes` masks against the painted pixels, mask resizing and PNG files,
joint augmentation moving image and mask together, users' mask folders with every error as
one line, and the TFDS adapters on mock data (or hand-made examples for the value maps)."""

from __future__ import annotations

import functools
import os

import chex
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from dl_arch.config.errors import ConfigError
from dl_arch.data.augment import resize
from dl_arch.data.batching import stack_examples
from dl_arch.data.mask_augment import preprocess_pair
from dl_arch.data.masks import (
    IGNORE_LABEL,
    check_mask_values,
    nearest_indices,
    palette,
    read_mask,
    resize_nearest,
    write_mask,
)
from dl_arch.data.pipeline import eval_batches, make_source, train_dataset
from dl_arch.data.sources.procedural import split_salt
from dl_arch.data.sources.segmentation_tfds import (
    ADE_INSTANCE_CLASSES,
    CITYSCAPES_TRAIN_IDS,
    SegmentationTFDS,
    ade_table,
    lookup_table,
    pet_table,
)
from dl_arch.data.sources.shapes import Shapes, _Draws, mask_class_names


def _shapes(**kw) -> Shapes:
    args = dict(image_size=24, num_classes=8, num_objects=3, max_objects=4, channels=3,
                noise=0.0, min_size=0.3, max_size=0.7, length=10**6, seed=3, split="train",
                palette="random", masks=True)
    return Shapes(**{**args, **kw})


# ------------------------------------------------------------------ shapes masks
@pytest.mark.parametrize("palette_name", ["random", "light_on_dark"])
def test_shapes_mask_classes_are_the_pixels_of_each_objects_colour(palette_name):
    """With noise 0 every pixel shows the colour of the object on top (or the background):
    the mask must give exactly that object's class there."""
    src = _shapes(palette=palette_name)
    checked = 0
    for i in range(40):
        draws = src._draw(np.random.default_rng([3, split_salt("train"), i]))  # one row
        colours = draws.colours[0].astype(np.float32)
        if len({c.tobytes() for c in colours}) < len(colours):
            continue  # two objects of one colour cannot be told apart by colour
        ex = src[i]
        expected = np.zeros((24, 24), np.int32)
        for kind, colour in zip(draws.kinds[0], colours):
            expected[(ex["image"] == colour).all(-1)] = kind + 1
        np.testing.assert_array_equal(ex["mask"], expected)
        assert ex["mask"].dtype == np.int32 and ex["mask"].shape == (24, 24)
        checked += 1
    assert checked >= 35


def test_shapes_mask_classes_match_box_labels():
    src = _shapes(num_objects=3, image_size=32)
    batch = src.get_batch(np.arange(300))
    for mask, labels in zip(batch["mask"], batch["box_labels"]):
        present = set(np.unique(mask).tolist()) - {0}
        drawn = {k + 1 for k in labels.tolist() if k >= 0}
        assert present <= drawn
        assert labels[2] + 1 in present  # the object drawn last is never covered
    one = _shapes(num_objects=1, max_objects=1).get_batch(np.arange(100))
    for mask, labels in zip(one["mask"], one["box_labels"]):
        assert set(np.unique(mask).tolist()) == {0, int(labels[0]) + 1}


@pytest.mark.parametrize("square_first", [True, False])
def test_shapes_overlap_the_object_drawn_last_wins(square_first):
    """A square (kind 1) centred at (8, 8) with radius 5 and a circle (kind 0) at (12, 12)
    with radius 5, drawn in either order; their pixels written from the shapes' geometry."""
    src = _shapes(num_objects=2, max_objects=2, image_size=20)
    y, x = np.mgrid[0:20, 0:20] + 0.5
    square = np.maximum(abs(x - 8), abs(y - 8)) <= 0.8 * 5
    circle = (x - 12) ** 2 + (y - 12) ** 2 <= 25
    objects = [(1, (8.0, 8.0, 5.0), square), (0, (12.0, 12.0, 5.0), circle)]
    if not square_first:
        objects = objects[::-1]
    draws = _Draws(np.zeros((1, 3)), np.array([[k for k, _, _ in objects]]),
                   np.array([[c for _, c, _ in objects]]),
                   np.array([[[1.0, 0, 0], [0, 1.0, 0]]]), np.zeros((1, 20, 20, 3), np.float32))
    mask = src._render(draws)["mask"][0]
    expected = np.zeros((20, 20), np.int32)
    for kind, _, pixels in objects:
        expected[pixels] = kind + 1
    np.testing.assert_array_equal(mask, expected)
    assert (square & circle).sum() > 5  # they do overlap
    assert (mask[square & circle] == objects[1][0] + 1).all()


@pytest.mark.parametrize("kw", [dict(), dict(num_objects=2, channels=1, palette="light_on_dark",
                                             noise=0.1, image_size=40)])
def test_shapes_masks_batched_equal_per_example_and_leave_other_keys_unchanged(kw, monkeypatch):
    src = _shapes(**kw)
    indices = np.arange(30)
    expected = stack_examples([src[int(i)] for i in indices])
    for chunked in (False, True):
        if chunked:  # several render chunks per batch
            monkeypatch.setattr("dl_arch.data.sources.shapes._RENDER_PIXELS", 3 * 40 * 40)
        batch = src.get_batch(indices)
        assert set(batch) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(batch[key], expected[key], err_msg=key)
    plain = _shapes(**kw, masks=False).get_batch(indices)
    assert set(plain) == {"image", "label", "boxes", "box_labels"}
    for key in plain:  # masks=True changes no other key, bit for bit
        np.testing.assert_array_equal(plain[key], expected[key], err_msg=key)


def test_shapes_masks_field_through_make_source():
    c = ml_collections.ConfigDict({"name": "shapes", "masks": True, "image_size": 16})
    ex = make_source(c, "test", 0)[0]
    assert ex["mask"].shape == (16, 16) and ex["mask"].dtype == np.int32
    assert mask_class_names(2) == ("background", "circle", "square")
    out = preprocess_pair(ex, np.random.default_rng(0), c, False)
    assert set(out) == {"image", "mask", "label", "boxes", "box_labels"}  # a resize keeps boxes
    c.augment = True
    out = preprocess_pair(ex, np.random.default_rng(0), c, True)
    assert set(out) == {"image", "mask", "label"}  # boxes would not survive a crop
    assert "mask" not in make_source(ml_collections.ConfigDict({"name": "shapes"}), "test", 0)[0]


# ------------------------------------------------------------------ mask helpers
def test_nearest_indices_pick_the_input_pixel_nearest_each_output_centre():
    for size_in in range(1, 40):
        for size_out in range(1, 50):
            picked = nearest_indices(size_in, size_out)
            centre = (np.arange(size_out) + 0.5) * size_in / size_out  # in input pixel units
            distance = np.abs(np.arange(size_in)[None, :] + 0.5 - centre[:, None])
            chosen = distance[np.arange(size_out), picked]
            np.testing.assert_array_less(chosen, distance.min(1) + 1e-9)
            assert (chosen <= 0.5 + 1e-9).all()


def test_resize_nearest_keeps_values_and_agrees_with_pillow_off_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w, oh, ow = rng.integers(1, 30, 4)
        mask = rng.choice(np.array([0, 3, 7, IGNORE_LABEL]), size=(h, w)).astype(np.int32)
        out = resize_nearest(mask, oh, ow)
        assert out.shape == (oh, ow) and out.dtype == np.int32
        assert set(np.unique(out).tolist()) <= set(np.unique(mask).tolist())
        ref = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((ow, oh), Image.NEAREST))
        # Pillow breaks exact ties (an output centre on an input pixel edge) the other way
        tie_r = ((2 * np.arange(oh) + 1) * h) % (2 * oh) == 0
        tie_c = ((2 * np.arange(ow) + 1) * w) % (2 * ow) == 0
        keep = ~tie_r[:, None] & ~tie_c[None, :]
        np.testing.assert_array_equal(out[keep], ref[keep])


def test_mask_pngs_round_trip_and_palette_pngs_read_as_indices(tmp_path):
    rng = np.random.default_rng(1)
    mask = rng.choice(np.array([0, 1, 20, IGNORE_LABEL]), size=(5, 7))
    write_mask(str(tmp_path / "m.png"), mask)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[0, 0], palette()[mask[0, 0]])
    np.testing.assert_array_equal(read_mask(str(tmp_path / "m.png"), "x"), mask)
    big = np.array([[0, 300], [1000, 2]])
    write_mask(str(tmp_path / "big.png"), big)
    np.testing.assert_array_equal(read_mask(str(tmp_path / "big.png"), "x"), big)
    # a VOC-style palette image with its own colours, and a grey (L) one: indices either way
    voc = Image.fromarray(mask.astype(np.uint8))
    voc.putpalette(rng.integers(0, 256, 768).tolist())
    voc.save(tmp_path / "voc.png")
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "grey.png")
    for name in ("voc.png", "grey.png"):
        got = read_mask(str(tmp_path / name), "x")
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, mask)
    np.testing.assert_array_equal(palette()[:3], [[0, 0, 0], [128, 0, 0], [0, 128, 0]])


def test_mask_file_and_value_errors_are_one_line(tmp_path):
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ConfigError, match=r"^mask 1 \(.*rgb.png\) is a RGB picture; .*single-"
                                          r"channel PNG \(mode L, or P"):
        read_mask(str(tmp_path / "rgb.png"), "mask 1")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"^mask 2 \(.*junk.png\) is not a readable image"):
        read_mask(str(tmp_path / "junk.png"), "mask 2")
    check_mask_values(np.array([[0, 2, IGNORE_LABEL]]), 3, "m")
    for bad, value in ((np.array([[0, 3, 255]]), 3), (np.array([[-1, 0]]), -1)):
        with pytest.raises(ConfigError, match=rf"^m holds mask value {value}, but config.dataset."
                                              rf"num_classes=3 allows 0..2 \(255 = ignore\); raise"):
            check_mask_values(bad, 3, "m")


# ------------------------------------------------------------------ joint augmentation
def _striped_pair(size: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """An image of random 0/1 blocks (4 px) in channel 0 and a ramp in channel 1, with the
    mask = channel 0 thresholded (class 1 where bright, else class 2)."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.integers(0, 2, (size // 4, size // 4)), np.ones((4, 4)))
    ramp = np.linspace(0.2, 1.0, size)[None, :].repeat(size, 0)
    image = np.stack([blocks, ramp, 1 - blocks], -1).astype(np.float32)
    return {"image": image, "mask": np.where(blocks > 0.5, 1, 2).astype(np.int32)}


AUG = dict(augment=True, image_size=16, min_scale=0.6, max_scale=1.6, flip_prob=0.5)


def test_augmentation_moves_image_and_mask_together():
    example = _striped_pair()  # 24 x 24
    flips = 0
    for seed in range(40):
        # scale 1.5: the 16-pixel output side scaled is 24, the image's own (no resampling),
        # so a pure crop and flip; then random scales, which resample image and mask
        for exact, kw in ((True, dict(min_scale=1.5, max_scale=1.5)), (False, {})):
            out = preprocess_pair(example, np.random.default_rng(seed), {**AUG, **kw}, train=True)
            image, mask = out["image"], out["mask"]
            chex.assert_shape([image, mask], [(16, 16, 3), (16, 16)])
            assert image.dtype == np.float32 and mask.dtype == np.int32
            real = mask != IGNORE_LABEL
            assert set(np.unique(mask).tolist()) <= {1, 2, IGNORE_LABEL}
            np.testing.assert_array_equal(image[~real], 0.0)  # padding: 0 (no normalisation)
            bright = image[..., 0] > 0.5
            if exact:
                assert real.all()
                np.testing.assert_array_equal(mask == 1, bright)
                flips += bool(image[0, 0, 1] > image[0, -1, 1])  # the ramp rises unless flipped
            else:  # every pixel whose colour is clearly decided agrees with the mask
                clear = real & (np.abs(image[..., 0] - 0.5) > 0.25)
                np.testing.assert_array_equal(mask[clear] == 1, bright[clear])
                assert clear.sum() > 0.5 * real.sum()
    assert 8 <= flips <= 32


def test_flip_mirrors_the_same_crop_and_the_same_seed_gives_the_same_pair():
    example = _striped_pair(seed=2)
    for seed in range(10):
        kept = preprocess_pair(example, np.random.default_rng(seed), {**AUG, "flip_prob": 0.0}, True)
        flipped = preprocess_pair(example, np.random.default_rng(seed), {**AUG, "flip_prob": 1.0},
                                  True)
        again = preprocess_pair(example, np.random.default_rng(seed), {**AUG, "flip_prob": 0.0},
                                True)
        for key in ("image", "mask"):
            np.testing.assert_array_equal(flipped[key], kept[key][:, ::-1])
            np.testing.assert_array_equal(again[key], kept[key])
    a = preprocess_pair(example, np.random.default_rng(0), AUG, True)
    b = preprocess_pair(example, np.random.default_rng(1), AUG, True)
    assert not np.array_equal(a["image"], b["image"])


def test_padding_is_ignore_label_and_the_mean_colour():
    example = _striped_pair(size=16)
    c = dict(augment=True, image_size=16, min_scale=0.5, max_scale=0.5, flip_prob=0.0,
             normalize_mean=(0.5, 0.4, 0.3), normalize_std=(0.2, 0.2, 0.2))
    for seed in range(5):
        out = preprocess_pair(example, np.random.default_rng(seed), c, True)
        real = out["mask"] != IGNORE_LABEL
        assert real.sum() == 64  # the 8 x 8 scaled picture, somewhere in the 16 x 16 window
        rows, cols = np.flatnonzero(real.any(1)), np.flatnonzero(real.any(0))
        assert len(rows) == len(cols) == 8 and np.ptp(rows) == np.ptp(cols) == 7
        np.testing.assert_allclose(out["image"][~real], 0.0, atol=1e-6)  # the mean, normalised


def test_eval_resizes_bilinear_and_nearest_then_normalises():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (12, 18, 3)).astype(np.uint8)
    mask = rng.choice(np.array([0, 4, IGNORE_LABEL]), size=(12, 18)).astype(np.uint8)[..., None]
    c = dict(image_size=8, augment=True, normalize_mean=(0.5,), normalize_std=(0.5,))
    out = preprocess_pair({"image": image, "mask": mask, "label": 3}, rng, c, train=False)
    expected = (resize(image.astype(np.float32) / 255, 8, 8) - 0.5) / 0.5
    np.testing.assert_allclose(out["image"], expected, atol=1e-6)
    np.testing.assert_array_equal(out["mask"], resize_nearest(mask[..., 0], 8, 8))
    assert out["mask"].dtype == np.int32 and out["label"] == 3
    kept = preprocess_pair({"image": image, "mask": mask}, rng, {}, train=True)  # defaults: keep
    np.testing.assert_allclose(kept["image"], image / 255, atol=1e-6)
    np.testing.assert_array_equal(kept["mask"], mask[..., 0])


def test_preprocess_pair_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"config.dataset.name='shapes' gives no 'mask' \(keys: "
                                          r"image, label\); .*config.dataset.masks=True"):
        preprocess_pair({"image": np.zeros((4, 4, 3)), "label": 0}, None,
                        {"name": "shapes"}, False)
    with pytest.raises(ConfigError, match=r"an image is 4x4 but its mask is 4x5"):
        preprocess_pair({"image": np.zeros((4, 4, 3)), "mask": np.zeros((4, 5))}, None, {}, False)
    with pytest.raises(ConfigError, match=r"min_scale=2.0 exceeds max_scale=1.0"):
        preprocess_pair(_striped_pair(), np.random.default_rng(0),
                        {"augment": True, "min_scale": 2.0, "max_scale": 1.0}, True)


def test_shapes_masks_through_the_train_and_eval_pipelines():
    c = ml_collections.ConfigDict({"name": "shapes", "masks": True, "image_size": 16,
                                   "num_eval_examples": 5, "augment": True})
    prep = functools.partial(preprocess_pair, dataset_config=c)
    batch = next(iter(train_dataset(c, 0, 4, lambda ex, rng, train: prep(ex, rng, train=train))))
    chex.assert_shape([batch["image"], batch["mask"]], [(4, 16, 16, 3), (4, 16, 16)])
    assert batch["mask"].dtype == np.int32
    evals = list(eval_batches(c, 0, 4, lambda ex, rng, train: prep(ex, rng, train=train)))
    source = make_source(c, "test", 0)
    np.testing.assert_array_equal(evals[0]["mask"], np.stack([source[i]["mask"] for i in range(4)]))


# ------------------------------------------------------------------ users' mask folders
def _png(path, pixels) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def _folder(root, n: int = 4, size=(6, 5), classes: int = 3, seed: int = 0):
    """root/images/{i}.png (or .jpg) and root/masks/{i}.png: image i all grey level 10 i, its
    mask random classes (P palette files for even i, L for odd)."""
    rng = np.random.default_rng(seed)
    masks = {}
    os.makedirs(root / "masks", exist_ok=True)
    for i in range(n):
        _png(str(root / "images" / f"{i}.png"), np.full(size + (3,), 10 * i, np.uint8))
        masks[i] = rng.integers(0, classes, size).astype(np.uint8)
        if i % 2:
            _png(str(root / "masks" / f"{i}.png"), masks[i])
        else:
            write_mask(str(root / "masks" / f"{i}.png"), masks[i])
    return masks


def _mask_source(path, split: str = "train", **fields):
    return make_source(ml_collections.ConfigDict({"name": "mask_folder", "path": str(path),
                                                  **fields}), split, 0)


def test_mask_folder_reads_pairs_as_pillow_does(tmp_path):
    masks = _folder(tmp_path)
    rng = np.random.default_rng(5)
    sub = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)  # a nested JPEG and its mask
    _png(str(tmp_path / "images" / "street" / "a.jpg"), sub)
    _png(str(tmp_path / "masks" / "street" / "a.png"), np.full((6, 5), IGNORE_LABEL, np.uint8))
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    src = _mask_source(tmp_path / "images", eval_path=str(tmp_path / "images"), num_classes=3)
    assert len(src) == 5
    for i in range(4):
        ex = src[i]
        assert ex["image"].dtype == np.float32 and ex["image"].shape == (6, 5, 3)
        np.testing.assert_allclose(ex["image"], 10 * i / 255, atol=1e-6)
        assert ex["mask"].dtype == np.int32
        np.testing.assert_array_equal(ex["mask"], masks[i])
    jpeg = np.asarray(Image.open(tmp_path / "images" / "street" / "a.jpg").convert("RGB")) / 255
    np.testing.assert_allclose(src[4]["image"], jpeg, atol=1e-6)
    assert (src[4]["mask"] == IGNORE_LABEL).all()
    grey = _mask_source(tmp_path / "images", eval_path=str(tmp_path / "images"), num_classes=3,
                        channels=1)[1]["image"]
    assert grey.shape == (6, 5, 1)
    out = preprocess_pair(src[0], np.random.default_rng(0), {"image_size": 4}, False)
    chex.assert_shape([out["image"], out["mask"]], [(4, 4, 3), (4, 4)])


def test_mask_folder_split_mask_path_inside_and_eval_folder(tmp_path):
    _folder(tmp_path / "a", n=10)
    train = _mask_source(tmp_path / "a" / "images", num_classes=3)
    test = _mask_source(tmp_path / "a" / "images", "test", num_classes=3)
    ids = lambda s: {round(float(s[i]["image"][0, 0, 0]) * 25.5) for i in range(len(s))}
    assert len(test) == 1 and not ids(train) & ids(test) and len(ids(train) | ids(test)) == 10
    # masks in a sub-folder of the image folder: not read as images
    inner = tmp_path / "b"
    _png(str(inner / "x.png"), np.zeros((3, 3, 3), np.uint8))
    _png(str(inner / "labels" / "x.png"), np.ones((3, 3), np.uint8))
    src = _mask_source(inner, mask_path=str(inner / "labels"), eval_path=str(inner))
    assert len(src) == 1 and (src[0]["mask"] == 1).all()
    # a separate eval folder finds its masks beside it
    _folder(tmp_path / "val", n=2, seed=3)
    val = _mask_source(tmp_path / "a" / "images", "test", eval_path=str(tmp_path / "val" / "images"),
                       num_classes=3)
    assert len(val) == 2


def test_mask_folder_errors_are_one_line(tmp_path):
    def fails(match: str, path, split: str = "train", read: int | None = None, **fields) -> None:
        with pytest.raises(ConfigError, match=match) as info:
            src = _mask_source(path, split, eval_path=str(path), **fields)
            if read is not None:
                src[read]
        assert "\n" not in str(info.value)

    fails(r"config.dataset.path is not set", "")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    fails(r"path='.*empty/images' holds no images \(read: .png", tmp_path / "empty" / "images")
    _folder(tmp_path / "nomasks", n=2)
    os.rename(tmp_path / "nomasks" / "masks", tmp_path / "nomasks" / "other")
    fails(r"config.dataset.mask_path='.*nomasks/masks' is not a folder; give the folder of the "
          r"masks of .* \(default: a folder 'masks' beside it\)", tmp_path / "nomasks" / "images")

    _folder(tmp_path / "d", n=6)
    for i in (1, 3, 4, 5):
        os.remove(tmp_path / "d" / "masks" / f"{i}.png")
    fails(r"images': 4 image\(s\) have no mask \('1', '3', '4', \.\.\.\) in config.dataset."
          r"mask_path=.*; give each image a mask <same name>.png", tmp_path / "d" / "images")
    _folder(tmp_path / "e", n=3)
    os.remove(tmp_path / "e" / "images" / "2.png")
    fails(r"masks': 1 mask\(s\) have no image \('2'\) in config.dataset.path=",
          tmp_path / "e" / "images")
    _folder(tmp_path / "f", n=2)
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "f" / "masks" / "0.jpg")
    os.remove(tmp_path / "f" / "masks" / "0.png")
    fails(r"holds 1 mask\(s\) not saved as PNG \('0.jpg'\); save masks as PNG",
          tmp_path / "f" / "images")
    _folder(tmp_path / "g", n=2)
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "g" / "images" / "0.jpg")
    fails(r"'0.jpg' and '0.png' share one name", tmp_path / "g" / "images")

    _folder(tmp_path / "v", n=2, classes=5)
    fails(r"images': the mask .*v/masks/\d.png holds mask value [34], but config.dataset."
          r"num_classes=2 allows 0..1 \(255 = ignore\); raise config.dataset.num_classes and "
          r"config.model.num_classes to at least [45]", tmp_path / "v" / "images", read=0)
    _folder(tmp_path / "s", n=2)
    write_mask(str(tmp_path / "s" / "masks" / "1.png"), np.zeros((6, 4)))
    fails(r"images': image 1 \(.*s/images/1.png\) is 6x5 but its mask \(.*s/masks/1.png\) is 6x4; "
          r"a mask must have its image's size", tmp_path / "s" / "images", read=1, num_classes=3)
    _folder(tmp_path / "z", n=2)
    _png(str(tmp_path / "z" / "images" / "1.png"), np.zeros((4, 4, 3), np.uint8))
    write_mask(str(tmp_path / "z" / "masks" / "1.png"), np.zeros((4, 4)))
    fails(r"image 1 \(.*1.png\) is 4x4 but image 0 \(.*0.png\) is 6x5; set config.dataset."
          r"image_size", tmp_path / "z" / "images", read=1, num_classes=3)
    assert _mask_source(tmp_path / "z" / "images", eval_path=str(tmp_path / "z" / "images"),
                        num_classes=3, image_size=4)[1]["image"].shape == (4, 4, 3)  # resized later
    fails(r"class_names has 2 names but config.dataset.num_classes=3", tmp_path / "z" / "images",
          num_classes=3, class_names=("a", "b"))
    write_mask(str(tmp_path / "z" / "masks" / "0.png"), np.zeros((6, 5)))
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "z" / "masks" / "0.png")
    fails(r"the mask of image 0 \(.*0.png\) is a RGB picture", tmp_path / "z" / "images", read=0,
          num_classes=3)


# ------------------------------------------------------------------ TFDS adapters
@pytest.mark.parametrize("name, fields, allowed", [
    ("oxford_iiit_pet", {}, {0, 1, 2}),
    ("oxford_iiit_pet", {"border": "ignore"}, {0, 1}),
    ("scene_parse150", {}, set(range(100))),
    ("scene_parse150", {"other": "class"}, set(range(101))),
    ("cityscapes", {}, set(range(19))),
])
def test_tfds_adapters_on_mock_data(name, fields, allowed):
    c = ml_collections.ConfigDict({"name": name, "image_size": 16, **fields})
    with tfds.testing.mock_data(num_examples=2):
        source = make_source(c, "train", 0)
        examples = [source[i] for i in range(2)]
    assert len(source) == 2 and source.num_classes == len(allowed)
    for ex in examples:
        assert set(ex) == {"image", "mask"}
        assert ex["image"].dtype == np.uint8 and ex["image"].ndim == 3 and ex["image"].shape[-1] == 3
        assert ex["mask"].dtype == np.int32 and ex["mask"].shape == ex["image"].shape[:2]
        assert set(np.unique(ex["mask"]).tolist()) <= allowed | {IGNORE_LABEL}
    batch = stack_examples([preprocess_pair(ex, np.random.default_rng(0), c, False)
                            for ex in examples])
    chex.assert_shape([batch["image"], batch["mask"]], [(2, 16, 16, 3), (2, 16, 16)])


def test_tfds_label_maps_on_hand_made_examples():
    """The real datasets' label values (mock data draws arbitrary bytes)."""
    trimap = np.array([[1, 2, 3], [3, 2, 1]], np.uint8)[..., None]
    np.testing.assert_array_equal(pet_table("class")[trimap[..., 0]], [[1, 0, 2], [2, 0, 1]])
    np.testing.assert_array_equal(pet_table("ignore")[trimap[..., 0]], [[1, 0, 255], [255, 0, 1]])

    class Fake:
        def __init__(self, example):
            self.example = example

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return self.example

    red = np.array([[0, 1, 100], [4, 4, 0]], np.uint8)
    green = np.array([[0, 7, 8], [9, 10, 0]], np.uint8)  # instance ids: dropped
    annotation = np.stack([red, green, np.zeros_like(red)], -1)
    grey = np.zeros((2, 3), np.uint8)
    src = SegmentationTFDS(Fake({"image": grey, "annotation": annotation}), "image", "annotation",
                           0, ade_table("ignore"), ADE_INSTANCE_CLASSES)
    ex = src[0]
    np.testing.assert_array_equal(ex["mask"], [[255, 0, 99], [3, 3, 255]])
    assert ex["image"].shape == (2, 3, 3) and ADE_INSTANCE_CLASSES[3] == "person"
    np.testing.assert_array_equal(ade_table("class")[red], red)
    ids = np.array([[0, 7, 26], [33, 6, 24]], np.uint8)  # Cityscapes label ids
    np.testing.assert_array_equal(lookup_table(CITYSCAPES_TRAIN_IDS)[ids],
                                  [[255, 0, 13], [18, 255, 11]])
