"""Importers of Hugging Face GPT-2, BERT and ViT checkpoints into our parameter trees.

    fields, params = import_gpt2(load_state_dict("model.safetensors"), hf_config_dict)
    model = GPT(**fields); logits = model.apply({"params": params}, tokens)
    params = load_for_init_from("hf:<folder>", config.model)  # what `init_from=hf:` does

A state dict is a flat `{name: array}` (safetensors file, PyTorch `.bin`/`.pt` file, or an
in-memory `model.state_dict()`); `hf_config` is the model's `config.json` as a dict (or a
`transformers` config object). Each importer returns the constructor fields of our model
that reproduce the checkpoint's architecture, and the `params` tree. Only numpy is needed
for safetensors files; torch is needed only to read PyTorch pickles.

`init_from=hf:...` loads only into a model built like the checkpoint: a checkpoint whose
depth, width, heads, vocabulary, norm epsilon or activation differ from `config.model` is
a `ConfigError` naming the first difference and the override that fixes it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError

StateDict = Mapping[str, Any]

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu"}


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` or PyTorch (`.bin`/`.pt`) checkpoint into numpy arrays."""
    if not os.path.exists(path):
        raise ConfigError(f"checkpoint '{path}' does not exist; give a .safetensors or .bin file")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    import torch

    return to_numpy(torch.load(path, map_location="cpu", weights_only=True))


def load_config(path: str) -> dict[str, Any]:
    """Reads a Hugging Face `config.json`."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ConfigError(f"Hugging Face config '{path}' cannot be read ({e.strerror}); give "
                          "the config.json saved with the checkpoint") from None
    except ValueError as e:
        raise ConfigError(f"Hugging Face config '{path}' is not valid JSON ({e})") from None


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
        raise ConfigError(f"tensor '{name}' is missing from the state dict; is this checkpoint "
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
    n = cfg["n_head"]
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
    return gpt2_fields(cfg, scan), params


def gpt2_fields(hf_config: Any, scan: bool = False) -> dict[str, Any]:
    """The fields of our `GPT` that a GPT-2 `config.json` describes."""
    cfg = _cfg(hf_config)
    d = cfg["n_embd"]
    return dict(vocab_size=cfg["vocab_size"], emb_dim=d, num_layers=cfg["n_layer"],
                num_heads=cfg["n_head"], mlp_dim=cfg.get("n_inner") or 4 * d,
                max_len=cfg["n_positions"], position="learned", tie_embeddings=True,
                activation=_activation(cfg, "activation_function", "gelu_new"),
                layer_norm_eps=cfg.get("layer_norm_epsilon", 1e-5), scan=scan)


def _activation(cfg: dict[str, Any], key: str, default: str) -> str:
    name = cfg.get(key, default)
    if name not in _ACTIVATIONS:
        raise ConfigError(f"Hugging Face {key}='{name}' has no counterpart here; known: "
                          f"{', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


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
    fields = dict(bert_fields(cfg, scan), head=head, pooler=pooler)
    if head == "classify":
        fields["num_classes"] = params["classifier"]["kernel"].shape[1]
    return fields, params


def bert_fields(hf_config: Any, scan: bool = False) -> dict[str, Any]:
    """The fields of our `Bert` that a BERT `config.json` describes (the head aside)."""
    cfg = _cfg(hf_config)
    return dict(vocab_size=cfg["vocab_size"], hidden=cfg["hidden_size"],
                num_layers=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
                mlp_dim=cfg["intermediate_size"], max_len=cfg["max_position_embeddings"],
                type_vocab_size=cfg["type_vocab_size"],
                activation=_activation(cfg, "hidden_act", "gelu"),
                layer_norm_eps=cfg.get("layer_norm_eps", 1e-12), scan=scan)


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
        raise ConfigError("the ViT state dict has no 'classifier'; import a "
                          "ViTForImageClassification checkpoint (our ViT always has a head)")
    return dict(vit_fields(cfg, scan), num_classes=num_classes, pool="cls"), params


def vit_fields(hf_config: Any, scan: bool = False) -> dict[str, Any]:
    """The fields of our `ViT` that a ViT `config.json` describes (the head aside)."""
    cfg = _cfg(hf_config)
    if _activation(cfg, "hidden_act", "gelu") != "gelu":
        raise ConfigError(f"ViT hidden_act='{cfg.get('hidden_act')}' is not supported; "
                          "our ViT uses exact GELU")
    return dict(patch_size=cfg["patch_size"], hidden=cfg["hidden_size"],
                num_layers=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
                mlp_dim=cfg["intermediate_size"],
                layer_norm_eps=cfg.get("layer_norm_eps", 1e-12), scan=scan)


IMPORTERS = {"gpt2": import_gpt2, "bert": import_bert, "vit": import_vit}
CONFIG_FIELDS = {"gpt2": gpt2_fields, "bert": bert_fields, "vit": vit_fields}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # looked for in an hf:<folder>

# Our field -> the Hugging Face config key it comes from (for messages), in the order a
# mismatch is reported: depth, width, heads, vocabulary, then the rest.
HF_KEYS = {
    "gpt2": {"num_layers": "n_layer", "emb_dim": "n_embd", "num_heads": "n_head",
             "vocab_size": "vocab_size", "mlp_dim": "n_inner", "max_len": "n_positions",
             "layer_norm_eps": "layer_norm_epsilon", "activation": "activation_function",
             "position": None, "tie_embeddings": None},
    "bert": {"num_layers": "num_hidden_layers", "hidden": "hidden_size",
             "num_heads": "num_attention_heads", "vocab_size": "vocab_size",
             "mlp_dim": "intermediate_size", "max_len": "max_position_embeddings",
             "type_vocab_size": "type_vocab_size", "layer_norm_eps": "layer_norm_eps",
             "activation": "hidden_act"},
    "vit": {"num_layers": "num_hidden_layers", "hidden": "hidden_size",
            "num_heads": "num_attention_heads", "patch_size": "patch_size",
            "mlp_dim": "intermediate_size", "layer_norm_eps": "layer_norm_eps"},
}
FAMILY = {"gpt2": "a GPT model (gpt2_small, gpt_micro, ...)",
          "bert": "a BERT model (bert_base, bert_tiny, ...)",
          "vit": "a ViT model (vit_ti16, vit_nano, ...)"}


def import_checkpoint(kind: str, checkpoint: str, config_json: str, scan: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Files on disk -> (model fields, params); `kind` is gpt2 | bert | vit."""
    if kind not in IMPORTERS:
        raise ConfigError(f"unknown checkpoint kind '{kind}'; known: {', '.join(IMPORTERS)}")
    return IMPORTERS[kind](load_state_dict(checkpoint), load_config(config_json), scan)


