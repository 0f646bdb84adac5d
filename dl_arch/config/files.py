"""Loading a config file: `configs/x.py[:options]` -> the ConfigDict its `get_config` returns."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from dl_arch.config.errors import ConfigError


def split_spec(spec: str) -> tuple[str, str | None]:
    """'configs/x.py:smoke,T=10' -> ('configs/x.py', 'smoke,T=10')."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)


def load_module(path: str, flag: str = "--config") -> Any:
    """Imports a config or experiment file by path (its folder's parent on sys.path, so
    `from configs.base import ...` works from anywhere)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{flag}: file '{path}' does not exist (run from the repository root; "
                          f"configs live in configs/, experiments in experiments/)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if root not in sys.path:
        sys.path.insert(0, root)
    name = "_dl_arch_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config_file(spec: str, flag: str = "--config") -> Any:
    """Calls `get_config(options)` of the file named by `spec` (not yet resolved)."""
    path, arg = split_spec(spec)
    module = load_module(path, flag)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{flag}: '{path}' has no get_config(arg) function")
    return module.get_config(arg)
