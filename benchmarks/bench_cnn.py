"""CNN train steps, ours (jit, channels-last) vs the same architecture in PyTorch (CPU).

    python -m benchmarks.run --only cnn [--quick]
    python -m benchmarks.bench_cnn [--quick]

Rows: resnet18 (small stem, 32x32, batch 128; 32 with --quick) and lenet5 (28x28 MNIST
shape, batch 128): SGD-momentum steps with softmax cross-entropy and BatchNorm updates; and
two window layers alone, forward + backward: MobileNet's depthwise 3x3 convolution and
ResNet's stem max-pool (ours against PyTorch's, with XLA's own op, which ours avoids on CPU
(dl_arch/models/cnn/taps.py), beside).
The PyTorch models use torchvision's module names and `channels_last` memory format, and
double as the reference implementations in tests/test_torchvision_import.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import Row, compare, mfu_text
from benchmarks.phases import phase_text
from dl_arch.registry import MODELS
from dl_arch.train.compile_options import model_jit
from dl_arch.train.flops import step_flops


def _torch_modules() -> Any:
    """Imports torch lazily so the benchmark module imports without it."""
    import torch
    from torch import nn as tnn

    class BasicBlock(tnn.Module):
        expansion = 1

        def __init__(self, cin: int, width: int, stride: int):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, width, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.conv2 = tnn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(width)
            self.downsample = _downsample(cin, width, stride)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(tnn.Module):
        expansion = 4

        def __init__(self, cin: int, width: int, stride: int):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(width)
            self.conv3 = tnn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(width * 4)
            self.downsample = _downsample(cin, width * 4, stride)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    def _downsample(cin: int, cout: int, stride: int):
        if stride == 1 and cin == cout:
            return None
        return tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                              tnn.BatchNorm2d(cout))

    class ResNet(tnn.Module):
        """torchvision.models.ResNet's layout and key names, plus a CIFAR stem option."""

        def __init__(self, stage_sizes: Sequence[int], block: str, num_classes: int,
                     width: int = 64, small: bool = False, in_channels: int = 3):
            super().__init__()
            cls = BasicBlock if block == "basic" else Bottleneck
            if small:
                self.conv1 = tnn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            else:
                self.conv1 = tnn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.maxpool = tnn.Identity() if small else tnn.MaxPool2d(3, 2, 1)
            cin = width
            for s, n in enumerate(stage_sizes):
                blocks = []
                for b in range(n):
                    blocks.append(cls(cin, width * 2**s, 2 if s > 0 and b == 0 else 1))
                    cin = width * 2**s * cls.expansion
                setattr(self, f"layer{s + 1}", tnn.Sequential(*blocks))
            self.num_stages = len(stage_sizes)
            self.fc = tnn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            for s in range(self.num_stages):
                x = getattr(self, f"layer{s + 1}")(x)
            return self.fc(torch.flatten(torch.mean(x, dim=(2, 3)), 1))

    class LeNet5(tnn.Module):
        """Our LeNet5 (ReLU, max pool) with the same parameter names."""

        def __init__(self, num_classes: int = 10, small: bool = True):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 6, 5, padding=2 if small else 0)
            self.conv2 = tnn.Conv2d(6, 16, 5)
            self.fc1 = tnn.Linear(400, 120)
            self.fc2 = tnn.Linear(120, 84)
            self.head = tnn.Linear(84, num_classes)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = torch.flatten(x.permute(0, 2, 3, 1), 1)  # flatten H, W, C like ours
            x = torch.relu(self.fc2(torch.relu(self.fc1(x))))
            return self.head(x)

    return torch, ResNet, LeNet5


