"""`arrays`: your own `.npz` / `.npy` arrays, memory-mapped, one row per example.

The `*_key` fields name the arrays that become each batch key ('' = absent):
  image_key    (N, H, W, C) or (N, H, W) images, uint8 0-255 or float 0-1 -> `image` float32
  label_key    (N,) integer class labels -> `label` int32
  inputs_key   (N, ...) features, token ids or series -> `inputs` (float32, or int32 for ints)
  targets_key  (N, ...) regression values or target tokens -> `targets` (likewise)
  lengths_key  (N,) true lengths of padded sequences -> `lengths` int32
A `.npz` (np.savez) holds named arrays. A `.npy` holds one array named by its file stem; the
other keys are read from `<name>.npy` beside it, so a split is a folder (`train/x.npy`,
`train/y.npy`; `eval_path=test/x.npy`). Arrays are memory-mapped: a batch reads only its
rows, so a file larger than memory works. Members of `np.savez_compressed` cannot be mapped
and are decompressed into memory on first read (a warning says so).

Checked when the source is built, each as one line naming the file and field: a missing
array (listing those in the file), non-numeric arrays, lengths that disagree, an empty
file or one with no rows, images that are not (N, H, W[, C]), and labels that are not whole
numbers in [0, num_classes) (`num_classes` > 0; the configs set it to the model's classes).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.batching import Batch
from dl_arch.data.npy_memmap import ArrayInfo, array_infos, describe, npy_info
from dl_arch.data.user_files import USER_FILE_FIELDS, path_of, user_split
from dl_arch.registry import register_dataset

log = logging.getLogger("dl_arch")

# batch key -> the config field naming its array
KEY_FIELDS = {"image": "image_key", "label": "label_key", "inputs": "inputs_key",
              "targets": "targets_key", "lengths": "lengths_key"}
_INTEGER_KEYS = ("label", "lengths")  # one whole number per example

ARRAY_FIELDS = {
    **USER_FILE_FIELDS,
    "image_key": Field("", "array of images (N, H, W[, C]), uint8 0-255 or float 0-1 -> image "
                           "('': none)"),
    "label_key": Field("", "array of integer class labels (N,) -> label ('': none)"),
    "inputs_key": Field("", "array of model inputs (N, ...): features, token ids, series -> "
                            "inputs ('': none)"),
    "targets_key": Field("", "array of targets (N, ...): regression values, target tokens -> "
                             "targets ('': none)"),
    "lengths_key": Field("", "array of true sequence lengths (N,) -> lengths ('': none)"),
    "num_classes": Field(0, "labels must lie in [0, num_classes), checked when the source is "
                            "built (0: only that they are whole numbers >= 0)", low=0),
}


def _fail(field: str, name: str, file: str, problem: str) -> ConfigError:
    return ConfigError(f"config.dataset.{field}={name!r} in {file!r}: {problem}")


class ArrayFile:
    """All rows of the mapped arrays of one `.npz` (or set of `.npy` files), read lazily.

    Only the arrays' locations are pickled (for grain's worker processes); each process maps
    the files again on its first read.
    """

    def __init__(self, path: str, path_field: str, names: dict[str, str], num_classes: int):
        self.path = path
        self.names = names  # batch key -> array name
        self.infos = _locate(path, path_field, names)
        self.length = _check(path, self.infos, names)
        if "label" in self.infos:
            check_labels(self._open("label"), self.infos["label"].file, "label_key", names["label"],
                         num_classes)
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return self.length

    def _open(self, key: str) -> np.ndarray:
        info = self.infos[key]
        if not info.mappable:
            log.warning("%s: array %r is compressed (np.savez_compressed), so it is read into "
                        "memory; np.savez writes arrays that are memory-mapped instead",
                        info.file, self.names[key])
        return info.open()

    def arrays(self) -> dict[str, np.ndarray]:
        """The mapped arrays by batch key (opened on the first call in each process)."""
        if self._arrays is None:
            self._arrays = {key: self._open(key) for key in self.infos}
        return self._arrays

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -self.length <= index < self.length:
            raise IndexError(f"example {index} of {self.length} in {self.path!r}")
        return {key: convert(key, a[index], a.ndim) for key, a in self.arrays().items()}

    def get_batch(self, indices: np.ndarray) -> Batch:
        """Rows `indices` of every array, stacked: one fancy index per array, which reads
        only the pages those rows lie in."""
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < self.length):
            raise IndexError(f"indices out of range [0, {self.length}) in {self.path!r}")
        return {key: convert(key, a[indices], a.ndim) for key, a in self.arrays().items()}


def convert(key: str, rows: np.ndarray, rank: int) -> np.ndarray:
    """One row, or stacked rows, of the array of batch key `key` in that key's standard dtype
    and layout (`rank`: the stored array's ndim, which says how to read a row)."""
    rows = np.asarray(rows)
    if key == "image":
        image = rows.astype(np.float32) / np.float32(255) if rows.dtype == np.uint8 else (
            rows.astype(np.float32))
        return image[..., None] if rank == 3 else image  # grayscale (N, H, W): one channel
    if key in _INTEGER_KEYS:
        return np.asarray((rows[..., 0] if rank == 2 else rows), np.int32)
    return rows.astype(np.int32 if rows.dtype.kind in "iu" else np.float32)


def _locate(path: str, path_field: str, names: dict[str, str]) -> dict[str, ArrayInfo]:
    """The header of each mapped array, by batch key (see the module doc for .npy files)."""
    if not names:
        found = describe(array_infos(path, path_field))
        raise ConfigError(f"config.dataset: no array is mapped to the model; set at least one of "
                          f"{', '.join(KEY_FIELDS.values())} to an array of {path!r} ({found})")
    if not path.lower().endswith(".npy"):
        infos = array_infos(path, path_field)
        for key, name in names.items():
            if name not in infos:
                raise _fail(KEY_FIELDS[key], name, path,
                            f"no such array; the file holds: {describe(infos)}")
        return {key: infos[name] for key, name in names.items()}
    folder = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem not in names.values():
        raise ConfigError(f"config.dataset.{path_field}={path!r} is the array {stem!r}, which no "
                          f"*_key field names; set one of {', '.join(KEY_FIELDS.values())} to "
                          f"{stem!r}")
    out = {}
    for key, name in names.items():
        file = os.path.join(folder, name + ".npy")
        if not os.path.isfile(file):
            there = sorted(f[:-4] for f in os.listdir(folder or ".") if f.endswith(".npy"))
            raise _fail(KEY_FIELDS[key], name, path, f"no file {file!r} beside it (a .npy path "
                        f"reads each key from <name>.npy in its folder: {', '.join(there)})")
        out[key] = npy_info(file, path_field)
    return out


def _check(path: str, infos: dict[str, ArrayInfo], names: dict[str, str]) -> int:
    """The number of rows, after checking dtypes, ranks and lengths (headers only)."""
    for key, info in infos.items():
        field, name = KEY_FIELDS[key], names[key]
        if info.dtype.kind not in "biuf":
            raise _fail(field, name, info.file, f"holds {info.dtype} values, not numbers; store "
                        f"numeric arrays (e.g. encode strings as integer ids)")
        if not info.shape:
            raise _fail(field, name, info.file, "is a scalar; it needs one row per example")
        if key == "image":
            _check_image(info, name)
        if key in _INTEGER_KEYS and (len(info.shape) > 2 or info.shape[1:] not in ((), (1,))):
            raise _fail(field, name, info.file, f"has shape {info.shape}; give one number per "
                        f"example, shape (N,)")
    lengths = {key: info.shape[0] for key, info in infos.items()}
    if len(set(lengths.values())) > 1:
        rows = ", ".join(f"{KEY_FIELDS[k]}={names[k]!r} has {n}" for k, n in lengths.items())
        raise ConfigError(f"config.dataset: the arrays of {path!r} disagree in length ({rows} "
                          f"rows); every array needs one row per example")
    length = next(iter(lengths.values()))
    if length == 0:
        raise ConfigError(f"config.dataset.path={path!r} holds no examples (its arrays have 0 rows)")
    return length


def _check_image(info: ArrayInfo, name: str) -> None:
    shape = info.shape
    if len(shape) not in (3, 4):
        raise _fail("image_key", name, info.file, f"has shape {shape}; images are (N, H, W, C) "
                    f"or (N, H, W)")
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3, 4):
        raise _fail("image_key", name, info.file, f"has shape {shape}, which looks channels-first; "
                    f"store images channels-last: np.transpose(x, (0, 2, 3, 1))")
    if info.dtype != np.uint8 and info.dtype.kind != "f":
        raise _fail("image_key", name, info.file, f"holds {info.dtype}; images are uint8 (0-255) "
                    f"or float (0-1)")


