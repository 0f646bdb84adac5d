"""Name -> object registries, so configs choose models, tasks and datasets by name.

Each registry imports every module of its package on first lookup; a module registers
its objects with a decorator, so adding a model is adding a file, not editing a list.
A module that fails to import raises its ImportError at every lookup (never a partial table).
A registration may carry the config fields the object reads (`fields=`), for `config.resolve`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Fields, suggest


class Registry:
    """A named table of constructors, filled by the modules of one package."""

    def __init__(self, kind: str, package: str, config_field: str):
        self.kind = kind
        self.package = package
        self.config_field = config_field
        self._table: dict[str, Any] = {}
        self._fields: dict[str, Fields] = {}
        self._discovered = False

    def register(self, name: str, obj: Any = None, fields: Fields | None = None
                 ) -> Callable[[Any], Any] | Any:
        """Registers `obj` under `name` (with the config fields it reads); without `obj`,
        returns a decorator."""
        if obj is not None:
            self._add(name, obj, fields)
            return obj

        def decorator(target: Any) -> Any:
            self._add(name, target, fields)
            return target

        return decorator

    def _add(self, name: str, obj: Any, fields: Fields | None) -> None:
        if name in self._table and self._table[name] is not obj:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._table[name] = obj
        self._fields[name] = dict(fields or {})

    def _discover(self) -> None:
        """Imports every module of the package; marked done only when all imported, so a
        broken module's ImportError shows at each lookup instead of 'unknown name'."""
        if self._discovered:
            return
        pkg = importlib.import_module(self.package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=self.package + "."):
            importlib.import_module(info.name)
        self._discovered = True

    def fields(self, name: str) -> Fields:
        """The config fields registered with `name`."""
        self.get(name)
        return self._fields[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._table)

    def get(self, name: str) -> Any:
        self._discover()
        if name not in self._table:
            known = ", ".join(self.names())
            raise ConfigError(
                f"unknown {self.kind} '{name}' in {self.config_field}"
                f"{suggest(str(name), self.names())} (known: {known})"
            )
        return self._table[name]


MODELS = Registry("model", "dl_arch.models", "config.model.name")
TASKS = Registry("task", "dl_arch.tasks", "config.task.name")
DATASETS = Registry("dataset", "dl_arch.data.sources", "config.dataset.name")
register_model = MODELS.register
register_task = TASKS.register
register_dataset = DATASETS.register
EVALUATORS = Registry("evaluator", "dl_arch.evaluators", "config.evaluators")


def register_evaluator(name: str, fields: Fields | None = None) -> Callable[[Any], Any]:
    """Registers an `Evaluator` class under `name`; `fields` are its section `config.<name>`."""
    def decorator(cls: Any) -> Any:
        cls.name = name
        cls.fields = dict(fields or {})
        return EVALUATORS.register(name, cls, fields)

    return decorator
