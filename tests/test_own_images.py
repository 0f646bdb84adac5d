"""`image_folder`: a user's folder of images by class, against Pillow's own reading; the
train/eval split; every bad layout as one line; and the image configs' `:data=PATH` option
training a classifier, an autoencoder and a GAN on folders these tests write."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from dl_arch.config.errors import ConfigError
from dl_arch.config.resolve import resolve_config
from dl_arch.data.image_files import data_classes
from dl_arch.data.pipeline import make_source
from dl_arch.testing import load_config
from dl_arch.train.loop import restore_for_inference, train_and_evaluate


def write_png(path: str, pixels: np.ndarray) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def brightness_folder(root: str, per_class: int, seed: int = 0, size: int = 24) -> str:
    """Two classes of noisy RGB pictures, `dark` (values 0-100) and `light` (150-255)."""
    rng = np.random.default_rng(seed)
    for name, (lo, hi) in {"dark": (0, 100), "light": (150, 255)}.items():
        for i in range(per_class):
            write_png(os.path.join(root, name, f"{i:03d}.png"),
                      rng.integers(lo, hi, (size, size, 3)).astype(np.uint8))
    return root


def source(path: str, split: str = "train", **fields) -> object:
    """The `image_folder` source of `path` (undeclared fields take their defaults)."""
    return make_source(ml_collections.ConfigDict({"name": "image_folder", "path": path,
                                                  **fields}), split, 0)


# ------------------------------------------------------------------ reading
def test_examples_equal_pillows_reading_labels_follow_sorted_folders(tmp_path):
    rng = np.random.default_rng(1)
    files = {  # class folders out of order; a PNG, a greyscale PNG, an RGBA PNG, a JPEG
        "zebra": [("a.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)),
                  ("nested/b.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))],
        "ant": [("c.png", rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)),
                ("d.jpg", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))],
    }
    for name, entries in files.items():
        for file, pixels in entries:
            write_png(str(tmp_path / name / file), pixels)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    for channels, mode in ((3, "RGB"), (1, "L")):
        src = source(str(tmp_path), eval_path=str(tmp_path), channels=channels)
        assert src.class_names == ("ant", "zebra") and len(src) == 4
        order = [("ant", "c.png"), ("ant", "d.jpg"), ("zebra", "a.png"), ("zebra", "nested/b.png")]
        for i, (name, file) in enumerate(order):
            expected = np.asarray(Image.open(tmp_path / name / file).convert(mode), np.float32)
            expected = expected.reshape(6, 5, channels) / 255.0
            ex = src[i]
            np.testing.assert_allclose(ex["image"], expected, atol=1e-6)
            assert ex["image"].dtype == np.float32 and ex["label"].dtype == np.int32
            assert int(ex["label"]) == ("ant", "zebra").index(name)


def test_resize_crop_keeps_the_centre_and_stretch_keeps_everything(tmp_path):
    # 16 x 32: a black quarter, a white half, a grey quarter from left to right
    pixels = np.zeros((16, 32), np.uint8)
    pixels[:, 8:24], pixels[:, 24:] = 255, 128
    write_png(str(tmp_path / "one" / "x.png"), pixels)
    write_png(str(tmp_path / "two" / "y.png"), pixels)
    crop = source(str(tmp_path), eval_path=str(tmp_path), image_size=8, channels=1)[0]["image"]
    assert crop.shape == (8, 8, 1)
    # the central square is the white half (its edge columns blend in the resize filter)
    np.testing.assert_allclose(crop[:, 1:7], 1.0, atol=1e-5)
    assert crop.min() > 0.8
    stretch = source(str(tmp_path), eval_path=str(tmp_path), image_size=8, channels=1,
                     resize_mode="stretch")[0]["image"]
    assert stretch.shape == (8, 8, 1)
    assert stretch[:, 0].max() < 0.05 and stretch[:, 4].min() > 0.95
    assert abs(float(stretch[:, 7].mean()) - 128 / 255) < 0.05


def test_flat_folder_is_one_unlabelled_class(tmp_path):
    for i in range(3):
        write_png(str(tmp_path / f"{i}.png"), np.full((4, 4, 3), 40 * i, np.uint8))
    src = source(str(tmp_path), eval_path=str(tmp_path))
    assert src.class_names == () and len(src) == 3
    assert [int(src[i]["label"]) for i in range(3)] == [0, 0, 0]
    assert data_classes(str(tmp_path)) == ()


def test_train_eval_split_disjoint_complete_and_seeded(tmp_path):
    for i in range(30):  # every image one grey level: its identity
        write_png(str(tmp_path / ("a" if i % 2 else "b") / f"{i}.png"),
                  np.full((3, 3), i, np.uint8))

    def ids(split: str, seed: int) -> list[int]:
        src = source(str(tmp_path), split, eval_fraction=0.2, split_seed=seed)
        return sorted(round(float(src[i]["image"][0, 0, 0]) * 255) for i in range(len(src)))

    train, test = ids("train", 0), ids("test", 0)
    assert len(test) == 6 and not set(train) & set(test)
    assert sorted(train + test) == list(range(30))
    assert ids("test", 0) == test and ids("test", 1) != test


def test_eval_folder_keeps_the_train_folders_labels(tmp_path):
    for name in ("cat", "dog", "eel"):
        write_png(str(tmp_path / "train" / name / "0.png"), np.zeros((4, 4, 3), np.uint8))
    write_png(str(tmp_path / "eval" / "eel" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    src = source(str(tmp_path / "train"), "test", eval_path=str(tmp_path / "eval"))
    assert len(src) == 1 and int(src[0]["label"]) == 2 and src.class_names == ("cat", "dog", "eel")
    with pytest.raises(ConfigError, match=r"eval_path=.*class folder 'fox' is not among the "
                                          r"classes \(cat, dog, eel\)"):
        write_png(str(tmp_path / "eval" / "fox" / "0.png"), np.zeros((4, 4, 3), np.uint8))
        source(str(tmp_path / "train"), "test", eval_path=str(tmp_path / "eval"))


# ------------------------------------------------------------------ one-line errors
def test_bad_folders_are_one_line_errors(tmp_path):
    def fails(match: str, path: str, split: str = "train", **fields) -> None:
        with pytest.raises(ConfigError, match=match) as info:
            source(path, split, **fields)
        assert "\n" not in str(info.value)

    fails(r"config.dataset.path is not set", "")
    fails(r"config.dataset.path='.*nowhere': no such file or folder", str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    fails(r"path='.*empty' is empty; put one sub-folder of images per class", str(tmp_path / "empty"))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.csv").write_text("1,2")
    fails(r"text' holds no images .*found e.g. 'a.csv'", str(tmp_path / "text"))
    write_png(str(tmp_path / "mixed" / "cls" / "a.png"), np.zeros((4, 4), np.uint8))
    write_png(str(tmp_path / "mixed" / "loose.png"), np.zeros((4, 4), np.uint8))
    fails(r"holds both class sub-folders \(cls\) and 1 loose image\(s\) \(e.g. 'loose.png'\)",
          str(tmp_path / "mixed"))
    write_png(str(tmp_path / "hollow" / "a" / "a.png"), np.zeros((4, 4), np.uint8))
    (tmp_path / "hollow" / "b").mkdir()
    fails(r"class folder\(s\) 'b' hold no images", str(tmp_path / "hollow"))
    write_png(str(tmp_path / "sizes" / "a" / "0.png"), np.zeros((4, 4), np.uint8))
    write_png(str(tmp_path / "sizes" / "b" / "1.png"), np.zeros((4, 6), np.uint8))
    fails(r"image 1 \(.*1.png\) is 4x6 but image 0 \(.*0.png\) is 4x4; set "
          r"config.dataset.image_size", str(tmp_path / "sizes"))
    assert len(source(str(tmp_path / "sizes"), eval_path=str(tmp_path / "sizes"),
                      image_size=4)) == 2  # resized: mixed sizes are fine
    fails(r"has 2 classes \(a, b\) but the model was built for config.dataset.num_classes=1",
          str(tmp_path / "sizes"), image_size=4, num_classes=1)
    fails(r"holds 1 example\(s\); a train/eval split needs at least 2", str(tmp_path / "hollow" / "a"))


def test_corrupt_image_is_named_with_its_index_when_read(tmp_path):
    write_png(str(tmp_path / "a" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    bad = tmp_path / "b" / "1.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    src = source(str(tmp_path), eval_path=str(tmp_path), image_size=4)  # built: not yet read
    src[0]
    with pytest.raises(ConfigError, match=r"path=.*: image 1 \(.*b/1.png\) is not a readable "
                                          r"image: .*; fix or remove the file"):
        src[1]


def test_config_data_option_errors(tmp_path):
    write_png(str(tmp_path / "flat" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"holds 0 class\(es\); a classifier needs at least 2"):
        load_config(f"configs/lenet5_shapes.py:data={tmp_path / 'flat'}")
    with pytest.raises(ConfigError, match=r"data='.*nowhere': no such file or folder"):
        load_config(f"configs/vit_shapes.py:data={tmp_path / 'nowhere'}")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ConfigError, match=r"a csv path is not a format this config reads; give "
                                          r"one of: folder, hf, npy, npz"):
        load_config(f"configs/resnet_shapes.py:data={tmp_path / 'x.csv'}")
    # the model's classes follow the folder; fewer on the command line fail in one line
    brightness_folder(str(tmp_path / "two"), 2, size=8)
    config = resolve_config(load_config(f"configs/vgg_shapes.py:smoke,data={tmp_path / 'two'}"),
                            [("dataset.num_classes", 1)])
    with pytest.raises(ConfigError, match=r"has 2 classes \(dark, light\) but the model was "
                                          r"built for config.dataset.num_classes=1"):
        make_source(config.dataset, "train", 0)


@pytest.mark.parametrize("name", ["lenet5", "resnet", "vgg", "alexnet", "googlenet",
                                  "mobilenet_v2", "vit", "ae", "dae", "vae", "dcgan"])
def test_every_image_config_reads_a_folder(tmp_path, name):
    brightness_folder(str(tmp_path), 3, size=20)
    config = resolve_config(load_config(f"configs/{name}_shapes.py:smoke,data={tmp_path}"))
    assert config.dataset.name == "image_folder" and config.dataset.path == str(tmp_path)
    assert config.dataset.class_names == ("dark", "light") and config.dataset.num_classes == 2
    if "num_classes" in config.model:
        assert config.model.num_classes == 2
    image = make_source(config.dataset, "train", 0)[0]["image"]
    model_shape = config.model.image_shape if "image_shape" in config.model else (32, 32, None)
    assert image.shape[:2] == tuple(model_shape[:2]) and image.shape[2] in (1, 3)


# ------------------------------------------------------------------ end to end: the model learns
def test_lenet5_learns_a_folder_through_launch(tmp_path, launch_cli):
    """Two brightness classes of 24x24 RGB PNGs; LeNet-5 sees them greyscale at 32x32."""
    data = brightness_folder(str(tmp_path / "data"), 60)
    workdir = tmp_path / "run"
    code, _, err = launch_cli(f"--config=configs/lenet5_shapes.py:smoke,data={data}",
                              f"--workdir={workdir}", "--config.num_train_steps=40",
                              "--config.eval_every_steps=40", "--config.checkpoint_every_steps=40")
    assert code == 0, err[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["eval/accuracy"] >= 0.9  # 12 held-out images; chance is 0.5
    config = json.loads((workdir / "config.json").read_text())  # the classes, by name
    assert config["dataset"]["class_names"] == ["dark", "light"]
    assert (workdir / "confusion_matrix.png").exists()


def test_autoencoder_reconstructs_a_flat_folder(tmp_path):
    """Squares of random brightness and place on black, in a flat folder: the reconstruction
    error falls well below that of the best constant answer, the mean image."""
    rng = np.random.default_rng(0)
    pictures = np.zeros((64, 16, 16), np.uint8)
    for i, pixels in enumerate(pictures):
        y, x = rng.integers(0, 10, 2)
        pixels[y:y + 6, x:x + 6] = rng.integers(80, 256)
        write_png(str(tmp_path / "data" / f"{i:02d}.png"), pixels)
    images = pictures.astype(np.float32) / 255.0
    mean_image_mse = float(((images - images.mean(0)) ** 2).mean())  # about 0.053
    config = load_config(f"configs/ae_shapes.py:smoke,channels=1,image_size=16,"
                         f"data={tmp_path / 'data'}")
    config.model.features = (16, 32)  # 16x16 -> 4x4
    config.num_train_steps = 80
    config.eval_every_steps = config.checkpoint_every_steps = 80
    config.log_every_steps = 10
    config.batch_size = 16
    config.optimizer.warmup_steps = 5
    config.optimizer.learning_rate = 3e-3
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        train = [r["train/mse"] for r in map(json.loads, f) if "train/mse" in r]
    assert summary["eval/mse"] < 0.3 * train[0]  # about 0.18 -> 0.03
    assert summary["eval/mse"] < 0.7 * mean_image_mse  # more than the average picture
    assert (tmp_path / "run" / "reconstruction.png").exists()


def test_gan_learns_a_flat_folder(tmp_path):
    """16x16 greyscale pictures of one kind in a flat folder: the top half a light grey, the
    bottom half a dark one (each drawn per picture), with pixel noise. The untrained generator
    draws flat mid-grey (its last layer's weights are N(0, 0.02), so tanh(~0) = 0.5); after
    100 steps its pictures have the data's mean image and each one is light above, dark below."""
    rng = np.random.default_rng(0)
    pictures = np.empty((96, 16, 16), np.int64)
    for i, pixels in enumerate(pictures):
        pixels[:8], pixels[8:] = rng.integers(170, 231), rng.integers(10, 51)
        pixels += rng.integers(-10, 11, (16, 16))
        write_png(str(tmp_path / "data" / f"{i:02d}.png"), pixels.astype(np.uint8))
    mean_image = pictures.mean(0) / 255.0  # about 0.78 above, 0.12 below
    config = load_config(f"configs/dcgan_shapes.py:smoke,image_size=16,features=8,latent_dim=8,"
                         f"data={tmp_path / 'data'}")
    assert config.evaluators == ("gan_samples",) and config.model.num_classes == 0  # flat: no classes
    config.model.num_stages = 2  # 4x4 -> 16x16
    config.num_train_steps = 100
    config.eval_every_steps = config.checkpoint_every_steps = 100
    config.log_every_steps = 50
    config.batch_size = 32
    config.ema_decay = 0.0  # over 100 steps a 0.999 average would still be mostly the init
    # the paper's 2e-4 (the config's, for 16000 steps) moves G a quarter of the way in 200
    # steps; 1e-3 for both networks learns the data in 100 (measured: MAD 0.035-0.06, seeds 0-3)
    config.phase_optimizers.discriminator.learning_rate = 1e-3
    config.phase_optimizers.generator.learning_rate = 1e-3
    train_and_evaluate(config, str(tmp_path / "run"))
    assert (tmp_path / "run" / "samples.png").exists()
    task, variables = restore_for_inference(config, str(tmp_path / "run"))
    untrained = task.model.init({"params": jax.random.key(0)}, jnp.zeros((1, 8)),
                                method="generate")  # G alone: all that drawing needs
    for name, vs in (("trained", variables), ("untrained", untrained)):
        images = task.generate_images(vs, 256, seed=1)[..., 0]
        # first moment: the mean generated picture against the data's, per pixel (untrained:
        # 0.33, |0.5 - 0.78| above and |0.5 - 0.12| below); 0.1 is under a third of that
        mad = float(np.abs(images.mean(0) - mean_image).mean())
        # every picture of the data is >= 120/255 = 0.47 lighter above than below (the
        # noise averages out over 128 pixels); 0.3 asks each generated one to be of the kind
        # (untrained: 0.0 for every picture), and 90% of them, not merely their average
        contrast = images[:, :8].mean((1, 2)) - images[:, 8:].mean((1, 2))
        of_the_kind = float((contrast > 0.3).mean())
        if name == "trained":
            assert mad < 0.1 and of_the_kind >= 0.9, (mad, of_the_kind)
        else:
            assert mad > 0.3 and of_the_kind == 0.0, (mad, of_the_kind)
