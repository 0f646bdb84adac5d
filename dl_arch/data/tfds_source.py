"""TFDS datasets through `tfds.data_source`: ArrayRecord files read with random access.

TensorFlow is needed only to download and prepare a dataset once (`pip install
'dl_arch[tfds]'`); reading a prepared dataset needs only tensorflow-datasets.
"""

from __future__ import annotations

from typing import Any

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields

PREFIX = "tfds:"

TFDS_FIELDS: Fields = {
    "data_dir": Field("", "TFDS data_dir ('' = the TFDS default, ~/tensorflow_datasets)"),
    "download": Field(True, "download and prepare the dataset if it is missing"),
}

# Fields of a `tfds:<name>` dataset: where it lives, and how much of each split to use.
TFDS_DATASET_FIELDS: Fields = {
    **TFDS_FIELDS,
    "num_train_examples": Field(None, "train on only the first N examples of the training split "
                                      "(None: all of it)", kind=int, low=1),
    "num_eval_examples": Field(None, "evaluate on only the first N examples of the eval split "
                                     "(None: all of it)", kind=int, low=1),
}


def is_tfds(name: str) -> bool:
    return name.startswith(PREFIX)


def tfds_source(dataset_config: Any, split: str) -> Any:
    """Opens split `split` of `config.dataset.name = 'tfds:<name>'` for random access."""
    import tensorflow_datasets as tfds

    from dl_arch.data.pipeline import resolve_dataset

    dataset_config = resolve_dataset(dataset_config)  # library callers may pass a bare section
    name = dataset_config.name[len(PREFIX):]
    data_dir, download = dataset_config.data_dir or None, dataset_config.download
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"config.dataset.name='{dataset_config.name}' is not prepared in "
            f"{data_dir or 'the TFDS data dir'}; preparing it needs TensorFlow (missing module "
            f"{e.name}): run pip install 'dl_arch[tfds]' once (with network), or pick an "
            f"offline dataset"
        ) from e
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; one clear line instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"config.dataset.name='{dataset_config.name}' split '{split}' could not be "
            f"opened ({type(e).__name__}: {first}); check the name, the split and "
            f"config.dataset.data_dir"
        ) from e


class Head:
    """The first `length` examples of a random-access source."""

    def __init__(self, source: Any, length: int):
        self.source, self._length = source, min(int(length), len(source))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self.source[index]


def tfds_dataset(dataset_config: Any, split: str) -> Any:
    """Split `split` of a `tfds:<name>` dataset, cut to `num_train_examples` (the training
    split) or `num_eval_examples` (any other) when set."""
    source = tfds_source(dataset_config, split)
    n = (dataset_config.num_train_examples if split == dataset_config.train_split
         else dataset_config.num_eval_examples)
    return source if n is None else Head(source, n)
