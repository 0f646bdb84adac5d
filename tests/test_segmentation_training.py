"""The segmentation family end to end: every model overfits one batch through the Trainer,
users' mask folders train through launch.py and --sample writes their masks, TFDS configs
run on mock data, and a classification run's encoder transfers into a segmenter (through
the offline config, with its evaluators)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from dl_arch.data.masks import write_mask
from dl_arch.testing import MANY_STEPS_OPTIONS, first_batch, load_config, overfit_one_batch
from dl_arch.train import compile_options
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.loop import build_task, train_and_evaluate
from dl_arch.train.paths import flatten_with_paths

# label -> (smoke config, image side, learning rate, steps, mean IoU the batch must reach);
# the models that score at 1/8 of the input get 64x64 images (8x8 scores); FCN-32s gets
# 128x128 (4x4 scores), whose bilinear upsampling cannot trace outlines: a lower bar, and 150
# steps (after 100, still descending, two float orders of the same math scored 0.62 and 0.82)
OVERFIT = {
    "unet": ("configs/unet_shapes.py:smoke", 32, 1e-2, 100, 0.9),
    "unet_noskip": ("configs/unet_shapes.py:smoke,skips=False", 32, 1e-2, 100, 0.9),
    "fcn8s": ("configs/fcn_shapes.py:smoke", 64, 1e-2, 100, 0.9),
    "fcn32s": ("configs/fcn_shapes.py:smoke,stride=32", 128, 1e-2, 150, 0.7),
    "deeplabv3": ("configs/deeplabv3_shapes.py:smoke", 64, 1e-2, 100, 0.9),
    "fcn_resnet": ("configs/segmentation_pet.py:smoke,model=fcn_resnet50", 64, 1e-2, 100, 0.9),
    "vit_segmenter": ("configs/vit_segmenter_shapes.py:smoke", 32, 3e-3, 100, 0.9),
}


@pytest.fixture
def models_at_o1(monkeypatch):
    """Model programs compiled at LLVM -O1 instead of the tests' -O0 (`TEST_XLA_FLAGS`), as
    the many-step helpers' are: at -O0, jaxlib 0.10.2 on an AVX-512 AMD EPYC gave U-Net's
    whole train step NaN gradients in its first down block from the third step, while -O1,
    XLA's default, and the same gradients compiled alone were finite (docs/results/test_suite.md)."""
    base = compile_options._model_options()
    monkeypatch.setattr(compile_options, "_model_options",
                        lambda: (*base, *MANY_STEPS_OPTIONS.items()))


def batch_scores(config, state) -> dict[str, float]:
    """The task's eval metrics on the config's first training batch."""
    task = build_task(config)
    batch = first_batch(config, task)
    totals = jax.device_get(jax.jit(task.eval_metrics)({"params": state.params, **state.mutable},
                                                       batch))
    return task.finalize_metrics(totals)


@pytest.mark.parametrize("label", sorted(OVERFIT))
def test_every_segmenter_overfits_one_batch(label):
    spec, side, lr, steps, target = OVERFIT[label]
    config = load_config(spec)
    if config.dataset.name != "shapes":  # the TFDS configs' tiny models, on shapes masks
        smoke = load_config("configs/unet_shapes.py:smoke")
        smoke.model = config.model
        smoke.model.num_classes = smoke.dataset.num_classes + 1
        config = smoke
    config.batch_size = 4
    config.dataset.image_size = side
    config.dataset.num_objects = config.dataset.max_objects = 1
    config.dataset.min_size, config.dataset.max_size = 0.3, 0.6
    config.optimizer.learning_rate = lr
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    config.optimizer.weight_decay = 0.0
    history, state = overfit_one_batch(config, steps=steps)
    scores = batch_scores(config, state)
    assert history[-1]["loss"] < 0.3 * history[0]["loss"], (history[0], history[-1])
    assert scores["mean_iou"] >= target, scores


