"""Fréchet distance of generated images, in the feature space of our own classifier.

Any task with `generate_images(variables, count, seed)` (the GAN, a VAE) can list it in
`config.evaluators`. Instead of a downloaded Inception network, the features are the
penultimate layer of a small CNN (`frechet_classifier`) that the Trainer fits on the
labelled images of the same dataset (a few hundred steps on a CPU); it is saved as
`<workdir>/frechet_classifier.npz` and reused by later evaluations (and resumed runs); a
path in `config.frechet.classifier_path` loads one trained by another run. The distance
between the eval images and as many unseen training images is reported beside it as the
floor a perfect generator would reach. The classifier and the real images follow
`config.frechet.seed`, not `config.seed`, so runs of different training seeds are measured
with the same stick.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.evaluators.examples import load_examples
from dl_arch.evaluators.frechet_classifier import (
    CLASSIFIER_KEY,
    Features,
    classifier_model,
    flat_params,
    load_params,
    train_classifier,
)
from dl_arch.evaluators.frechet_distance import feature_statistics, frechet_distance
from dl_arch.registry import register_evaluator

FRECHET_FIELDS: Fields = {
    "num_classes": Field(0, "classes of the dataset's labels: the feature classifier's head "
                            "(>= 2)", low=0),
    "num_samples": Field(2000, "real and generated images compared", low=2),
    "classifier_steps": Field(600, "Adam steps of the feature classifier", low=0),
    "classifier_batch_size": Field(128, "batch size of the feature classifier", low=1),
    "classifier_train_examples": Field(10000, "labelled training images of the classifier "
                                              "(the floor's images come after them)", low=1),
    "learning_rate": Field(3e-3, "Adam step size of the feature classifier", low=0.0,
                           low_open=True),
    "classifier_path": Field("", "a frechet_classifier.npz saved by an earlier run to measure "
                                 "with ('': <workdir>/frechet_classifier.npz, trained when "
                                 "absent)"),
    "seed": Field(0, "seed of the classifier and the real images, apart from config.seed so "
                     "runs of different training seeds share one measuring stick"),
    "noise_seed": Field(0, "seed of the generated images' noise (fixed: evaluations compare)"),
}
SMOKE_FRECHET = {"num_samples": 64, "classifier_steps": 30, "classifier_batch_size": 64,
                 "classifier_train_examples": 256}  # seconds on a CPU


def frechet_section(num_classes: int, smoke: bool = False) -> ml_collections.ConfigDict:
    """A whole `config.frechet` section for a config file (smoke: seconds on a CPU)."""
    values = {k: f.default for k, f in FRECHET_FIELDS.items()}
    values.update(num_classes=num_classes, **(SMOKE_FRECHET if smoke else {}))
    return ml_collections.ConfigDict(values)


@register_evaluator("frechet", fields=FRECHET_FIELDS)
class Frechet(Evaluator):
    """frechet_distance, frechet_real_floor (eval vs unseen training images) and
    frechet_classifier_accuracy (on the eval images: the features mean something)."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("generate_images")
        if not getattr(task, "generates_images", True):
            raise ConfigError(f"config.evaluators lists 'frechet', but this "
                              f"{config.task.name} model draws no images (an autoencoder "
                              f"without a prior); use a *_vae model or drop 'frechet'")
        s = self.settings
        if s.num_classes < 2:
            raise ConfigError(f"config.frechet.num_classes={s.num_classes}: the feature "
                              f"classifier needs >= 2 classes; set it to the dataset's classes, "
                              f"or drop 'frechet' from config.evaluators for unlabelled data")
        if s.classifier_path and not os.path.exists(s.classifier_path):
            raise ConfigError(f"config.frechet.classifier_path={s.classifier_path} does not "
                              f"exist; point it at a run's frechet_classifier.npz, or leave it "
                              f"'' to train one into the workdir")
        self.features: Features | None = None

    def classifier(self, workdir: str, image_shape: Sequence[int]) -> tuple[Features, bool]:
        """The classifier's features (kept after the first call) and whether it was trained
        now (so the report saves it)."""
        if self.features is not None:
            return self.features, False
        saved = os.path.join(workdir, f"{CLASSIFIER_KEY}.npz") if workdir else ""
        path = self.settings.classifier_path or (saved if saved and os.path.exists(saved)
                                                 else "")
        trained = not path
        if path:
            model = classifier_model(self.config)
            params = load_params(model, path, image_shape)
        else:
            model, params = train_classifier(self.config)
        self.features = Features(model, params)
        return self.features, trained

    def __call__(self, ctx: EvalContext) -> Report:
        s, ds = self.settings, self.config.dataset
        real, labels = load_examples(ds, ds.eval_split, s.seed, s.num_samples)
        # the floor: as many training images, after those the classifier learned from
        unseen, _ = load_examples(ds, ds.train_split, s.seed, len(real),
                                  start=s.classifier_train_examples)
        fake = np.clip(np.asarray(self.task.generate_images(ctx.variables, len(real),
                                                            s.noise_seed), np.float32), 0.0, 1.0)
        features, trained = self.classifier(ctx.workdir, real.shape[1:])
        logits, real_features = features(real)
        real_stats = feature_statistics(real_features)
        report = Report(scalars={
            "frechet_distance": frechet_distance(*real_stats,
                                                 *feature_statistics(features(fake)[1])),
            "frechet_real_floor": frechet_distance(*real_stats,
                                                   *feature_statistics(features(unseen)[1])),
            "frechet_classifier_accuracy": float(np.mean(logits.argmax(-1) == labels)),
        })
        if trained:
            report.arrays[CLASSIFIER_KEY] = flat_params(features.params)
        return report
