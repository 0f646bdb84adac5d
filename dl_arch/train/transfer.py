"""Transfer learning: load parameters from an earlier run wherever path and shape match.

A Hugging Face checkpoint (`init_from=hf:...`) must match `config.model` field for field
(depth, width, heads, ...): it is refused in one line otherwise, never half loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.paths import flatten_with_paths, path_str

log = logging.getLogger("dl_arch")


def merge_matching(target: Any, source: Any) -> tuple[Any, dict[str, list[str]]]:
    """Copies each leaf of `source` into `target` where the path and shape agree.

    Returns (merged tree, report) with report keys loaded / skipped (shape differs, e.g. a
    new head) / new (only in target) / unused (only in source).
    """
    src = {k: np.asarray(v) for k, v in flatten_with_paths(source).items()}
    report: dict[str, list[str]] = {"loaded": [], "skipped": [], "new": [], "unused": []}
    used = set()

    def pick(path, leaf):
        key = path_str(path)
        if key not in src:
            report["new"].append(key)
            return leaf
        used.add(key)
        if tuple(src[key].shape) != tuple(leaf.shape):
            report["skipped"].append(f"{key} {tuple(src[key].shape)} -> {tuple(leaf.shape)}")
            return leaf
        report["loaded"].append(key)
        return jax.numpy.asarray(src[key], dtype=leaf.dtype)

    merged = jax.tree_util.tree_map_with_path(pick, target)
    report["unused"] = [k for k in src if k not in used]
    return merged, report


def load_pretrained(params: Any, mutable: dict[str, Any], path: str,
                    model_config: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Params and mutable collections (BatchNorm stats) from `config.init_from`, logged.

    `path` is an earlier run's workdir, or a Hugging Face checkpoint: `hf:<folder>` (as
    `save_pretrained` writes it) or `hf:<gpt2|bert|vit>,<weights file>,<config.json>`.
    With `model_config` (the run's `config.model`), a Hugging Face checkpoint of another
    architecture is a ConfigError naming the first differing field.
    """
    if path.startswith("hf:"):
        from dl_arch.interop.huggingface import load_for_init_from

        raw = {"params": load_for_init_from(path, model_config)}
    else:
        raw = restore_raw_state(path)
    params, report = merge_matching(params, raw["params"])
    new_mutable = {}
    for name, coll in mutable.items():
        source = (raw.get("mutable") or {}).get(name)
        new_mutable[name] = merge_matching(coll, source)[0] if source is not None else coll
    log.info("init_from %s: loaded %d tensors, skipped %d (shape differs), new %d, unused %d",
             path, len(report["loaded"]), len(report["skipped"]), len(report["new"]),
             len(report["unused"]))
    for kind in ("skipped", "new"):
        for item in report[kind][:20]:
            log.info("  %s: %s", kind, item)
    if not report["loaded"]:
        raise ConfigError(f"config.init_from='{path}': no parameter matched by path and shape; "
                          f"is it a run of the same model family?")
    return params, new_mutable
