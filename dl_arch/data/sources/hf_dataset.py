"""`hf_dataset`: a Hugging Face `datasets` dataset, by name or from local files, columns
mapped to the model's inputs. Needs the `data` extra: `pip install 'dl_arch[data]'`.

What to load: `path='hf:<hub name or local folder>'` (what a config's `:data=hf:...` gives),
a local folder or file (csv, tsv, json, jsonl, parquet, txt: the builder follows the
extension), or `hf_name` (a builder such as csv, json, parquet, text, imagefolder, a hub
name or a folder) with `data_dir` / `data_files`. The hub needs a network
(or datasets' cache); local files never do. datasets converts files once to Arrow tables
(in `cache_dir`), which are memory-mapped and read row by row.

Splits: training reads `hf_split`; eval reads `hf_eval_split` when set, else `eval_path`
(loaded the same way), else `eval_fraction` of `hf_split` drawn with `split_seed`.

Columns -> batch keys ('' or empty = absent):
  image_column     images (PIL-decoded here, converted to `channels`) -> image float32 HWC
                   in [0, 1]; sizes may differ only when `resize_to` is set
  label_column     integer class labels (ClassLabel, as imagefolder makes) -> label int32
  text_column      text -> inputs (UTF-8 bytes + 4, padded to max_length) and lengths
  inputs_columns   numeric columns, stacked per row -> inputs float32 ('*': every column
                   not used by another key)
  targets_columns  numeric columns, stacked per row -> targets float32
Checked when the source is built, each as one line naming the data and field: a missing
package, data datasets cannot load, a missing column (listing those that exist), no rows,
text or empty cells in a numeric column (naming the row), labels that are not whole numbers
in [0, num_classes) (`num_classes` > 0). At the example that fails, naming its row: an image
that cannot be decoded, an image whose size differs from the first without `resize_to`.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.batching import Batch
from dl_arch.data.sources.arrays import check_labels
from dl_arch.data.tokenizers import ByteTokenizer, pad_to
from dl_arch.data.user_files import USER_FILE_FIELDS, held_out
from dl_arch.registry import register_dataset

# builder of a local file, by extension (with its extra arguments)
BUILDERS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {}),
            ".jsonl": ("json", {}), ".parquet": ("parquet", {}), ".txt": ("text", {})}
COLUMN_FIELDS = ("image_column", "label_column", "text_column", "inputs_columns", "targets_columns")

HF_FIELDS = {
    **USER_FILE_FIELDS,
    "path": Field("", "hf:<hub name or local folder>, or a local folder or file datasets reads "
                      "(csv, tsv, json, jsonl, parquet, txt) ('': hf_name)"),
    "eval_path": Field("", "the eval data, given like path ('': hf_eval_split, else eval_fraction "
                           "of path)"),
    "hf_name": Field("", "what to load when path is '': a builder (csv, json, parquet, text, "
                         "imagefolder), a hub name or a folder"),
    "hf_config": Field("", "the dataset's configuration (subset) name ('': its default)"),
    "data_dir": Field("", "folder of the builder's files ('': none)"),
    "data_files": Field((), "files or globs for the builder (empty: none)", kind=tuple),
    "hf_split": Field("train", "split read for training (slices work: 'train[:90%]')"),
    "hf_eval_split": Field("", "split read for eval, e.g. 'test' ('': eval_path, else "
                               "eval_fraction of hf_split)"),
    "cache_dir": Field("", "folder of datasets' Arrow files ('': ~/.cache/huggingface/datasets)"),
    "image_column": Field("", "column of images -> image float32 HWC in [0, 1] ('': none)"),
    "channels": Field(3, "image_column: channels of every image (3 = RGB, 1 = grayscale)",
                      choices=(1, 3)),
    "label_column": Field("", "column of integer class labels -> label ('': none)"),
    "text_column": Field("", "column of text -> inputs (byte ids) and lengths ('': none)"),
    "max_length": Field(128, "text_column: bytes kept per example (padded to this)", low=1),
    "inputs_columns": Field((), "numeric columns stacked -> inputs ('*': every column no other "
                                "key uses; empty: none)", kind=tuple),
    "targets_columns": Field((), "numeric columns stacked -> targets (empty: none)", kind=tuple),
    "num_classes": Field(0, "labels must lie in [0, num_classes), checked when the source is "
                            "built (0: only that they are whole numbers >= 0)", low=0),
}


def import_datasets() -> Any:
    """The `datasets` package, or a one-line error saying which extra installs it."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("config.dataset.name='hf_dataset' needs the Hugging Face datasets "
                          "package: pip install 'dl_arch[data]' (or pip install 'datasets>=2.19')"
                          ) from None
    return datasets


