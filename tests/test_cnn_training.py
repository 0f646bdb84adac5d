"""CNN training: every model overfits one batch; configs build; smoke runs end to end."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.cnn.common import numpy_init
from dl_arch.registry import MODELS
from dl_arch.tasks.base import build_model
from dl_arch.tasks.classification import cross_entropy
from dl_arch.testing import adam_on_one_batch, load_config
from dl_arch.train.loop import build_task, train_and_evaluate

TINY = ["lenet5_tiny", "alexnet_tiny", "vgg_tiny", "vgg_bn_tiny", "resnet_tiny",
        "resnet_bottleneck_tiny", "googlenet_tiny", "mobilenet_v2_tiny"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_overfits_one_batch(name):
    channels = 1 if name.startswith("lenet") else 3
    side = 16 if name.startswith("mobilenet") else 32  # depthwise convolutions are slow on CPU
    x = jax.random.normal(jax.random.key(1), (8, side, side, channels))
    labels = jnp.arange(8) % 4
    # Dropout off: this checks capacity and gradient flow (dropout is tested in test_cnn_models).
    fields = {} if name.startswith(("lenet", "resnet")) else {"dropout_rate": 0.0}
    model = MODELS.get(name)(num_classes=4, **fields)
    # no BatchNorm in GoogLeNet's paper layout: at 3e-3 its loss spiked on the way down
    # (to 2.0 or 9.2), and rounding in the last bit decided whether it came back in 60 steps
    lr = 1e-3 if name.startswith("googlenet") else 1e-2
    losses, variables = adam_on_one_batch(model, numpy_init(model, x), (x,),
                                          lambda logits: cross_entropy(logits, labels).mean(),
                                          steps=60, lr=lr)
    assert losses[0] > 1.0 and losses[-5:].max() < 0.1 * losses[0], losses[::10]
    # Eval mode (running BatchNorm statistics, no dropout) must classify the batch too.
    logits = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    np.testing.assert_array_equal(np.argmax(logits, -1), labels)


def test_googlenet_aux_loss_adds_weighted_auxiliary_cross_entropy():
    config = load_config("configs/googlenet_shapes.py:smoke")
    task = build_task(config)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    batch = {"image": x, "label": jnp.array([0, 1, 2, 3])}
    abstract = jax.eval_shape(task.init_variables, jax.random.key(0), batch)
    assert set(abstract) == {"params", "batch_stats"}  # sown aux logits are not state
    variables = numpy_init(task.model, x)
    params, mutable = variables["params"], {"batch_stats": variables["batch_stats"]}
    rng = jax.random.key(3)

    def both(params, mutable, batch, rng):
        loss, (metrics, new_mutable) = task.loss("all", params, mutable, batch, rng)
        logits, state = task.model.apply({"params": params, **mutable}, batch["image"],
                                         train=True, rngs={"dropout": rng},
                                         mutable=["batch_stats", "aux_logits"])
        return loss, new_mutable, logits, state["aux_logits"]

    loss, new_mutable, logits, aux = jax.jit(both)(params, mutable, batch, rng)
    ce = lambda z: float(cross_entropy(z, batch["label"]).mean())
    expected = ce(logits) + 0.3 * (ce(aux["aux1"][0]) + ce(aux["aux2"][0]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert set(new_mutable) == {"batch_stats"}


CONFIGS = ["lenet5_mnist.py", "resnet18_cifar10.py", "vgg11_cifar10.py",
           "mobilenet_v2_cifar10.py", "googlenet_cifar10.py", "alexnet_imagenet.py",
           "resnet50_imagenet.py", "lenet5_shapes.py", "alexnet_shapes.py", "vgg_shapes.py",
           "resnet_shapes.py", "googlenet_shapes.py", "mobilenet_v2_shapes.py"]
INPUT_SHAPES = {"tfds:mnist": (28, 28, 1), "tfds:cifar10": (32, 32, 3)}


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("smoke", [False, True])
def test_config_builds_its_model(config_name, smoke):
    config = load_config(f"configs/{config_name}" + (":smoke" if smoke else ""))
    d = config.dataset
    if d.name == "shapes":
        shape = (d.image_size, d.image_size, d.channels)
    else:
        shape = INPUT_SHAPES.get(d.name, (d.get("resize_to", 0),) * 2 + (3,))
    model = build_model(config.model, config)
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    chex.assert_shape(logits, (2, config.model.num_classes))
    assert config.task.name == "image_classification"


def test_resnet_shapes_smoke_end_to_end(tmp_path):
    summary = train_and_evaluate(load_config("configs/resnet_shapes.py:smoke"), str(tmp_path))
    assert summary["completed"] and 0.0 <= summary["eval/accuracy"] <= 1.0
    for name in ("confusion_matrix.png", "per_class_metrics.json", "feature_maps/filters.png",
                 "feature_maps/layer1.png", "feature_maps/layer2.png"):
        assert (tmp_path / name).exists(), name
    assert "eval/top2_accuracy" in summary and "eval/macro_f1" in summary


def test_lenet5_mnist_smoke_on_tfds_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    config = load_config("configs/lenet5_mnist.py:smoke")
    with tfds.testing.mock_data(num_examples=32):
        summary = train_and_evaluate(config, str(tmp_path))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    assert (tmp_path / "feature_maps" / "stage2.png").exists()