def _torch_mobilenet_v2(torch: Any) -> Any:
    """Our MobileNetV2 (CIFAR stem: stem and second group at stride 1; width 1.0, no dropout)
    in PyTorch, for the step benchmark: the same layers, counts and strides."""
    from torch import nn as tnn

    from dl_arch.models.cnn.mobilenet import MOBILENET_V2_SETTINGS

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                relu6: bool = True) -> Any:
        layers = [tnn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                  tnn.BatchNorm2d(cout)]
        return tnn.Sequential(*layers, *([tnn.ReLU6()] if relu6 else []))

    class InvertedResidual(tnn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expansion: int):
            super().__init__()
            hidden = cin * expansion
            self.layers = tnn.Sequential(
                *([conv_bn(cin, hidden, 1)] if expansion != 1 else []),
                conv_bn(hidden, hidden, 3, stride, groups=hidden),
                conv_bn(hidden, cout, 1, relu6=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.layers(x)
            return x + y if self.residual else y

    class MobileNetV2(tnn.Module):
        def __init__(self, num_classes: int):
            super().__init__()
            blocks, cin = [conv_bn(3, 32, 3)], 32
            for g, (t, c, n, s) in enumerate(MOBILENET_V2_SETTINGS):
                for i in range(n):
                    blocks.append(InvertedResidual(cin, c, (1 if g == 1 else s) if i == 0 else 1,
                                                   t))
                    cin = c
            blocks.append(conv_bn(cin, 1280, 1))
            self.features = tnn.Sequential(*blocks)
            self.fc = tnn.Linear(1280, num_classes)

        def forward(self, x):
            return self.fc(torch.mean(self.features(x), dim=(2, 3)))

    return MobileNetV2


def torch_reference_models() -> tuple[Any, Any, Any]:
    """(torch, ResNet, LeNet5): the PyTorch reference classes (torchvision key layout)."""
    return _torch_modules()


def make_loss(model: Any):
    """`loss_fn(params, batch_stats, images, labels) -> (softmax CE, new batch_stats)`."""

    def loss_fn(p, batch_stats, images, labels):
        variables = {"params": p}
        if batch_stats is not None:
            variables["batch_stats"] = batch_stats
            logits, upd = model.apply(variables, images, train=True, mutable=["batch_stats"])
            new_stats = upd["batch_stats"]
        else:
            logits, new_stats = model.apply(variables, images, train=True), None
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, new_stats

    return loss_fn


def make_train_step(model: Any, tx: optax.GradientTransformation):
    """A jitted SGD step: softmax CE, BatchNorm statistics updated, state donated."""
    loss_fn = make_loss(model)

    def train_step(state, images, labels):
        params, batch_stats, opt_state = state
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, images, labels)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), new_stats, opt_state), loss

    return model_jit(train_step, donate_argnums=0)


def our_sgd_step(model: Any, images: jax.Array, labels: jax.Array) -> tuple[Any, Any, dict]:
    """(run, jitted step, holder) of `model`'s SGD+momentum train step on one batch: `run()`
    takes one step on `holder["state"]` (donated, replaced) and returns the loss."""
    variables = jax.jit(lambda: model.init(jax.random.key(0), images))()
    tx = optax.sgd(0.01, momentum=0.9)
    holder = {"state": (variables["params"], variables.get("batch_stats"),
                        tx.init(variables["params"]))}
    step = make_train_step(model, tx)

    def run():
        holder["state"], loss = step(holder["state"], images, labels)
        return loss

    return run, step, holder


