"""Importers of Hugging Face GPT-2, BERT and ViT checkpoints into our parameter trees.

    fields, params = import_gpt2(load_state_dict("model.safetensors"), hf_config_dict)
    model = GPT(**fields); logits = model.apply({"params": params}, tokens)

A state dict is a flat `{name: array}` (safetensors file, PyTorch `.bin`/`.pt` file, or an
in-memory `model.state_dict()`); `hf_config` is the model's `config.json` as a dict (or a
`transformers` config object). Each importer returns the constructor fields of our model
that reproduce the checkpoint's architecture, and the `params` tree. Only numpy is needed
for safetensors files; torch is needed only to read PyTorch pickles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

StateDict = Mapping[str, Any]

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu"}


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` or PyTorch (`.bin`/`.pt`) checkpoint into numpy arrays."""
    if not os.path.exists(path):
        raise ValueError(f"checkpoint '{path}' does not exist; give a .safetensors or .bin file")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    import torch

    return to_numpy(torch.load(path, map_location="cpu", weights_only=True))


def load_config(path: str) -> dict[str, Any]:
    """Reads a Hugging Face `config.json`."""
    with open(path) as f:
        return json.load(f)


def to_numpy(state_dict: StateDict) -> dict[str, np.ndarray]:
    """Converts torch tensors (or anything array-like) to float32/int numpy arrays."""
    out = {}
    for name, value in state_dict.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().float().numpy() if value.is_floating_point() \
                else value.detach().cpu().numpy()
        out[name] = np.asarray(value)
    return out


def _cfg(hf_config: Any) -> dict[str, Any]:
    return hf_config if isinstance(hf_config, dict) else hf_config.to_dict()


def _strip(state: StateDict, prefix: str) -> dict[str, np.ndarray]:
    """Drops a model prefix ('transformer.', 'bert.', 'vit.') where present."""
    sd = to_numpy(state)
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