def parse_source(spec: str) -> tuple[str, str, str]:
    """`hf:<folder>` or `hf:<kind>,<weights file>,<config.json>` -> (kind, weights, config).

    A folder is what `save_pretrained` writes: config.json (its `model_type` is the kind)
    and model.safetensors or pytorch_model.bin.
    """
    body = spec[3:] if spec.startswith("hf:") else spec
    parts = body.split(",")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) != 1 or not os.path.isdir(body):
        raise ConfigError(f"config.init_from='{spec}': use hf:<folder> (config.json and "
                          "model.safetensors, as save_pretrained writes) or "
                          "hf:<gpt2|bert|vit>,<weights file>,<config.json>")
    config_json = os.path.join(body, "config.json")
    kind = load_config(config_json).get("model_type")
    if kind not in IMPORTERS:
        raise ConfigError(f"config.init_from='{spec}': its config.json has model_type="
                          f"{kind!r}; importable: {', '.join(IMPORTERS)}")
    for name in WEIGHT_FILES:
        if os.path.exists(os.path.join(body, name)):
            return kind, os.path.join(body, name), config_json
    raise ConfigError(f"config.init_from='{spec}': the folder has no {' or '.join(WEIGHT_FILES)}")


def check_model_matches(kind: str, hf_config: Any, model_config: Mapping[str, Any],
                        source: str) -> None:
    """Raises a one-line ConfigError at the first field where `config.model` differs from
    the architecture of the checkpoint (whose weights would otherwise load only in part)."""
    cfg = _cfg(hf_config)
    expected = CONFIG_FIELDS[kind](cfg)
    keys = HF_KEYS[kind]
    missing = [f for f in (*keys, "scan") if f not in model_config]
    if missing:
        raise ConfigError(f"config.model.name='{model_config['name']}' cannot load {source}, "
                          f"a {kind} checkpoint (it has no {missing[0]}); use {FAMILY[kind]}")
    for field, hf_key in keys.items():
        ours, theirs = model_config[field], expected[field]
        same = (math.isclose(ours, theirs, rel_tol=1e-6) if isinstance(theirs, float)
                else ours == theirs)
        if not same:
            shown = cfg.get(hf_key) if hf_key else None
            has = (f"{hf_key}={shown!r}" if shown is not None
                   else f"{field}={theirs!r}")
            raise ConfigError(f"config.model.{field}={ours!r} but {source} has {has}; set "
                              f"--config.model.{field}={theirs}")
    heads = model_config["num_kv_heads"] if "num_kv_heads" in model_config else None
    if kind == "gpt2" and heads is not None and heads != expected["num_heads"]:
        raise ConfigError(f"config.model.num_kv_heads={heads!r} but {source} (GPT-2) has "
                          f"n_head={expected['num_heads']} key/value heads; set "
                          "--config.model.num_kv_heads=None")


def load_for_init_from(spec: str, model_config: Mapping[str, Any] | None = None
                       ) -> dict[str, Any]:
    """The params tree of `init_from=hf:...`, checked against `config.model` when given
    (and laid out for its `scan`) before any weight is read."""
    kind, weights, config_json = parse_source(spec)
    if kind not in IMPORTERS:
        raise ConfigError(f"config.init_from='{spec}': unknown checkpoint kind '{kind}'; "
                          f"known: {', '.join(IMPORTERS)}")
    hf_config = load_config(config_json)
    scan = False
    if model_config is not None:
        check_model_matches(kind, hf_config, model_config, spec)
        scan = bool(model_config["scan"])
    return IMPORTERS[kind](load_state_dict(weights), hf_config, scan)[1]