def _row(name: str, ours_model: Any, torch_model: Any, torch: Any, batch: int, hw: int,
         channels: int, num_classes: int, quick: bool) -> Row:
    rng = np.random.default_rng(0)
    images_np = rng.standard_normal((batch, hw, hw, channels), dtype=np.float32)
    labels_np = rng.integers(0, num_classes, batch).astype(np.int32)

    images, labels = jnp.asarray(images_np), jnp.asarray(labels_np)
    ours, step, holder = our_sgd_step(ours_model, images, labels)
    flops = step_flops(step, holder["state"], images, labels)

    torch_model = torch_model.to(memory_format=torch.channels_last).train()
    # The same NHWC buffer viewed as NCHW in channels_last memory: no copy, no transpose.
    x_t = torch.from_numpy(images_np).permute(0, 3, 1, 2)
    y_t = torch.from_numpy(labels_np.astype(np.int64))
    opt = torch.optim.SGD(torch_model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def ref():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(torch_model(x_t), y_t)
        loss.backward()
        opt.step()
        return loss.item()

    def extra(seconds: float) -> str:
        return f"images/s={batch / seconds:8.1f} {mfu_text(flops, seconds, quick)}"

    row = compare(name, ours, ref, "torch", quick=quick, extra=extra)
    row.extra += " " + phase_text(make_loss(ours_model),
                                  lambda: (*holder["state"][:2], images, labels), ours,
                                  quick, has_aux=True)
    return row


def _kernel_row(name: str, ours: Any, xla: Any, params: Any, torch_fn: Any, x_np: np.ndarray,
                torch: Any, quick: bool) -> Row:
    """Forward + backward (gradients of the input and of `params`, as PyTorch computes for its
    module) of one layer `f(x, params)`: ours against PyTorch's, with XLA's own op (the one
    ours replaces on CPU) beside. Loss: the sum of squared outputs."""
    x = jnp.asarray(x_np)
    ours_fn = model_jit(jax.grad(lambda x, p: jnp.sum(ours(x, p) ** 2), argnums=(0, 1)))
    xla_fn = model_jit(jax.grad(lambda x, p: jnp.sum(xla(x, p) ** 2), argnums=(0, 1)))
    x_t = torch.from_numpy(x_np).permute(0, 3, 1, 2).requires_grad_(True)

    def ref():
        x_t.grad = None
        (torch_fn(x_t) ** 2).sum().backward()
        return x_t.grad

    xla_row = compare("xla", lambda: xla_fn(x, params), None, quick=quick)
    return compare(name, lambda: ours_fn(x, params), ref, "torch", quick=quick,
                   extra=lambda s: f"XLA's op={xla_row.ours_s * 1e3:.3f} ms")


def _window_rows(torch: Any, quick: bool) -> Iterable[Row]:
    """MobileNetV2's depthwise 3x3 (stride 1) and ResNet's stem max-pool 3x3 stride 2."""
    import flax.linen as nn

    from dl_arch.models.cnn.common import max_pool
    from dl_arch.models.cnn.taps import window_conv

    rng = np.random.default_rng(0)
    batch, hw, channels = (8, 28, 144) if quick else (32, 56, 144)
    x_np = rng.standard_normal((batch, hw, hw, channels), dtype=np.float32)
    fields = dict(padding=1, feature_group_count=channels, use_bias=False)
    ours, xla = (nn.Conv(channels, (3, 3), conv_general_dilated=window_conv, **fields),
                 nn.Conv(channels, (3, 3), **fields))
    kernel = jax.jit(xla.init)(jax.random.key(0), jnp.asarray(x_np))["params"]["kernel"]
    conv_t = torch.nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
    yield _kernel_row(f"cnn/depthwise 3x3 fwd+bwd {batch}x{hw}x{hw}x{channels}",
                      lambda x, k: ours.apply({"params": {"kernel": k}}, x),
                      lambda x, k: xla.apply({"params": {"kernel": k}}, x),
                      kernel, conv_t, x_np, torch, quick)
    batch, hw, channels = (8, 56, 64) if quick else (32, 112, 64)
    x_np = rng.standard_normal((batch, hw, hw, channels), dtype=np.float32)
    yield _kernel_row(f"cnn/max-pool 3x3 s2 fwd+bwd {batch}x{hw}x{hw}x{channels}",
                      lambda x, _: max_pool(x, 3, 2, padding=1),
                      lambda x, _: nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1))),
                      (), lambda x: torch.nn.functional.max_pool2d(x, 3, 2, 1), x_np, torch,
                      quick)


def rows(quick: bool) -> Iterable[Row]:
    """resnet18 and mobilenet_v2 (small stem, 32x32) and lenet5 (28x28) train steps vs
    PyTorch; two window layers alone."""
    torch, TorchResNet, TorchLeNet5 = _torch_modules()
    torch.manual_seed(0)
    batch = 32 if quick else 128
    resnet = MODELS.get("resnet18")(num_classes=10, stem="small")
    yield _row(f"cnn/resnet18 small-stem 32x32 train step b={batch}", resnet,
               TorchResNet((2, 2, 2, 2), "basic", 10, small=True), torch, batch, 32, 3, 10,
               quick)
    lenet = MODELS.get("lenet5")(num_classes=10, stem="small")
    yield _row("cnn/lenet5 28x28 train step b=128", lenet, TorchLeNet5(10, small=True), torch,
               128, 28, 1, 10, quick)
    batch = 8 if quick else 32
    mobilenet = MODELS.get("mobilenet_v2")(num_classes=10, stem="small", dropout_rate=0.0)
    yield _row(f"cnn/mobilenet_v2 small-stem 32x32 train step b={batch}", mobilenet,
               _torch_mobilenet_v2(torch)(10), torch, batch, 32, 3, 10, quick)
    yield from _window_rows(torch, quick)


if __name__ == "__main__":
    from benchmarks.run import main_for

    main_for("cnn")
