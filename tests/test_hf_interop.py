"""Hugging Face importers: a small random `transformers` model and ours give the same logits."""

from __future__ import annotations

import numpy as np
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