def _first_line(e: BaseException) -> str:
    """The error's first line, and its cause's (datasets wraps a parser's error in its own)."""
    def line(x: BaseException) -> str:
        return (str(x).splitlines() or [""])[0] or type(x).__name__

    cause = e.__cause__ or e.__context__
    return f"{line(e)} ({line(cause)})" if cause is not None else line(e)


def load_split(dataset_config: Any, field: str, split: str) -> Any:
    """`split` of the data named by `config.dataset.<field>` (path or eval_path; `hf_name`
    when path is ''), as a `datasets.Dataset`."""
    datasets = import_datasets()
    given = dataset_config[field]
    if given and dataset_config.hf_name and field == "path":
        raise ConfigError(f"config.dataset.path={given!r} and hf_name={dataset_config.hf_name!r} "
                          f"are both set; give the data once (path='hf:<name or folder>' or hf_name)")
    if not given and field == "path":
        given, field = dataset_config.hf_name, "hf_name"
    if not given:
        raise ConfigError("config.dataset.path is not set; give hf:<dataset name or folder>, a "
                          "local file or folder, or config.dataset.hf_name")
    target = given[len("hf:"):] if given.startswith("hf:") else given
    kwargs: dict[str, Any] = {"split": split, "cache_dir": dataset_config.cache_dir or None}
    if dataset_config.hf_config:
        kwargs["name"] = dataset_config.hf_config
    if dataset_config.data_dir:
        kwargs["data_dir"] = dataset_config.data_dir
    if dataset_config.data_files:
        kwargs["data_files"] = list(dataset_config.data_files)
    if os.path.isfile(target):
        target = _file_builder(target, field, kwargs)
    try:
        ds = datasets.load_dataset(target, **kwargs)
    except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetsError) as e:
        raise ConfigError(f"config.dataset.{field}={given!r}: datasets cannot load split "
                          f"{split!r}: {_first_line(e)}") from e
    if len(ds) == 0:
        raise ConfigError(f"config.dataset.{field}={given!r}: split {split!r} has no rows")
    return ds


def _file_builder(file: str, field: str, kwargs: dict[str, Any]) -> str:
    """The builder of a local file (by its extension); its arguments are added to `kwargs`."""
    ext = os.path.splitext(file)[1].lower()
    if ext not in BUILDERS:
        raise ConfigError(f"config.dataset.{field}={file!r}: a {ext or 'extensionless'} file is not "
                          f"one datasets reads here; give one of {', '.join(BUILDERS)}, a folder, "
                          f"or hf_name with data_files")
    if os.path.getsize(file) == 0:
        raise ConfigError(f"config.dataset.{field}={file!r} is an empty file")
    builder, extra = BUILDERS[ext]
    kwargs.update(extra, data_files=[file])
    return builder


