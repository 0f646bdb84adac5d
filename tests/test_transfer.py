"""Transfer learning end to end on the CNN configs: init_from, new heads, freezing, BN stats."""

from __future__ import annotations

import chex
import jax
import numpy as np

from benchmarks.bench_cnn import torch_reference_models
from dl_arch.interop.torchvision import convert_resnet, main, save_for_init_from
from dl_arch.testing import load_config
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.paths import flatten_with_paths

FROZEN = ("^conv1/", "^bn1/", "^layer1_")  # the stem and the first stage


def _frozen(path: str) -> bool:
    return path.startswith(("conv1/", "bn1/", "layer1_"))


def test_finetune_with_new_head_and_frozen_stem(tmp_path, caplog):
    config = load_config("configs/resnet_shapes.py:smoke")
    config.evaluators = ("confusion_matrix",)  # no feature maps: not what is tested
    del config.feature_maps
    train_and_evaluate(config, str(tmp_path / "pre"))
    pre = restore_raw_state(str(tmp_path / "pre"))

    config.model.num_classes = config.dataset.num_classes = 3  # a new task: new head
    config.init_from = str(tmp_path / "pre")
    config.freeze = FROZEN
    with caplog.at_level("INFO", logger="dl_arch"):
        train_and_evaluate(config, str(tmp_path / "fine"))
    fine = restore_raw_state(str(tmp_path / "fine"))
    assert "skipped: head/kernel" in caplog.text

    pre_p, fine_p = flatten_with_paths(pre["params"]), flatten_with_paths(fine["params"])
    assert fine_p["head/kernel"].shape == (16, 3) and pre_p["head/kernel"].shape == (16, 6)
    for path, value in fine_p.items():
        if _frozen(path):
            np.testing.assert_array_equal(value, pre_p[path], err_msg=path)  # bit-identical
        elif not path.startswith("head/"):
            assert not np.array_equal(value, pre_p[path]), f"{path} was not trained"
    pre_s = flatten_with_paths(pre["mutable"]["batch_stats"])
    fine_s = flatten_with_paths(fine["mutable"]["batch_stats"])
    assert set(pre_s) == set(fine_s)
    for path, value in fine_s.items():
        if _frozen(path):  # statistics of frozen BatchNorms stay fixed
            np.testing.assert_array_equal(value, pre_s[path], err_msg=path)
        else:
            assert not np.array_equal(value, pre_s[path]), f"{path} statistics did not move"


def test_finetune_from_converted_torchvision_weights(tmp_path):
    torch, TorchResNet, _ = torch_reference_models()
    torch.manual_seed(0)
    ref = TorchResNet((1, 1), "basic", num_classes=1000, width=8, small=True)
    variables = convert_resnet({k: v.numpy() for k, v in ref.state_dict().items()})
    save_for_init_from(variables, str(tmp_path / "tv"))

    config = load_config("configs/resnet_shapes.py:smoke")  # resnet_tiny: same trunk
    config.evaluators = ("confusion_matrix",)  # no feature maps: not what is tested
    del config.feature_maps
    config.init_from = str(tmp_path / "tv")
    config.freeze = FROZEN
    config.num_train_steps = 2
    train_and_evaluate(config, str(tmp_path / "fine"))
    fine = restore_raw_state(str(tmp_path / "fine"))
    for path, value in flatten_with_paths(variables["params"]).items():
        got = flatten_with_paths(fine["params"])[path]
        if path.startswith("head/"):
            assert got.shape != value.shape  # 1000 ImageNet classes -> 6 shapes
        elif _frozen(path):
            np.testing.assert_array_equal(got, value, err_msg=path)
        else:
            assert got.shape == value.shape and not np.array_equal(got, value), path
    chex.assert_trees_all_equal(flatten_with_paths(fine["mutable"]["batch_stats"])["bn1/mean"],
                                variables["batch_stats"]["bn1"]["mean"])


def test_conversion_cli_writes_an_init_from_directory(tmp_path):
    from safetensors.numpy import save_file

    torch, TorchResNet, _ = torch_reference_models()
    ref = TorchResNet((1, 1), "basic", num_classes=5, width=4, small=True)
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    main(["--model", "resnet18", "--weights", str(tmp_path / "w.safetensors"),
          "--out", str(tmp_path / "out")])
    raw = restore_raw_state(str(tmp_path / "out"))
    chex.assert_trees_all_equal(jax.tree_util.tree_map(np.asarray, raw["params"]),
                                convert_resnet(sd)["params"])
