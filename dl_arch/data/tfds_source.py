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


def is_tfds(name: str) -> bool:
    return name.startswith(PREFIX)


def tfds_source(dataset_config: Any, split: str) -> Any:
    """Opens split `split` of `config.dataset.name = 'tfds:<name>'` for random access."""
    import tensorflow_datasets as tfds

    name = dataset_config.name[len(PREFIX):]
    data_dir = dataset_config.data_dir or None
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir,
                                download=dataset_config.download)
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
