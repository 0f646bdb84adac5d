"""Parameter paths as 'a/b/c' strings and regex masks over them (freezing, transfer)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax

from dl_arch.config.errors import ConfigError


def path_str(path: tuple) -> str:
    """'encoder/layer_0/kernel' for a jax key path."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def flatten_with_paths(tree: Any) -> dict[str, Any]:
    """{'a/b/kernel': leaf, ...} in tree order."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {path_str(p): leaf for p, leaf in leaves}


def regex_mask(tree: Any, patterns: Sequence[str]) -> Any:
    """A tree of bools: True where the leaf's path matches any pattern (re.search)."""
    compiled = [re.compile(p) for p in patterns]
    return jax.tree_util.tree_map_with_path(
        lambda p, _: any(c.search(path_str(p)) for c in compiled), tree
    )


def check_patterns(patterns: Sequence[str], tree: Any, field: str = "config.freeze") -> None:
    """Fails when a pattern matches no parameter (almost always a typo)."""
    paths = list(flatten_with_paths(tree))
    for p in patterns:
        try:
            c = re.compile(p)
        except re.error as e:
            raise ConfigError(f"{field}: '{p}' is not a valid regex ({e})") from e
        if not any(c.search(q) for q in paths):
            sample = ", ".join(paths[:6])
            raise ConfigError(f"{field}: '{p}' matches no parameter path (paths look like: {sample})")