def _square_scenes(folder, count: int, size: int, seed: int) -> None:
    """`count` dark images with one bright square each, and its mask (1 on the square)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "images")
    os.makedirs(folder / "masks")
    for i in range(count):
        side = int(rng.integers(size // 4, size // 2))
        y, x = rng.integers(0, size - side, size=2)
        mask = np.zeros((size, size), np.uint8)
        mask[y:y + side, x:x + side] = 1
        image = rng.uniform(0, 60, (size, size, 3)) + mask[..., None] * 150
        Image.fromarray(image.astype(np.uint8)).save(folder / "images" / f"scene{i:03d}.png")
        write_mask(str(folder / "masks" / f"scene{i:03d}.png"), mask)


def test_unet_learns_a_users_mask_folder_and_sample_writes_masks(tmp_path, launch_cli,
                                                                 models_at_o1):
    """configs/unet_shapes.py:data=FOLDER through launch.py: learns the squares, then
    --sample segments new images into PNG masks of their own size."""
    _square_scenes(tmp_path / "data", 96, 32, seed=0)
    work = str(tmp_path / "run")
    spec = f"--config=configs/unet_shapes.py:smoke,data={tmp_path / 'data' / 'images'}"
    flags = ["--config.num_train_steps=80", "--config.optimizer.learning_rate=0.01",
             "--config.eval_every_steps=80", "--config.eval_max_batches=0",
             "--config.progress=none"]
    code, _, err = launch_cli(spec, f"--workdir={work}", *flags)
    assert code == 0, err[-3000:]
    with open(os.path.join(work, "summary.json")) as f:
        summary = json.load(f)
    assert summary["eval/mean_iou"] > 0.8, summary

    _square_scenes(tmp_path / "new", 3, 40, seed=1)  # another size: masks come back at 40x40
    out = tmp_path / "masks_out"
    code, _, err = launch_cli(spec, f"--workdir={work}", "--sample",
                              f"--config.sample.images={tmp_path / 'new' / 'images'}",
                              f"--config.sample.output={out}")
    assert code == 0, err[-3000:]
    for i in range(3):
        predicted = np.asarray(Image.open(out / f"scene{i:03d}.png"))
        truth = np.asarray(Image.open(tmp_path / "new" / "masks" / f"scene{i:03d}.png"))
        assert predicted.shape == (40, 40)
        inter = np.sum((predicted == 1) & (truth == 1))
        assert inter / np.sum((predicted == 1) | (truth == 1)) > 0.6


def test_pet_config_runs_on_mock_tfds_data(tmp_path, models_at_o1):
    """configs/segmentation_pet.py:smoke: mock oxford_iiit_pet -> trimaps -> the loop."""
    config = load_config("configs/segmentation_pet.py:smoke")
    assert config.model.num_classes == 3
    with tfds.testing.mock_data(num_examples=8):
        summary = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(summary["eval/loss"]) and 0.0 <= summary["eval/mean_iou"] <= 1.0


def test_classification_encoder_transfers_into_a_segmenter(tmp_path):
    """A ResNet classifier's run -> init_from of fcn_resnet: every encoder tensor loads."""
    cls = load_config("configs/resnet_shapes.py:smoke")
    cls.model = dict(name="resnet50", stage_sizes=(1, 1, 1, 1), width=8, stem="imagenet",
                     num_classes=cls.dataset.num_classes)
    cls.dataset.image_size = 64
    cls.evaluators = ("confusion_matrix",)
    del cls.feature_maps
    train_and_evaluate(cls, str(tmp_path / "cls"))
    pre = flatten_with_paths(restore_raw_state(str(tmp_path / "cls"))["params"])

    seg = load_config("configs/unet_shapes.py:smoke,image_size=64")
    seg.model = dict(name="fcn_resnet_tiny", num_classes=seg.dataset.num_classes + 1)
    seg.init_from = str(tmp_path / "cls")
    seg.num_train_steps = 2
    seg.freeze = ("^conv1/", "^bn1/", "^layer")  # the encoder keeps the loaded values
    summary = train_and_evaluate(seg, str(tmp_path / "seg"))
    assert 0.0 <= summary["eval/iou_large"] <= 1.0  # the config's iou_by_size evaluator ran
    post = flatten_with_paths(restore_raw_state(str(tmp_path / "seg"))["params"])
    encoder = [k for k in post if k.startswith(("conv1/", "bn1/", "layer"))]
    assert len(encoder) > 20
    for key in encoder:
        np.testing.assert_array_equal(post[key], pre[key], err_msg=key)
    assert not any(k.startswith("head/") for k in post)  # the classifier's head is not carried