def _take(sd: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in sd:
        raise ValueError(f"tensor '{name}' is missing from the state dict; is this checkpoint "
                         "of the architecture the importer expects?")
    return sd[name]


def _linear(sd: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """torch.nn.Linear (weight: out x in) -> flax Dense (kernel: in x out)."""
    return {"kernel": _take(sd, f"{name}.weight").T, "bias": _take(sd, f"{name}.bias")}


def _norm(sd: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {"scale": _take(sd, f"{name}.weight"), "bias": _take(sd, f"{name}.bias")}


def _attention(q: dict, k: dict, v: dict, out: dict, num_heads: int) -> dict[str, Any]:
    """Dense q/k/v/out (kernel in x out) -> our per-head DenseGeneral layout."""
    d = q["kernel"].shape[0]
    h = q["kernel"].shape[1] // num_heads

    def heads(p):
        return {"kernel": p["kernel"].reshape(d, -1, h), "bias": p["bias"].reshape(-1, h)}

    return {"query": heads(q), "key": heads(k), "value": heads(v),
            "out": {"kernel": out["kernel"].reshape(num_heads, h, -1), "bias": out["bias"]}}


def _stack_layers(layers: list[dict[str, Any]], scan: bool) -> dict[str, Any]:
    """Per-layer trees as `layer_i` entries, or stacked along axis 0 for a scanned stack."""
    if not scan:
        return {f"layer_{i}": p for i, p in enumerate(layers)}
    import jax

    return {"layers": {"block": jax.tree.map(lambda *a: np.stack(a), *layers)}}


def import_gpt2(state_dict: StateDict, hf_config: Any, scan: bool = False
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """GPT-2 (`GPT2Model`/`GPT2LMHeadModel`) -> (fields of our `GPT`, params)."""
    cfg = _cfg(hf_config)
    sd = _strip(state_dict, "transformer.")
    n, d = cfg["n_head"], cfg["n_embd"]
    layers = []
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        # GPT-2 uses Conv1D: weight is already (in, out); q, k, v are fused along out
        qkv_w, qkv_b = _take(sd, p + "attn.c_attn.weight"), _take(sd, p + "attn.c_attn.bias")
        q, k, v = ({"kernel": w, "bias": b} for w, b in zip(np.split(qkv_w, 3, axis=1),
                                                           np.split(qkv_b, 3), strict=True))
        conv = lambda name: {"kernel": _take(sd, name + ".weight"),
                             "bias": _take(sd, name + ".bias")}
        layers.append({
            "self_attention_norm": _norm(sd, p + "ln_1"),
            "self_attention": _attention(q, k, v, conv(p + "attn.c_proj"), n),
            "mlp_norm": _norm(sd, p + "ln_2"),
            "mlp": {"fc1": conv(p + "mlp.c_fc"), "fc2": conv(p + "mlp.c_proj")},
        })
    decoder = _stack_layers(layers, scan)
    decoder["final_norm"] = _norm(sd, "ln_f")
    params = {"token_embed": {"embedding": _take(sd, "wte.weight")},
              "position_embed": {"embedding": _take(sd, "wpe.weight")},
              "decoder": decoder}
    fields = dict(vocab_size=cfg["vocab_size"], emb_dim=d, num_layers=cfg["n_layer"],
                  num_heads=n, mlp_dim=cfg.get("n_inner") or 4 * d,
                  max_len=cfg["n_positions"], position="learned", tie_embeddings=True,
                  activation=_ACTIVATIONS[cfg.get("activation_function", "gelu_new")],
                  layer_norm_eps=cfg.get("layer_norm_epsilon", 1e-5), scan=scan)
    return fields, params


def _bert_style_layer(sd: dict[str, np.ndarray], p: str, n: int, pre_ln: bool,
                      att: str) -> dict[str, Any]:
    """One BERT/ViT encoder layer; `att` is the attention submodule prefix."""
    q, k, v = (_linear(sd, f"{p}{att}.{x}") for x in ("query", "key", "value"))
    out = _linear(sd, f"{p}attention.output.dense")
    layer = {"self_attention": _attention(q, k, v, out, n),
             "mlp": {"fc1": _linear(sd, p + "intermediate.dense"),
                     "fc2": _linear(sd, p + "output.dense")}}
    if pre_ln:  # ViT
        layer["self_attention_norm"] = _norm(sd, p + "layernorm_before")
        layer["mlp_norm"] = _norm(sd, p + "layernorm_after")
    else:  # BERT
        layer["self_attention_norm"] = _norm(sd, p + "attention.output.LayerNorm")
        layer["mlp_norm"] = _norm(sd, p + "output.LayerNorm")
    return layer


def import_bert(state_dict: StateDict, hf_config: Any, scan: bool = False
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """BERT (`BertModel`, `BertForMaskedLM`, `BertForPreTraining`,
    `BertForSequenceClassification`) -> (fields of our `Bert`, params).

    The head follows the checkpoint: MLM weights -> head='mlm', a classifier -> 'classify',
    else 'none'.
    """
    cfg = _cfg(hf_config)
    sd = _strip(state_dict, "bert.")
    n = cfg["num_attention_heads"]
    layers = [_bert_style_layer(sd, f"encoder.layer.{i}.", n, False, "attention.self")
              for i in range(cfg["num_hidden_layers"])]
    params: dict[str, Any] = {
        "token_embed": {"embedding": _take(sd, "embeddings.word_embeddings.weight")},
        "position_embed": {"embedding": _take(sd, "embeddings.position_embeddings.weight")},
        "type_embed": {"embedding": _take(sd, "embeddings.token_type_embeddings.weight")},
        "embed_norm": _norm(sd, "embeddings.LayerNorm"),
        "encoder": _stack_layers(layers, scan),
    }
    pooler = "pooler.dense.weight" in sd
    if pooler:
        params["pooler"] = _linear(sd, "pooler.dense")
    if "cls.predictions.bias" in sd:
        head = "mlm"
        params["mlm_transform"] = _linear(sd, "cls.predictions.transform.dense")
        params["mlm_norm"] = _norm(sd, "cls.predictions.transform.LayerNorm")
        params["mlm_bias"] = _take(sd, "cls.predictions.bias")
    elif "classifier.weight" in sd:
        head = "classify"
        params["classifier"] = _linear(sd, "classifier")
    else:
        head = "none"
    fields = dict(vocab_size=cfg["vocab_size"], hidden=cfg["hidden_size"],
                  num_layers=cfg["num_hidden_layers"], num_heads=n,
                  mlp_dim=cfg["intermediate_size"], max_len=cfg["max_position_embeddings"],
                  type_vocab_size=cfg["type_vocab_size"], head=head, pooler=pooler,
                  activation=_ACTIVATIONS[cfg.get("hidden_act", "gelu")],
                  layer_norm_eps=cfg.get("layer_norm_eps", 1e-12), scan=scan)
    if head == "classify":
        fields["num_classes"] = params["classifier"]["kernel"].shape[1]
    return fields, params


def _vit_layer(sd: dict[str, np.ndarray], i: int, n: int) -> dict[str, Any]:
    """One ViT layer in either layout: the hub's (`encoder.layer.i.attention.attention.query`,
    transformers < 5) or transformers 5's (`layers.i.attention.q_proj`, `mlp.fc1`)."""
    if f"layers.{i}.attention.q_proj.weight" not in sd:
        return _bert_style_layer(sd, f"encoder.layer.{i}.", n, True, "attention.attention")
    p = f"layers.{i}."
    q, k, v, out = (_linear(sd, f"{p}attention.{x}_proj") for x in "qkvo")
    return {"self_attention": _attention(q, k, v, out, n),
            "mlp": {"fc1": _linear(sd, p + "mlp.fc1"), "fc2": _linear(sd, p + "mlp.fc2")},
            "self_attention_norm": _norm(sd, p + "layernorm_before"),
            "mlp_norm": _norm(sd, p + "layernorm_after")}


def import_vit(state_dict: StateDict, hf_config: Any, scan: bool = False
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """ViT (`ViTForImageClassification`; `ViTModel` gets no head) -> (fields of our `ViT`,
    params). Our ViT takes NHWC images; Hugging Face's takes NCHW pixel_values.
    """
    cfg = _cfg(hf_config)
    sd = _strip(state_dict, "vit.")
    n = cfg["num_attention_heads"]
    layers = [_vit_layer(sd, i, n) for i in range(cfg["num_hidden_layers"])]
    encoder = _stack_layers(layers, scan)
    encoder["final_norm"] = _norm(sd, "layernorm")
    conv_w = _take(sd, "embeddings.patch_embeddings.projection.weight")  # (D, C, p, p)
    params: dict[str, Any] = {
        "patch_embed": {"kernel": conv_w.transpose(2, 3, 1, 0),
                        "bias": _take(sd, "embeddings.patch_embeddings.projection.bias")},
        "cls_token": _take(sd, "embeddings.cls_token"),
        "position_embed": _take(sd, "embeddings.position_embeddings"),
        "encoder": encoder,
    }
    if "classifier.weight" in sd:
        params["head"] = _linear(sd, "classifier")
        num_classes = params["head"]["kernel"].shape[1]
    else:
        raise ValueError("the ViT state dict has no 'classifier'; import a "
                         "ViTForImageClassification checkpoint (our ViT always has a head)")
    fields = dict(num_classes=num_classes, patch_size=cfg["patch_size"],
                  hidden=cfg["hidden_size"], num_layers=cfg["num_hidden_layers"], num_heads=n,
                  mlp_dim=cfg["intermediate_size"], pool="cls",
                  layer_norm_eps=cfg.get("layer_norm_eps", 1e-12), scan=scan)
    if _ACTIVATIONS.get(cfg.get("hidden_act", "gelu")) != "gelu":
        raise ValueError(f"ViT hidden_act='{cfg.get('hidden_act')}' is not supported; "
                         "our ViT uses exact GELU")
    return fields, params


IMPORTERS = {"gpt2": import_gpt2, "bert": import_bert, "vit": import_vit}


def import_checkpoint(kind: str, checkpoint: str, config_json: str, scan: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Files on disk -> (model fields, params); `kind` is gpt2 | bert | vit."""
    if kind not in IMPORTERS:
        raise ValueError(f"unknown checkpoint kind '{kind}'; known: {', '.join(IMPORTERS)}")
    return IMPORTERS[kind](load_state_dict(checkpoint), load_config(config_json), scan)
