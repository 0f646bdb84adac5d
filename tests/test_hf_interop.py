"""Hugging Face importers: a small random `transformers` model and ours give the same logits."""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import save_file

from dl_arch.interop import huggingface as hf
from dl_arch.models.transformer import GPT, Bert, ViT

torch.manual_seed(0)


def _roundtrip(model: torch.nn.Module, tmp_path) -> dict[str, np.ndarray]:
    """Saves the state dict as safetensors (tied tensors cloned) and reads it back."""
    path = str(tmp_path / "model.safetensors")
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, path)
    return hf.load_state_dict(path)


def test_gpt2_logits_match(tmp_path):
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    tokens = np.random.default_rng(0).integers(0, 97, size=(2, 11))
    with torch.no_grad():
        want = ref(torch.tensor(tokens)).logits.numpy()
    for scan in (False, True):
        fields, params = hf.import_gpt2(_roundtrip(ref, tmp_path), cfg.to_dict(), scan=scan)
        got = GPT(**fields, dropout_rate=0.0).apply({"params": params}, tokens)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_bert_mlm_and_classifier_logits_match():
    cfg = transformers.BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=40, num_labels=3)
    tokens = np.random.default_rng(1).integers(1, 101, size=(2, 9))
    tokens[1, 6:] = 0  # padding, masked out by both models
    types = np.zeros_like(tokens)
    types[:, 4:] = 1
    mask = torch.tensor(tokens > 0)
    for ref_cls in (transformers.BertForMaskedLM, transformers.BertForSequenceClassification):
        ref = ref_cls(cfg).eval()
        with torch.no_grad():
            want = ref(torch.tensor(tokens), attention_mask=mask,
                       token_type_ids=torch.tensor(types)).logits.numpy()
        fields, params = hf.import_bert(ref.state_dict(), cfg)
        got = np.asarray(Bert(**fields, dropout_rate=0.0).apply({"params": params}, tokens,
                                                                types))
        if fields["head"] == "mlm":  # padded positions' outputs are meaningless in both
            got, want = got[tokens > 0], want[tokens > 0]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_vit_logits_match():
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, num_labels=5)
    ref = transformers.ViTForImageClassification(cfg).eval()
    images = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.tensor(images.transpose(0, 3, 1, 2))).logits.numpy()
    fields, params = hf.import_vit(ref.state_dict(), cfg)
    got = ViT(**fields).apply({"params": params}, images)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)
    # the hub's checkpoints use the transformers < 5 names; both layouts import alike
    fields_old, params_old = hf.import_vit(_to_hub_vit_names(ref.state_dict()), cfg)
    got_old = ViT(**fields_old).apply({"params": params_old}, images)
    np.testing.assert_allclose(np.asarray(got_old), np.asarray(got), atol=0, rtol=0)


def _to_hub_vit_names(sd):
    """Renames transformers-5 ViT tensors to the older layout of hub checkpoints."""
    renames = {"attention.q_proj": "attention.attention.query",
               "attention.k_proj": "attention.attention.key",
               "attention.v_proj": "attention.attention.value",
               "attention.o_proj": "attention.output.dense",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    out = {}
    for k, v in sd.items():
        k = k.replace("vit.layers.", "vit.encoder.layer.")
        for new, old in renames.items():
            k = k.replace(new, old)
        out[k] = v
    return out


def test_missing_tensor_names_the_problem():
    cfg = transformers.GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    sd = transformers.GPT2LMHeadModel(cfg).state_dict()
    del sd["transformer.ln_f.weight"]
    try:
        hf.import_gpt2(sd, cfg)
    except ValueError as e:
        assert "ln_f.weight" in str(e)
    else:
        raise AssertionError("import of an incomplete state dict did not fail")


def _saved_gpt2(tmp_path, n_layer: int = 2):
    """A small random GPT-2 saved as `save_pretrained` writes it, and the model itself."""
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=n_layer,
                                  n_head=4)
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path / "gpt2"
    ref.save_pretrained(folder)
    return ref, str(folder)


