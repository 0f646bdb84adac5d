"""The model side of the run contract: every field declared and checked, input sizes named.

Every registered model's config fields (`model_fields`) carry a meaning and a default that
passes its own check; every CNN and the ViT refuse an image too small for them up front with
a `ConfigError` naming the minimum, and that minimum is exact: at it the model initialises
with no empty feature map, one pixel below it the unchecked model breaks.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import model_fields
from dl_arch.models.cnn import common
from dl_arch.models.cnn.common import Window, min_image_side
from dl_arch.registry import MODELS

# Tiny variant of every CNN, with the number of input channels it is tested on.
CNNS = {"lenet5_tiny": 1, "alexnet_tiny": 3, "vgg_tiny": 3, "vgg_bn_tiny": 3, "resnet_tiny": 3,
        "resnet_bottleneck_tiny": 3, "googlenet_tiny": 3, "mobilenet_v2_tiny": 3}
# Minimum image sides of the published layouts, from their valid convolutions and pools.
MINIMUMS = {("lenet5", "imagenet"): 16, ("lenet5", "small"): 12, ("alexnet", "imagenet"): 63,
            ("alexnet", "small"): 8, ("vgg16", "imagenet"): 32, ("vgg16", "small"): 32,
            ("resnet50", "imagenet"): 1, ("resnet18", "small"): 1, ("googlenet", "imagenet"): 15,
            ("googlenet", "small"): 4, ("mobilenet_v2", "imagenet"): 1,
            ("mobilenet_v2", "small"): 1}
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _annotation_doc(entry: object, name: str) -> str:
    """The placeholder meaning `model_fields` gives a field without a trailing comment."""
    cls = getattr(entry, "func", entry)
    return next(f"({f.type})" for f in dataclasses.fields(cls) if f.name == name)


def _library_models() -> list[str]:
    """Registered models of the library (test files register probes of their own)."""
    return [n for n in MODELS.names()
            if getattr(MODELS.get(n), "func", MODELS.get(n)).__module__.startswith("dl_arch.")]


@pytest.mark.parametrize("name", _library_models())
def test_fields_have_meanings_and_valid_defaults(name):
    entry = MODELS.get(name)
    fields = model_fields(entry)
    assert fields, f"{name} declares no config fields"
    for key, field in fields.items():
        assert field.doc and field.doc != _annotation_doc(entry, key), (
            f"{name}: field '{key}' has no meaning; add a trailing '# meaning' comment")
        field.check(field.default, f"model.{key}")


@pytest.mark.parametrize("field,value", [
    ("width", 0), ("width", -3), ("num_classes", 0), ("depth", -1), ("dropout", 1.5),
    ("dropout", -0.1), ("hidden_sizes", (8, 0)), ("activation", "relu6"),
])
def test_mlp_field_checks_reject_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"config.model.{field}"):
        model_fields(MODELS.get("mlp"))[field].check(value, f"model.{field}")


@pytest.mark.parametrize("name,field,value", [
    ("resnet18", "stem", "cifar"), ("resnet18", "block", "wide"), ("googlenet", "layout", "v3"),
    ("vit_nano", "patch_size", 0), ("gpt_nano", "attention_impl", "flash"),
    ("lstm_lm", "cell", "lstn"), ("dcgan_tiny", "image_shape", (8, 0, 1)),
    ("ssd_tiny", "prior_prob", 1.0), ("vgg_tiny", "stages", ((8,), (0,))),
])
def test_family_field_checks_reject_bad_values(name, field, value):
    with pytest.raises(ConfigError, match=f"config.model.{field}"):
        model_fields(MODELS.get(name))[field].check(value, f"model.{field}")


def test_family_specific_zero_defaults_are_allowed():
    assert model_fields(MODELS.get("dcgan"))["num_classes"].check(0, "model.num_classes") == 0
    for name in ("lstm_classifier", "transformer_classifier"):
        assert model_fields(MODELS.get(name))["vocab_size"].check(0, "model.vocab_size") == 0


def _variables(model, side: int, channels: int):
    x = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
    return x, jax.eval_shape(lambda x: model.init(RNGS, x), x)


def _empty_maps(model, side: int, channels: int) -> list[tuple[int, ...]]:
    """Shapes of empty parameters or sown feature maps of the model at this image side."""
    x, variables = _variables(model, side, channels)
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, mutable=["intermediates"]),
                              variables, x)
    return [a.shape for a in jax.tree_util.tree_leaves((variables, state)) if 0 in a.shape]


@pytest.mark.parametrize("stem", ["imagenet", "small"])
@pytest.mark.parametrize("name", sorted(CNNS))
def test_cnn_minimum_image_size_is_exact_and_named(name, stem, monkeypatch):
    channels = CNNS[name]
    model = MODELS.get(name)(num_classes=3, stem=stem)
    least = min_image_side(model.plan(stem))
    assert _empty_maps(model, least, channels) == []
    with pytest.raises(ConfigError, match=rf"at least {least}x{least} \(got {least - 1}x"):
        _variables(model, least - 1, channels)
    # without the check, one pixel less breaks the model or empties a feature map
    monkeypatch.setattr(common, "fits", lambda side, windows: True)
    try:
        broken = _empty_maps(model, least - 1, channels)
    except Exception as e:  # noqa: BLE001 - any failure shows the minimum is needed
        assert not isinstance(e, ConfigError), e
    else:
        assert broken, f"{name} ran at {least - 1}x{least - 1}: the minimum {least} is too high"


@pytest.mark.parametrize("name,stem", sorted(MINIMUMS))
def test_published_layouts_minimum_sizes(name, stem):
    model = MODELS.get(name)(stem=stem)
    assert min_image_side(model.plan(stem)) == MINIMUMS[name, stem]


def test_lenet_small_stem_on_8x8_says_so_in_one_line():
    model = MODELS.get("lenet5")(stem="small")
    with pytest.raises(ConfigError) as e:
        _variables(model, 8, 1)
    message = str(e.value)
    assert "at least 12x12 (got 8x8)" in message and "config.dataset.resize_to" in message
    assert "\n" not in message


def test_imagenet_stem_too_small_suggests_the_small_stem():
    with pytest.raises(ConfigError, match="stem='small'"):
        _variables(MODELS.get("alexnet_tiny")(stem="imagenet"), 32, 3)


def test_non_square_images_are_checked_per_side():
    model = MODELS.get("lenet5_tiny")(stem="small")
    x = jax.ShapeDtypeStruct((1, 32, 8, 1), jnp.float32)
    with pytest.raises(ConfigError, match=r"at least 12x12 \(got 32x8\)"):
        jax.eval_shape(lambda x: model.init(RNGS, x), x)


def test_window_output_sizes_follow_torch():
    assert Window(3, 2, ceil_mode=True).out(2) == 1  # the window may hang over the edge
    assert Window(3, 2).out(2) == 0
    assert Window(11, 4, 2).out(224) == 55
    assert Window(3, 2, ceil_mode=True).out(112) == 56  # torch: ceil(109 / 2) + 1


def test_detector_backbone_checks_image_size():
    model = MODELS.get("ssd_tiny")(num_classes=2)
    assert model_fields(MODELS.get("ssd_tiny"))["backbone_stem"].check("", "model.backbone_stem") == ""
    _variables(model, 1, 3)
    with pytest.raises(ConfigError, match="at least 1x1"):
        _variables(model, 0, 3)


@pytest.mark.parametrize("side,ok", [(4, True), (8, True), (3, False), (0, False), (6, False)])
def test_vit_patch_size_minimum(side, ok):
    model = MODELS.get("vit_nano")(num_layers=1)
    if ok:
        _variables(model, side, 3)
        return
    with pytest.raises(ConfigError, match=r"patch_size=4 needs images of at least 4x4"):
        _variables(model, side, 3)
