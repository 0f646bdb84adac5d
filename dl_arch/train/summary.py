"""Model summary at start: parameter count per top-level module, and FLOPs of one step."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def count_params(tree: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def param_table(params: Any) -> list[tuple[str, int]]:
    """[(top-level module, count), ..., ('total', count)]; for phased params, one level deeper."""
    rows = []
    if isinstance(params, dict):
        for name, sub in params.items():
            if isinstance(sub, dict) and all(isinstance(v, dict) for v in sub.values()) and len(params) <= 3:
                rows += [(f"{name}/{k}", count_params(v)) for k, v in sub.items()]
            else:
                rows.append((name, count_params(sub)))
    rows.append(("total", count_params(params)))
    return rows


def format_table(rows: list[tuple[str, int]]) -> str:
    width = max(len(n) for n, _ in rows)
    return "\n".join(f"  {n:<{width}}  {c:>14,}" for n, c in rows)


def peak_memory_bytes() -> int | None:
    """Peak device memory of device 0 where the backend reports it (GPU/TPU)."""
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not stats:
        return None
    return int(stats.get("peak_bytes_in_use", 0)) or None
