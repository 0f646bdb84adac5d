"""The config of a run in its workdir: `config.json`, and what changed since on a resume."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import ml_collections

log = logging.getLogger("dl_arch")


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs between two JSON-like config dicts.

    A resumed run whose config changed (a new default, a forgotten override) trains on from
    the checkpoint with the new values; listing them makes that visible."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]
    changes = []
    for key in sorted(set(old) | set(new)):
        changes += config_changes(old.get(key, "<absent>"), new.get(key, "<absent>"),
                                  f"{prefix}.{key}" if prefix else key)
    return changes


def warn_of_config_changes(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Logs the fields that differ from the resumed run's config.json (num_train_steps aside:
    raising it is how a finished run is continued)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    new = json.loads(config.to_json_best_effort())
    changed = [c for c in config_changes(old, new) if not c.startswith("num_train_steps:")]
    if changed:
        log.warning("resuming with %d config field(s) changed since %s: %s", len(changed), path,
                    "; ".join(changed))
