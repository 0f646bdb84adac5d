"""What every source of a user's own files shares: the path fields, the train/eval split,
a random-access view of the kept examples, and one-line errors that name the file.

A source of users' files declares `USER_FILE_FIELDS` beside its own and builds itself as

    reader = MyReader(path_of(dataset_config, split))    # every example of one file/folder
    return user_split(reader, dataset_config, split)     # the examples of this split

The eval split is either a second file or folder (`eval_path`) or `eval_fraction` of
`path`, drawn once with `split_seed`: the two splits never share an example, and the same
seed gives the same split on every machine and in every worker process.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.batching import Batch

USER_FILE_FIELDS: Fields = {
    "path": Field("", "your data: a file or folder (the whole data set when eval_path is '', "
                      "else the train split)"),
    "eval_path": Field("", "the eval split's file or folder ('': eval_fraction of path, drawn "
                           "with split_seed)"),
    "eval_fraction": Field(0.1, "share of path held out for eval when eval_path is ''",
                           low=0.0, high=1.0, low_open=True, high_open=True),
    "split_seed": Field(0, "seed of the train/eval split of path (apart from config.seed, so "
                           "runs of different seeds share one split)"),
}


def require(path: str, field: str, kind: str = "file or folder") -> str:
    """`path` when it exists, else a one-line ConfigError naming `config.dataset.<field>`."""
    if not path:
        raise ConfigError(f"config.dataset.{field} is not set; give the {kind} of your data "
                          f"(e.g. --config.dataset.{field}=/data/mine)")
    if not os.path.exists(path):
        raise ConfigError(f"config.dataset.{field}={path!r}: no such {kind}")
    return path


def check_class_count(dataset_config: Any, names: list[str], kind: str = "classes") -> None:
    """One line when the data has more classes than the model was built for
    (`dataset.num_classes`; 0 skips the check)."""
    c = dataset_config
    if c.num_classes and len(names) > c.num_classes:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ConfigError(f"config.dataset.path={c.path!r} has {len(names)} {kind} ({shown}) but "
                          f"the model was built for config.dataset.num_classes={c.num_classes}; "
                          f"set model.num_classes and dataset.num_classes to {len(names)} (the "
                          f"config's :data option does)")


def path_of(dataset_config: Any, split: str) -> str:
    """The file or folder to read for `split`: `eval_path` for the eval split when it is set,
    else `path` (which `user_split` then divides)."""
    if dataset_config.eval_path and split != dataset_config.train_split:
        return require(dataset_config.eval_path, "eval_path")
    return require(dataset_config.path, "path")


def held_out(length: int, dataset_config: Any, split: str) -> np.ndarray:
    """Sorted indices of `split` among `length` examples of `path`: a permutation drawn with
    `split_seed`; its first round(length * eval_fraction) (at least 1) are the eval split."""
    if length < 2:
        raise ConfigError(f"config.dataset.path={dataset_config.path!r} holds {length} example(s); "
                          f"a train/eval split needs at least 2 (or set config.dataset.eval_path)")
    n_eval = min(length - 1, max(1, round(length * dataset_config.eval_fraction)))
    order = np.random.default_rng(dataset_config.split_seed).permutation(length)
    keep = order[:n_eval] if split != dataset_config.train_split else order[n_eval:]
    return np.sort(keep)


def user_split(reader: Any, dataset_config: Any, split: str) -> Any:
    """`reader` (all of one file or folder) restricted to `split` (see the module doc)."""
    if dataset_config.eval_path:
        return reader
    kind = BatchedSubset if hasattr(reader, "get_batch") else Subset
    return kind(reader, held_out(len(reader), dataset_config, split))


class Subset:
    """The examples `indices` of a random-access source, renumbered 0..len-1."""

    def __init__(self, source: Any, indices: np.ndarray):
        self.source = source
        self.indices = np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.source[int(self.indices[index])]


class BatchedSubset(Subset):
    """A `Subset` of a source with a batched read (`get_batch`), which it keeps; a source
    without one (examples of mixed sizes, stacked only after preprocessing) gets a plain
    `Subset`, so the pipeline reads it example by example."""

    def get_batch(self, indices: np.ndarray) -> Batch:
        return self.source.get_batch(self.indices[np.asarray(indices, np.int64)])


_LOADED: set[str] = set()


def load_user_sources(spec: str) -> None:
    """Imports `config.dataset.module` once: a module name (`my_lab.sources`) or a `.py` file,
    whose `@register_dataset` sources then exist by name. A file is imported by its module
    name with its folder on sys.path, so worker processes can unpickle what it defines."""
    if not spec or spec in _LOADED:
        return
    name = spec
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise ConfigError(f"config.dataset.module={spec!r}: no such file")
        folder = os.path.dirname(os.path.abspath(spec))
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = os.path.splitext(os.path.basename(spec))[0]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or not name.startswith(e.name):
            raise  # the module itself imports something missing: a bug, keep the traceback
        raise ConfigError(f"config.dataset.module={spec!r}: no module named {e.name!r}; give "
                          f"an importable module or the path of a .py file") from None
    _LOADED.add(spec)