class HFRows:
    """Rows of one `datasets.Dataset` (or the rows `keep` of it), as standard batch keys.

    Examples are read one by one (`__getitem__`): images may differ in size until the
    task's preprocessing resizes them. `HFTable` adds a batched read for tables.
    """

    def __init__(self, ds: Any, name: str, dataset_config: Any, keep: np.ndarray | None = None,
                 resize: bool = False):
        self.name = name  # what the user gave, for messages
        self.columns = _columns(ds, name, dataset_config)
        self.channels = int(dataset_config.channels)
        self.max_length = int(dataset_config.max_length)
        if "label" in self.columns:
            check_labels(_labels(ds, self.columns["label"], name), name, "label_column",
                         self.columns["label"], int(dataset_config.num_classes))
        if "text" in self.columns:
            _check_text(ds, self.columns["text"], name)
        for key in ("inputs", "targets"):
            for column in self.columns[key] if key in self.columns else ():
                _check_numbers(ds, column, name, f"{key}_columns")
        if "image" in self.columns:
            ds = _undecoded_images(ds, self.columns["image"], name)
        self.rows = np.arange(len(ds)) if keep is None else np.asarray(keep, np.int64)
        self.ds = ds if keep is None else ds.select(self.rows)
        self.image_shape = None
        if "image" in self.columns and not resize:
            self.image_shape = self[0]["image"].shape  # every image must match the first

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} of {len(self)} in {self.name!r}")
        batch = self._read(np.asarray([index]))
        return {k: np.asarray(v[0]) for k, v in batch.items()}

    def _read(self, indices: np.ndarray) -> dict[str, Any]:
        """Rows `indices`: per key an array with a leading row axis (a list for images)."""
        raw = self.ds[indices.tolist()]
        n, out = len(indices), {}
        if "image" in self.columns:
            out["image"] = [self._image(v, int(i)) for v, i in zip(raw[self.columns["image"]], indices)]
        if "label" in self.columns:
            out["label"] = np.asarray(raw[self.columns["label"]], np.float64).astype(np.int32)
        if "text" in self.columns:
            ids = [ByteTokenizer().encode(t) for t in raw[self.columns["text"]]]
            out["inputs"] = np.stack([pad_to(x, self.max_length) for x in ids]) if n else (
                np.zeros((0, self.max_length), np.int32))
            out["lengths"] = np.asarray([min(len(x), self.max_length) for x in ids], np.int32)
        for key in ("inputs", "targets"):
            if key in self.columns:
                out[key] = np.concatenate([np.asarray(raw[c], np.float32).reshape(n, -1)
                                           for c in self.columns[key]], axis=1)
        return out

    def _image(self, value: Any, index: int) -> np.ndarray:
        """One image as float32 HWC in [0, 1], `channels` channels."""
        from PIL import Image

        row = int(self.rows[index])
        column = self.columns["image"]
        source = value["bytes"] if value["bytes"] is not None else value["path"]
        where = f" ({value['path']})" if value["path"] else ""
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                pixels = np.asarray(im.convert("RGB" if self.channels == 3 else "L"))
        except OSError as e:  # PIL's UnidentifiedImageError is an OSError
            raise ConfigError(f"config.dataset.image_column={column!r} of {self.name!r}: image at "
                              f"row {row}{where} cannot be decoded: {_first_line(e)}") from e
        image = pixels.reshape(pixels.shape[0], pixels.shape[1], self.channels).astype(np.float32)
        if self.image_shape is not None and image.shape != self.image_shape:
            raise ConfigError(
                f"config.dataset.image_column={column!r} of {self.name!r}: image at row {row}"
                f"{where} is {image.shape[0]}x{image.shape[1]}, the first is "
                f"{self.image_shape[0]}x{self.image_shape[1]}; set config.dataset.resize_to "
                f"(e.g. {self.image_shape[0]}) to resize every image")
        return image / np.float32(255)


class HFTable(HFRows):
    """`HFRows` of a dataset without images: a batch is one read of the Arrow table."""

    def get_batch(self, indices: np.ndarray) -> Batch:
        indices = np.asarray(indices, np.int64)
        if len(indices) and not (0 <= indices.min() and indices.max() < len(self)):
            raise IndexError(f"indices out of range [0, {len(self)}) in {self.name!r}")
        return self._read(indices)


