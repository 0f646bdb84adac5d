"""Converts torchvision state dicts (ResNet, VGG, AlexNet key layouts) into our variables.

The input is a flat dict `key -> numpy array` as `model.state_dict()` names them, so this
module needs no torch: `load_state_dict` reads a `.safetensors` file with safetensors'
numpy loader, or a `.pth` file with torch if it is installed. Layout changes:
  conv weight  (O, I, kH, kW)   -> kernel (kH, kW, I, O)      (channels-last)
  linear weight (O, I)          -> kernel (I, O)
  first linear after a flatten  -> rows reordered from torch's C,H,W flatten to our H,W,C
  BatchNorm weight/bias/running_mean/running_var -> params scale/bias, batch_stats mean/var
The functions use only array methods, so `jax.eval_shape` can check a full-size conversion
on `ShapeDtypeStruct`s without materialising it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from dl_arch.models.cnn.vgg import VGG_STAGES

Array = Any  # numpy array, or a jax tracer under jax.eval_shape
StateDict = dict[str, Array]
Variables = dict[str, dict[str, Any]]

RESNET_DEPTHS = (18, 34, 50, 101, 152)


def conv_kernel(w_OIHW: Array) -> Array:
    """torch conv weight (O, I, kH, kW) -> flax kernel (kH, kW, I, O)."""
    return w_OIHW.transpose(2, 3, 1, 0)


def dense_kernel(w_OI: Array) -> Array:
    """torch linear weight (O, I) -> flax kernel (I, O)."""
    return w_OI.transpose(1, 0)


def dense_kernel_after_flatten(w_OI: Array, channels: int) -> Array:
    """Linear weight fed by torch's (C, H, W) flatten -> kernel fed by our (H, W, C) flatten."""
    out, n_in = w_OI.shape
    side = int(round((n_in // channels) ** 0.5))
    if side * side * channels != n_in:
        raise ValueError(f"linear weight {w_OI.shape} does not follow {channels} channels")
    return w_OI.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(n_in, out)


class _Builder:
    """Collects converted arrays into nested params / batch_stats and tracks used keys."""

    def __init__(self, state_dict: StateDict):
        self.sd = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
        self.used: set[str] = set()
        self.variables: Variables = {"params": {}, "batch_stats": {}}

    def take(self, key: str) -> Array:
        if key not in self.sd:
            raise ValueError(f"state dict lacks '{key}'; is it the right architecture?")
        self.used.add(key)
        return self.sd[key]

    def put(self, collection: str, path: str, value: Array) -> None:
        node = self.variables[collection]
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    def conv(self, torch_name: str, path: str, bias: bool = False,
             kernel: Callable[[Array], Array] = conv_kernel) -> None:
        self.put("params", f"{path}/kernel", kernel(self.take(f"{torch_name}.weight")))
        if bias:
            self.put("params", f"{path}/bias", self.take(f"{torch_name}.bias"))

    def bn(self, torch_name: str, path: str) -> None:
        self.put("params", f"{path}/scale", self.take(f"{torch_name}.weight"))
        self.put("params", f"{path}/bias", self.take(f"{torch_name}.bias"))
        self.put("batch_stats", f"{path}/mean", self.take(f"{torch_name}.running_mean"))
        self.put("batch_stats", f"{path}/var", self.take(f"{torch_name}.running_var"))

    def finish(self) -> Variables:
        unused = sorted(set(self.sd) - self.used)
        if unused:
            raise ValueError(f"state dict has keys this architecture lacks: {unused[:5]}")
        if not self.variables["batch_stats"]:
            del self.variables["batch_stats"]
        return self.variables


def convert_resnet(state_dict: StateDict) -> Variables:
    """torchvision resnet18..152 -> variables of `ResNet` (stem='imagenet')."""
    b = _Builder(state_dict)
    b.conv("conv1", "conv1")
    b.bn("bn1", "bn1")
    blocks = sorted({m.group(1, 2) for k in b.sd if (m := re.match(r"layer(\d)\.(\d+)\.", k))},
                    key=lambda sb: (int(sb[0]), int(sb[1])))
    for stage, block in blocks:
        src, dst = f"layer{stage}.{block}", f"layer{stage}_{block}"
        n_convs = 3 if f"{src}.conv3.weight" in b.sd else 2
        for i in range(1, n_convs + 1):
            b.conv(f"{src}.conv{i}", f"{dst}/conv{i}")
            b.bn(f"{src}.bn{i}", f"{dst}/bn{i}")
        if f"{src}.downsample.0.weight" in b.sd:
            b.conv(f"{src}.downsample.0", f"{dst}/downsample_conv")
            b.bn(f"{src}.downsample.1", f"{dst}/downsample_bn")
    b.conv("fc", "head", bias=True, kernel=dense_kernel)
    return b.finish()


def convert_vgg(state_dict: StateDict, depth: int = 16, batch_norm: bool = False) -> Variables:
    """torchvision vgg{depth}[_bn] -> variables of `VGG` (stem='imagenet').

    torchvision numbers `features.i` over conv, [bn,] relu and pool layers in order; the
    stage widths come from the arrays, so narrower VGGs with the same depth convert too.
    """
    if depth not in VGG_STAGES:
        raise ValueError(f"vgg depth {depth} is unknown; use one of {sorted(VGG_STAGES)}")
    b = _Builder(state_dict)
    index = 0
    channels = 0
    for s, stage in enumerate(VGG_STAGES[depth]):
        for i in range(len(stage)):
            b.conv(f"features.{index}", f"conv{s + 1}_{i + 1}", bias=True)
            channels = b.sd[f"features.{index}.weight"].shape[0]
            index += 1
            if batch_norm:
                b.bn(f"features.{index}", f"bn{s + 1}_{i + 1}")
                index += 1
            index += 1  # ReLU
        index += 1  # max pool
    b.conv("classifier.0", "fc1", bias=True,
           kernel=lambda w: dense_kernel_after_flatten(w, channels))
    b.conv("classifier.3", "fc2", bias=True, kernel=dense_kernel)
    b.conv("classifier.6", "head", bias=True, kernel=dense_kernel)
    return b.finish()


def convert_alexnet(state_dict: StateDict) -> Variables:
    """torchvision alexnet -> variables of `AlexNet` (stem='imagenet')."""
    b = _Builder(state_dict)
    for i, index in enumerate((0, 3, 6, 8, 10)):
        b.conv(f"features.{index}", f"conv{i + 1}", bias=True)
    channels = b.sd["features.10.weight"].shape[0]
    b.conv("classifier.1", "fc1", bias=True,
           kernel=lambda w: dense_kernel_after_flatten(w, channels))
    b.conv("classifier.4", "fc2", bias=True, kernel=dense_kernel)
    b.conv("classifier.6", "head", bias=True, kernel=dense_kernel)
    return b.finish()


def convert(model_name: str, state_dict: StateDict) -> Variables:
    """Converts by our model name: resnet18..152, vgg11..19[_bn], alexnet."""
    if model_name in {f"resnet{d}" for d in RESNET_DEPTHS}:
        return convert_resnet(state_dict)
    if m := re.fullmatch(r"vgg(\d+)(_bn)?", model_name):
        return convert_vgg(state_dict, int(m.group(1)), batch_norm=bool(m.group(2)))
    if model_name == "alexnet":
        return convert_alexnet(state_dict)
    raise ValueError(
        f"no torchvision converter for '{model_name}'; use resnet18..152, vgg11..19[_bn], alexnet"
    )


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a torchvision checkpoint (.safetensors without torch, .pth/.pt with torch)."""
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    try:
        import torch
    except ImportError as e:
        raise ValueError(f"reading '{path}' needs torch; convert it to .safetensors") from e
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in sd.items()}


def save_for_init_from(variables: Variables, directory: str) -> str:
    """Writes converted variables where `config.init_from=<directory>` reads them."""
    import os

    import orbax.checkpoint as ocp

    state: dict[str, Any] = {"params": variables["params"]}
    mutable = {k: v for k, v in variables.items() if k != "params"}
    if mutable:
        state["mutable"] = mutable
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.join(os.path.abspath(directory), "state"), state)
    checkpointer.wait_until_finished()
    return directory


def main(argv: list[str] | None = None) -> None:
    """CLI: torchvision checkpoint -> a directory for `--config.init_from`."""
    import argparse

    parser = argparse.ArgumentParser(
        description="python -m dl_arch.interop.torchvision --model resnet50 "
                    "--weights resnet50.pth --out pretrained/resnet50")
    parser.add_argument("--model", required=True, help="resnet18..152, vgg11..19[_bn], alexnet")
    parser.add_argument("--weights", required=True, help=".pth/.pt (needs torch) or .safetensors")
    parser.add_argument("--out", required=True, help="directory to write (then init_from it)")
    args = parser.parse_args(argv)
    variables = convert(args.model, load_state_dict(args.weights))
    save_for_init_from(variables, args.out)
    print(f"wrote {args.out}; fine-tune with --config.init_from={args.out} "
          f"(model {args.model}, stem='imagenet')")


if __name__ == "__main__":
    main()
