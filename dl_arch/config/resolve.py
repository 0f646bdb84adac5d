"""Resolution of a run's config: declared defaults, then the config file, then overrides.

    config = resolve_config(get_config(arg), overrides=[("model.width", Text("64"))])

Every section's fields are declared next to the code that reads them (the trainer's in
`train/trainer_fields.py`, the optimiser's in `train/optimizers.py`, a task's in its class,
a dataset's at its registration, a model's in its linen dataclass). Resolution picks the
declarations for the chosen names, rejects unknown fields with a suggestion, fills the
defaults, applies overrides (typed by the declaration), checks every value and locks.
`describe_config` prints the result with each field's meaning (`launch.py --print_config`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields, collect, model_fields, suggest

log = logging.getLogger("dl_arch")
NAMED = ("task", "model", "dataset")  # sections whose fields depend on their `name`


@dataclasses.dataclass(frozen=True)
class Text:
    """An override given as command-line text: parsed by its field's declared kind."""

    text: str


Override = tuple[str, Any]  # ("optimizer.learning_rate", 0.01) or (..., Text("0.01"))


def declarations(config: Mapping[str, Any]) -> dict[str, Fields]:
    """Section -> declared fields for the names chosen in `config` ('' is the top level)."""
    from dl_arch.data.pipeline import dataset_fields
    from dl_arch.evaluators.base import evaluator_fields
    from dl_arch.registry import EVALUATORS, MODELS, TASKS
    from dl_arch.train.optimizers import OPTIMIZER_FIELDS
    from dl_arch.train.trainer_fields import TRAINER_FIELDS

    names = {s: _name_of(config, s) for s in NAMED}
    task_cls = TASKS.get(names["task"])
    name_field = {s: Field(names[s], f"registered {s} name (see the README's tables)")
                  for s in NAMED}
    out: dict[str, Fields] = {
        "": dict(TRAINER_FIELDS),
        "optimizer": OPTIMIZER_FIELDS,
        "task": {"name": name_field["task"], **collect(task_cls, "fields")},
        "model": {"name": name_field["model"], **model_fields(MODELS.get(names["model"]))},
        "dataset": {"name": name_field["dataset"],
                    **dataset_fields(names["dataset"], dict(task_cls.dataset_fields))},
    }
    out.update(collect(task_cls, "sections"))
    for name in evaluator_names(config):
        cls = EVALUATORS.get(name)
        if name in out:
            raise ConfigError(f"config.evaluators: '{name}' names a section of the config "
                              f"already; register the evaluator under another name")
        out[name] = evaluator_fields(cls)
    return out


def evaluator_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    """`config.evaluators`, or the task's own list when it is unset (None)."""
    from dl_arch.registry import TASKS

    names = config.get("evaluators")
    if names is None:
        names = TASKS.get(_name_of(config, "task")).evaluators
    if isinstance(names, str):
        names = tuple(n.strip() for n in names.split(",") if n.strip())
    return tuple(names)


def _name_of(config: Mapping[str, Any], section: str) -> str:
    node = config.get(section)
    if not isinstance(node, (Mapping, ml_collections.ConfigDict)) or not isinstance(
            node.get("name"), str):
        raise ConfigError(f"config.{section}.name is not set; a config names its {section} "
                          f"(e.g. config.{section}.name = '...')")
    return node["name"]