def _gpt_config(**model):
    """The resolved config.model of a GPT sized like `_saved_gpt2`, with `model` changes."""
    from configs.base import base_config
    from dl_arch.config.resolve import resolve_config

    fields = {**dict(name="gpt_nano", vocab_size=97, emb_dim=32, num_layers=2, num_heads=4,
                     mlp_dim=128, max_len=32, dropout_rate=0.0), **model}
    return resolve_config(base_config(), [("model", fields)]).model


def test_init_from_hf_folder_loads_every_tensor_into_a_matching_model(tmp_path):
    from dl_arch.train.transfer import load_pretrained

    ref, folder = _saved_gpt2(tmp_path)
    model_config = _gpt_config()
    model = GPT(**{k: v for k, v in model_config.items() if k != "name"})
    tokens = np.random.default_rng(3).integers(0, 97, size=(2, 9))
    fresh = jax.jit(model.init)(jax.random.PRNGKey(0), tokens)["params"]
    params, _ = load_pretrained(fresh, {}, f"hf:{folder}", model_config)
    with torch.no_grad():
        want = ref(torch.tensor(tokens)).logits.numpy()
    got = model.apply({"params": params}, tokens)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change, message", [
    ({"num_layers": 3}, "config.model.num_layers=3 but hf:{} has n_layer=2; "
                        "set --config.model.num_layers=2"),
    ({"emb_dim": 48, "num_heads": 3}, "config.model.emb_dim=48 but hf:{} has n_embd=32; "
                                      "set --config.model.emb_dim=32"),
    ({"activation": "relu"}, "config.model.activation='relu' but hf:{} has "
                             "activation_function='gelu_new'; set --config.model.activation=gelu_tanh"),
    ({"layer_norm_eps": 1e-6}, "config.model.layer_norm_eps=1e-06 but hf:{} has "
                               "layer_norm_epsilon=1e-05"),
])
def test_init_from_hf_refuses_a_model_of_another_shape(tmp_path, change, message):
    from dl_arch.config.errors import ConfigError
    from dl_arch.train.transfer import load_pretrained

    _, folder = _saved_gpt2(tmp_path)
    model_config = _gpt_config(**change)
    with pytest.raises(ConfigError, match=re.escape(message.format(folder))):
        load_pretrained({}, {}, f"hf:{folder}", model_config)
    # the explicit three-part form is checked alike
    spec = f"hf:gpt2,{folder}/model.safetensors,{folder}/config.json"
    with pytest.raises(ConfigError, match=re.escape(message.format(spec[3:]).split(" has ")[1])):
        load_pretrained({}, {}, spec, model_config)


def test_init_from_hf_refuses_another_model_family_and_a_bad_path(tmp_path):
    from configs.base import base_config
    from dl_arch.config.errors import ConfigError
    from dl_arch.config.resolve import resolve_config
    from dl_arch.train.transfer import load_pretrained

    _, folder = _saved_gpt2(tmp_path)
    mlp = resolve_config(base_config()).model
    with pytest.raises(ConfigError, match="config.model.name='mlp' cannot load .* a gpt2 "
                                          "checkpoint .*use a GPT model"):
        load_pretrained({}, {}, f"hf:{folder}", mlp)
    with pytest.raises(ConfigError, match="use hf:<folder>"):
        load_pretrained({}, {}, f"hf:{tmp_path}/nope", mlp)


def test_training_run_with_init_from_hf_of_another_depth_fails_in_one_line(tmp_path):
    from dl_arch.config.errors import ConfigError
    from dl_arch.testing import load_config
    from dl_arch.train.loop import train_and_evaluate

    config = load_config("configs/gpt_text.py:smoke")  # gpt_nano: 1 layer of width 48
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=config.model.max_len, n_embd=48,
                                  n_layer=2, n_head=3, n_inner=192)
    folder = str(tmp_path / "gpt2_depth2")
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder)
    config.init_from = f"hf:{folder}"
    with pytest.raises(ConfigError, match=re.escape(
            f"config.model.num_layers=1 but hf:{folder} has n_layer=2; "
            "set --config.model.num_layers=2")):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "summary.json")  # nothing was trained