def check_labels(labels: np.ndarray, file: str, field: str, name: str, num_classes: int) -> None:
    """Every label a whole number in [0, num_classes), else a one-line error naming the first
    that is not (`field`=`name` in `file` is where the labels come from)."""
    labels = np.asarray(labels).reshape(len(labels)).astype(np.float64)
    whole = labels == np.round(labels)
    bad = ~whole | (labels < 0) | ((labels >= num_classes) if num_classes else False)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    wanted = f"[0, num_classes={num_classes})" if num_classes else "whole numbers >= 0"
    fix = (f"labels run {labels.min():g}..{labels.max():g}: set num_classes (and the model's) to "
           f"at least {int(labels.max()) + 1} or fix the labels" if whole.all() else
           "store integer class ids")
    raise _fail(field, name, file, f"label {labels[i]:g} at row {i} is outside {wanted}; "
                f"{fix}")


def _path_field(dataset_config: Any, split: str) -> str:
    return "eval_path" if dataset_config.eval_path and split != dataset_config.train_split else "path"


@register_dataset("arrays", fields=ARRAY_FIELDS)
def arrays(dataset_config: Any, split: str, seed: int) -> Any:
    """Rows of your `.npz` / `.npy` arrays (module doc); eval: eval_path or a held-out fraction."""
    names = {key: dataset_config[field] for key, field in KEY_FIELDS.items() if dataset_config[field]}
    reader = ArrayFile(path_of(dataset_config, split), _path_field(dataset_config, split), names,
                       dataset_config.num_classes)
    return user_split(reader, dataset_config, split)