def resolve_config(config: Any, overrides: Iterable[Override] = (),
                   source: str = "the config file", override_source: str = "on the command line"
                   ) -> ml_collections.ConfigDict:
    """The locked, fully declared config of a run (see the module docstring).

    `source` (a file) and `override_source` (a phrase) say where an unknown field came from.
    Idempotent: resolving a resolved config returns an equal one.
    """
    data = _plain_dict(config)
    overrides = list(overrides)
    first = [o for o in overrides if _applies_first(o)]
    rest = [o for o in overrides if not _applies_first(o)]
    renamed = set()  # sections whose name an override changed: the file's fields may not apply
    for path, value in first:  # names and whole sections decide which fields exist
        if path == "evaluators":
            renamed.add("evaluators")
            value = _evaluators_field().parse(value.text, path) if isinstance(value, Text) \
                else _evaluators_field().check(value, path)
        value = value.text if isinstance(value, Text) else value
        section = path.split(".")[0]
        if path.endswith(".name") and data.get(section, {}).get("name") != value:
            renamed.add(section)
        _set(data, path, value, create=True)
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and dataset.get("module"):
        from dl_arch.data.user_files import load_user_sources

        load_user_sources(dataset["module"])  # its sources exist before names are looked up
    if data.get("evaluators") is None or "task" in renamed and "evaluators" not in renamed:
        data["evaluators"] = None  # the (new) task's own list
    data["evaluators"] = evaluator_names(data)
    decl = declarations(data)
    _drop_unlisted_evaluator_sections(data, decl, "evaluators" in renamed or "task" in renamed,
                                      source)
    phase_names = _phase_names(data)
    for section, fields in decl.items():
        node = data if section == "" else data.setdefault(section, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config.{section} must be a section (a dict), not {node!r}")
        for key in list(node):
            if section == "" and key in decl:
                continue
            if section == "" and key == "phase_optimizers":
                continue
            if key not in fields:
                if section in renamed:
                    log.warning("config.%s.%s (set in %s) is dropped: %s '%s' does not declare "
                                "it", section, key, source, section, data[section]["name"])
                    del node[key]
                    continue
                raise ConfigError(_unknown(section, key, fields, data, source))
        for key, field in fields.items():
            if key not in node:
                node[key] = copy.deepcopy(field.default)
    _check_phase_optimizers(data, phase_names, source)
    for path, value in rest:
        field = _field_at(decl, path, data, phase_names, override_source)
        _set(data, path, field.parse(value.text, path) if isinstance(value, Text)
             else field.check(value, path))
    for section, fields in decl.items():
        node = data if section == "" else data[section]
        for key, field in fields.items():
            node[key] = field.check(node[key], f"{section}.{key}" if section else key)
    _check_phase_optimizers(data, phase_names, source)
    from dl_arch.train.trainer_fields import check_trainer

    resolved = ml_collections.ConfigDict(data)
    check_trainer(resolved)
    resolved.lock()
    return resolved


def _evaluators_field() -> Field:
    from dl_arch.train.trainer_fields import TRAINER_FIELDS

    return TRAINER_FIELDS["evaluators"]


def _drop_unlisted_evaluator_sections(data: dict, decl: dict[str, Fields], changed: bool,
                                      source: str) -> None:
    """A section of an evaluator not in `config.evaluators`: dropped with a warning when an
    override changed the list (or the task), else a one-line error (it would do nothing)."""
    from dl_arch.registry import EVALUATORS

    for key in list(data):
        if key in decl or key in TRAINER_KEYS or not isinstance(data[key], dict) \
                or key not in EVALUATORS.names():
            continue
        if changed:
            log.warning("config.%s (set in %s) is dropped: '%s' is not in config.evaluators",
                        key, source, key)
            del data[key]
        else:
            raise ConfigError(
                f"config.{key} (in {source}) configures the evaluator '{key}', which "
                f"config.evaluators={tuple(data['evaluators'])} does not list; add it there "
                f"or drop the section")


TRAINER_KEYS = ("phase_optimizers",)


def _applies_first(override: Override) -> bool:
    path, value = override
    if path == "evaluators":
        return True
    parts = path.split(".")
    if len(parts) == 2 and parts[0] in NAMED and parts[1] == "name":
        return True
    return len(parts) == 1 and parts[0] in NAMED + ("optimizer",) and not isinstance(value, Text)


def _phase_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    from dl_arch.registry import TASKS

    return tuple(getattr(TASKS.get(_name_of(data, "task")), "phases", ()))


def _check_phase_optimizers(data: dict, phase_names: tuple[str, ...], source: str) -> None:
    """`phase_optimizers.<phase>.<optimizer field>`: per-phase optimiser overrides (GAN)."""
    from dl_arch.train.optimizers import OPTIMIZER_FIELDS

    phases = data.setdefault("phase_optimizers", {})
    for phase, fields in phases.items():
        if phase not in phase_names:
            raise ConfigError(
                f"config.phase_optimizers.{phase} (in {source}): task "
                f"'{data['task']['name']}' has phases {', '.join(phase_names) or 'none'}"
                f"{suggest(phase, list(phase_names))}")
        for key, value in dict(fields).items():
            if key not in OPTIMIZER_FIELDS:
                raise ConfigError(_unknown(f"phase_optimizers.{phase}", key, OPTIMIZER_FIELDS,
                                           data, source))
            fields[key] = OPTIMIZER_FIELDS[key].check(value, f"phase_optimizers.{phase}.{key}")


def _field_at(decl: dict[str, Fields], path: str, data: dict,
              phase_names: tuple[str, ...], source: str) -> Field:
    from dl_arch.train.optimizers import OPTIMIZER_FIELDS

    parts = path.split(".")
    if len(parts) == 1:
        section, key = "", parts[0]
    elif len(parts) == 2:
        section, key = parts
    elif len(parts) == 3 and parts[0] == "phase_optimizers" and parts[1] in phase_names:
        if parts[2] not in OPTIMIZER_FIELDS:
            raise ConfigError(_unknown(path.rsplit(".", 1)[0], parts[2], OPTIMIZER_FIELDS, data,
                                       source))
        data.setdefault("phase_optimizers", {}).setdefault(parts[1], {})
        return OPTIMIZER_FIELDS[parts[2]]
    else:
        raise ConfigError(f"config.{path}: no such field (fields are config.<field> or "
                          f"config.<section>.<field>; sections: {', '.join(s for s in decl if s)})")
    if section and section not in decl:
        raise ConfigError(f"config.{path}: no section '{section}'"
                          f"{suggest(section, [s for s in decl if s])} (sections: "
                          f"{', '.join(s for s in decl if s)})")
    fields = decl[section]
    if key not in fields:
        raise ConfigError(_unknown(section, key, fields, data, source))
    return fields[key]


def _unknown(section: str, key: str, fields: Fields, data: Mapping[str, Any], source: str) -> str:
    owner = {"": "the trainer", "optimizer": "the optimizer"}.get(section)
    if owner is None and section in NAMED:
        owner = f"{section} '{data[section]['name']}'"
    owner = owner or f"config.{section}"
    path = f"{section}.{key}" if section else key
    known = sorted(fields)
    shown = ", ".join(known) if len(known) <= 40 else ", ".join(known[:40]) + ", ..."
    where = source if source.startswith(("on ", "in ")) else f"in {source}"
    return (f"config.{path} ({where}) is not a field of {owner}"
            f"{suggest(key, known)} (known: {shown}; see --print_config)")


def _set(data: dict, path: str, value: Any, create: bool = False) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        if part not in node and create:
            node[part] = {}
        node = node[part]
    node[leaf] = _plain_dict(value) if isinstance(value, Mapping) else value


def _plain_dict(config: Any) -> dict:
    """A deep copy of a ConfigDict / mapping as plain dicts (FieldReferences resolved)."""
    if isinstance(config, ml_collections.ConfigDict):
        config = config.to_dict()
    out = {}
    for k, v in config.items():
        out[k] = _plain_dict(v) if isinstance(v, Mapping) else copy.deepcopy(v)
    return out


def describe_config(config: ml_collections.ConfigDict) -> str:
    """Every field of a resolved config with its value and meaning, one line each."""
    decl = declarations(config)
    lines = []
    for section, fields in decl.items():
        node = config if section == "" else config[section]
        if not fields:
            continue
        title = "trainer" if section == "" else f"config.{section}"
        if section in NAMED:
            title += f" ({node.name})"
        lines.append(f"# {title}")
        width = max((len(k) for k in fields), default=0) + len(section) + 10
        for key in fields:
            path = f"config.{section}.{key}" if section else f"config.{key}"
            left = f"{path} = {node[key]!r}"
            lines.append(f"{left:<{max(width, len(left))}}  # {fields[key].describe()}")
        if section == "optimizer":
            for phase, fields_ in (config.get("phase_optimizers") or {}).items():
                for key, value in fields_.items():
                    lines.append(f"config.phase_optimizers.{phase}.{key} = {value!r}  "
                                 f"# {OPT_DOC.format(phase=phase)}")
        lines.append("")
    return "\n".join(lines)


OPT_DOC = "the {phase} phase's optimiser differs from config.optimizer here"
