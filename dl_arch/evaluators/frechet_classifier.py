"""The feature classifier of the `frechet` evaluator: trained by the Trainer, saved, loaded.

It is an ordinary `classification` run of the `frechet_classifier` model on the run's own
dataset: the first `frechet.classifier_train_examples` training images as they are (no
augmentation or normalisation, as generated images come), Adam at `frechet.learning_rate`,
`frechet.classifier_steps` steps, all seeded by `frechet.seed` so that runs of different
training seeds are measured with the same stick. Its parameters travel as flat arrays
(`<workdir>/frechet_classifier.npz`, written by the loop from the evaluator's report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from dl_arch.config.errors import ConfigError
from dl_arch.train.compile_options import model_jit

CLASSIFIER_KEY = "frechet_classifier"  # the report's array key: <workdir>/frechet_classifier.npz
_AS_GENERATED = {"augment": (), "normalize_mean": (), "normalize_std": (), "resize_to": 0}


def classifier_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The resolved classification config that trains the classifier (see the module doc)."""
    from dl_arch.config.resolve import resolve_config
    from dl_arch.data.pipeline import dataset_fields, resolve_dataset
    from dl_arch.registry import TASKS

    fc, ds = config.frechet, resolve_dataset(config.dataset)
    fields = dataset_fields(ds.name, dict(TASKS.get("classification").dataset_fields))
    dataset = {k: v for k, v in ds.to_dict().items() if k == "name" or k in fields}
    dataset.update({k: v for k, v in _AS_GENERATED.items() if k in fields})
    if "num_train_examples" in fields:  # the floor's real images come after these
        n, cap = dataset["num_train_examples"], fc.classifier_train_examples
        dataset["num_train_examples"] = cap if n is None else min(n, cap)
    return resolve_config({
        "seed": fc.seed, "batch_size": fc.classifier_batch_size,
        "num_train_steps": fc.classifier_steps, "dtype": "float32", "param_dtype": "float32",
        "evaluators": (), "progress": "none",
        "task": {"name": "classification"},
        "model": {"name": "frechet_classifier", "num_classes": fc.num_classes},
        "dataset": dataset,
        "optimizer": {"name": "adam", "learning_rate": fc.learning_rate, "schedule": "constant"},
    }, source="the frechet evaluator")


def train_classifier(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
    """(model, host params) of the classifier after `classifier_steps` Trainer steps."""
    from dl_arch.train import mesh as mesh_lib
    from dl_arch.train.trainer import Trainer

    trainer = Trainer(classifier_config(config))
    state = trainer.init_state(trainer.first_batch())
    step = trainer.train_step()
    batches = iter(trainer.train_dataset())
    for _ in range(trainer.config.num_train_steps):
        state, _ = step(state, mesh_lib.to_global(next(batches), trainer.mesh))
    return trainer.task.model, jax.device_get(state.params)


def classifier_model(config: ml_collections.ConfigDict) -> Any:
    """The classifier's linen module for the run's `config.frechet`."""
    from dl_arch.tasks.base import build_model

    c = classifier_config(config)
    return build_model(c.model, c)


def flat_params(params: Any) -> dict[str, np.ndarray]:
    """{'conv_0/kernel': array, ...}: the parameter tree as the arrays of one .npz file."""
    return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()}


def load_params(model: Any, path: str, image_shape: Sequence[int]) -> Any:
    """The parameter tree saved by `flat_params` in `path`, checked against the model."""
    template = traverse_util.flatten_dict(jax.eval_shape(
        model.init, jax.random.key(0), jnp.zeros((1, *image_shape), jnp.float32))["params"])
    with np.load(path) as f:
        flat = {tuple(k.split("/")): np.asarray(f[k]) for k in f.files}
    if set(flat) != set(template) or any(flat[k].shape != template[k].shape for k in flat):
        raise ConfigError(
            f"config.frechet.classifier_path={path} does not hold a frechet_classifier for "
            f"{model.num_classes} classes and images of shape {tuple(image_shape)}; point it at "
            f"the frechet_classifier.npz of a run on this dataset, or leave it '' to train one")
    return traverse_util.unflatten_dict(flat)


class Features:
    """Class logits and penultimate features of images, from a trained classifier."""

    def __init__(self, model: Any, params: Any):
        self.params = params
        self._apply = model_jit(lambda p, x: model.apply({"params": p}, x, with_features=True))

    def __call__(self, images_NHWC: np.ndarray, batch_size: int = 256
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, K), features (N, width)) of images in [0, 1], in batches."""
        outs = [self._apply(self.params, jnp.asarray(images_NHWC[i:i + batch_size]))
                for i in range(0, len(images_NHWC), batch_size)]
        return (np.concatenate([np.asarray(o[0]) for o in outs]),
                np.concatenate([np.asarray(o[1]) for o in outs]))