def _columns(ds: Any, name: str, dataset_config: Any) -> dict[str, Any]:
    """Batch key -> column name (a tuple of names for inputs/targets), every name checked."""
    cols = {key: dataset_config[f"{key}_column"] for key in ("image", "label", "text")
            if dataset_config[f"{key}_column"]}
    for key in ("inputs", "targets"):
        if dataset_config[f"{key}_columns"]:
            cols[key] = tuple(dataset_config[f"{key}_columns"])
    if "text" in cols and "inputs" in cols:
        raise ConfigError("config.dataset: text_column and inputs_columns both make inputs; set "
                          "one of them")
    if not cols:
        raise ConfigError(f"config.dataset: no column of {name!r} is mapped to the model; set at "
                          f"least one of {', '.join(COLUMN_FIELDS)} (its columns: "
                          f"{', '.join(ds.column_names)})")
    if "inputs" in cols and cols["inputs"] == ("*",):
        used = {c for key, v in cols.items() if key != "inputs"
                for c in (v if isinstance(v, tuple) else (v,))}
        cols["inputs"] = tuple(c for c in ds.column_names if c not in used)
    for key, value in cols.items():
        field = f"{key}_columns" if key in ("inputs", "targets") else f"{key}_column"
        for column in value if isinstance(value, tuple) else (value,):
            if column not in ds.column_names:
                raise ConfigError(f"config.dataset.{field}: {name!r} has no column {column!r}; its "
                                  f"columns: {', '.join(ds.column_names)}")
    return cols


def _undecoded_images(ds: Any, column: str, name: str) -> Any:
    """`ds` with `column` left as file paths / bytes, which `HFRows._image` decodes itself (so
    a corrupt file is named and every image gets `channels`)."""
    datasets = import_datasets()
    if not isinstance(ds.features[column], datasets.Image):
        raise ConfigError(f"config.dataset.image_column: column {column!r} of {name!r} holds "
                          f"{ds.features[column]}, not images; map arrays with inputs_columns")
    return ds.cast_column(column, datasets.Image(decode=False))


def _leaf_type(kind: Any) -> Any:
    """The element type of a (nested) Arrow list type."""
    import pyarrow as pa

    while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        kind = kind.value_type
    return kind


def _check_numbers(ds: Any, column: str, name: str, field: str) -> None:
    """A one-line error naming the first row of `column` that is empty or not a number."""
    import pyarrow as pa

    data = ds.data.column(column)
    kind = _leaf_type(data.type)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        for row, value in enumerate(data.to_pylist()):
            try:
                float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"config.dataset.{field}: column {column!r} of {name!r} holds "
                                  f"{value!r} at row {row}, not a number") from None
        raise ConfigError(f"config.dataset.{field}: column {column!r} of {name!r} holds numbers as "
                          f"text ({kind}); store them as numbers")
    if data.null_count:
        row = int(np.argmax(data.is_null().to_numpy(zero_copy_only=False)))
        raise ConfigError(f"config.dataset.{field}: column {column!r} of {name!r} is empty at row "
                          f"{row}; fill or drop the rows with missing values")


def _labels(ds: Any, column: str, name: str) -> np.ndarray:
    """The label column as one number per row (checked to be numbers)."""
    _check_numbers(ds, column, name, "label_column")
    data = ds.data.column(column)
    if data.type != _leaf_type(data.type):
        raise ConfigError(f"config.dataset.label_column: column {column!r} of {name!r} holds "
                          f"lists; give one class id per row")
    return data.to_numpy()


def _check_text(ds: Any, column: str, name: str) -> None:
    import pyarrow as pa

    kind = ds.data.column(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ConfigError(f"config.dataset.text_column: column {column!r} of {name!r} holds {kind}, "
                          f"not text")


@register_dataset("hf_dataset", fields=HF_FIELDS)
def hf_dataset(dataset_config: Any, split: str, seed: int) -> HFRows:
    """Rows of a Hugging Face dataset (module doc); eval: hf_eval_split, eval_path or a fraction."""
    own_eval = bool(dataset_config.hf_eval_split or dataset_config.eval_path)
    if split == dataset_config.train_split or not own_eval:
        field, hf_split = "path", dataset_config.hf_split
    else:
        field = "eval_path" if dataset_config.eval_path else "path"
        hf_split = dataset_config.hf_eval_split or dataset_config.hf_split
    ds = load_split(dataset_config, field, hf_split)
    keep = None if own_eval else held_out(len(ds), dataset_config, split)
    resize = "resize_to" in dataset_config and dataset_config.resize_to > 0  # an image task's field
    reader = HFRows if dataset_config.image_column else HFTable
    return reader(ds, _shown(dataset_config, field), dataset_config, keep, resize)


def _shown(dataset_config: Any, field: str) -> str:
    """The data as the user named it, for messages."""
    return dataset_config[field] or dataset_config.hf_name or "/".join(dataset_config.data_files)
