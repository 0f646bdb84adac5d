"""Trainer defaults shared by every config, and the `key=value,flag` option parser.

Config files start from `base_config()` and override what differs; `parse_options`
turns the text after the colon in `--config=configs/x.py:smoke,T=200` into a dict.
"""

from __future__ import annotations

import ast
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import BOOL_WORDS, suggest
from dl_arch.train.optimizers import OPTIMIZER_FIELDS
from dl_arch.train.trainer_fields import TRAINER_FIELDS


def parse_options(arg: str | None, **defaults):
    """Parses 'a=1,b=x,smoke' into {'a': 1, 'b': 'x', 'smoke': True} over `defaults`.

    An unknown key, or a value of another type than its default's, is a one-line error.
    """
    opts = dict(defaults)
    opts.setdefault("smoke", False)
    if not arg:
        return ml_collections.ConfigDict(opts)
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in opts:
            raise ConfigError(
                f"unknown config option '{key}'{suggest(key, sorted(opts))} (known options: "
                f"{', '.join(sorted(opts))})"
            )
        default = opts[key]
        if not sep:
            value = True
        else:
            try:
                value = ast.literal_eval(raw.strip())
            except (ValueError, SyntaxError):
                value = raw.strip()
        opts[key] = _typed_option(key, value, default)
    return ml_collections.ConfigDict(opts)


def _typed_option(key: str, value, default):
    """`value` checked against the type of the option's default (ints may stand for floats;
    1/0 and true/false, yes/no, on/off for bools)."""
    if default is None or isinstance(default, str):
        return value if default is None else str(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in BOOL_WORDS:
            return BOOL_WORDS[value.lower()]
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, type(default)):
        return value
    kind = "bool (True/False or 1/0)" if isinstance(default, bool) else type(default).__name__
    article = "an" if kind[0] in "aeiou" else "a"
    raise ConfigError(f"config option {key}={value!r} must be {article} {kind} like its "
                      f"default {default!r}")


def base_config() -> ml_collections.ConfigDict:
    """The declared trainer and optimiser defaults; a config file overrides what differs.

    The task, model and dataset sections start with only their names: resolution fills in
    the fields the chosen ones declare (see `launch.py --print_config`).
    """
    c = ml_collections.ConfigDict({k: f.default for k, f in TRAINER_FIELDS.items()})
    c.task = ml_collections.ConfigDict({"name": "classification"})
    c.model = ml_collections.ConfigDict({"name": "mlp"})
    c.dataset = ml_collections.ConfigDict({"name": "xor"})
    c.optimizer = ml_collections.ConfigDict({k: f.default for k, f in OPTIMIZER_FIELDS.items()})
    c.phase_optimizers = ml_collections.ConfigDict()  # per-phase overrides (GAN)
    c.sample = ml_collections.ConfigDict()  # options for `launch.py --sample`
    return c


def shrink_for_smoke(c: ml_collections.ConfigDict, steps: int = 20) -> ml_collections.ConfigDict:
    """Shrinks trainer settings so a config runs in seconds on a CPU."""
    c.num_train_steps = steps
    c.log_every_steps = max(1, steps // 4)
    c.eval_every_steps = steps
    c.checkpoint_every_steps = steps
    c.eval_max_batches = 2
    c.batch_size = min(c.batch_size, 32)
    c.steps_per_call = 1  # one compiled program: a smoke run is mostly compile time
    return c


def data_format(path: str) -> str:
    """The format of a user's data path: 'hf' (`hf:<name or folder>`), 'folder', or the
    file's extension without the dot ('npz', 'npy', 'csv', 'tsv', 'jsonl', 'json', 'txt')."""
    import os

    if path.startswith("hf:"):
        return "hf"
    if os.path.isdir(path):
        return "folder"
    return os.path.splitext(path)[1].lstrip(".").lower()


def own_data(c: ml_collections.ConfigDict, path: str, sources: dict[str, str],
             **fields) -> ml_collections.ConfigDict:
    """Points config `c` at a user's file or folder (a config's `:data=PATH` option).

    `sources` maps the formats this family reads (see `data_format`) to registered source
    names; `fields` are that source's fields the family sets (e.g. which column is the
    label). The dataset section keeps only what the new source and the task's preprocessing
    declare (augmentation, normalisation), so the procedural source's fields do not linger.
    """
    from dl_arch.data.pipeline import dataset_fields
    from dl_arch.registry import TASKS

    fmt = data_format(path)
    if fmt not in sources:
        raise ConfigError(f"data={path!r}: a {fmt or 'extensionless'} path is not a format "
                          f"this config reads; give one of: {', '.join(sorted(sources))} "
                          f"('folder' is a directory, 'hf' is hf:<dataset name or folder>)")
    name = sources[fmt]
    declared = dataset_fields(name, dict(TASKS.get(c.task.name).dataset_fields))
    kept = {k: v for k, v in c.dataset.items() if k in declared and k != "name"}
    c.dataset = ml_collections.ConfigDict({**kept, "name": name, "path": path, **fields})
    return c


# The formats an image config reads with `:data=PATH` (configs.base.data_format) -> source.
IMAGE_SOURCES = {"folder": "image_folder", "npz": "arrays", "npy": "arrays", "hf": "hf_dataset"}


def own_images(c: ml_collections.ConfigDict, path: str, classes: tuple[str, ...] | None,
               image_size: int, channels: int, labelled: bool = True, num_classes: int = 0,
               sources: dict[str, str] | None = None) -> ml_collections.ConfigDict:
    """Points config `c` at the user's images at `path` (a config's `:data=PATH` option).

    `classes` are `data_classes(path)`, which the config also gave its model (so the model's
    outputs follow the data); the source gets their count (else `num_classes`, the model's,
    when the data cannot tell, as for hf:) as its `num_classes` and fails in one line on
    more. Images reach `image_size` x `image_size` x `channels`: a folder's and a JSON's in
    the source, arrays' and a Hugging Face dataset's by the task's resize. `labelled`: the
    model needs classes (a classifier), so a flat folder is an error.
    """
    fmt = data_format(path)
    if labelled and classes is not None and len(classes) < 2:
        raise ConfigError(f"data={path!r} holds {len(classes)} class(es); a classifier needs at "
                          f"least 2: one sub-folder of images per class (or label arrays)")
    count = len(classes) if classes else num_classes
    label = "label" if labelled or classes else ""  # the data's labels, when it has them
    fields: dict[str, Any] = {"class_names": classes or None}
    if fmt == "folder":
        fields.update(image_size=image_size, channels=channels, num_classes=count)
    elif fmt in ("npz", "npy"):
        fields.update(image_key="image", label_key=label, num_classes=count)
    elif fmt == "hf":  # the columns datasets' imagefolder builder makes
        fields.update(image_column="image", label_column=label, channels=channels,
                      num_classes=count)
    elif fmt == "json":
        fields.update(image_size=image_size, max_objects=0, num_classes=count)
    own_data(c, path, sources or IMAGE_SOURCES, **fields)
    if fmt in ("npz", "npy", "hf"):  # arrays of any size: the task's eval resize fits them
        c.dataset.resize_to = image_size
        c.dataset.crop_fraction = 1.0
    return c
