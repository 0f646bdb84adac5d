"""The front end both speech tasks share: audio batch -> normalised log-mel features -> model.

Batches carry `audio` float32 [B, N] (16 kHz, zero padded) and `audio_len` [B]; the task, not
the input pipeline, computes `log_mel` on the device (`dl_arch.models.layers.log_mel`), then the
per-utterance, per-mel-bin normalisation, then in training only SpecAugment's masks. Speech
models are called `model.apply(variables, features_BTF, frame_len_B, train=...)`.
`config.task` declares the feature fields once (`FEATURE_FIELDS`), so a keyword spotter and a
CTC transcriber read the same code and the same field names.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.audio import SAMPLE_RATE
from dl_arch.models.layers.log_mel import log_mel, normalize_utterance
from dl_arch.models.layers.spec_augment import spec_augment
from dl_arch.tasks.base import ALL, Batch, Task, Variables, build_model

FEATURE_FIELDS: Fields = {
    "n_mels": Field(40, "mel bins of the log-mel features", low=1),
    "n_fft": Field(400, "STFT window and FFT size in samples (400: 25 ms at 16 kHz)", low=2),
    "hop": Field(160, "STFT hop in samples (160: a frame every 10 ms)", low=1),
    "fmin": Field(20.0, "lowest mel filter edge, Hz", low=0.0),
    "fmax": Field(None, "highest mel filter edge, Hz (None: half the sample rate)", kind=float,
                  low=0.0, low_open=True),
    "normalize": Field(True, "per utterance and mel bin: zero mean, unit variance over its real "
                             "frames"),
    "freq_masks": Field(2, "SpecAugment (training only): frequency masks per utterance", low=0),
    "freq_width": Field(8, "SpecAugment: widest frequency mask, in mel bins", low=0),
    "time_masks": Field(2, "SpecAugment: time masks per utterance", low=0),
    "time_width": Field(10, "SpecAugment: widest time mask, in frames", low=0),
}


def check_feature_fields(t: Any) -> None:
    """One-line errors for feature settings that cannot work together."""
    nyquist = SAMPLE_RATE / 2
    if t.hop > t.n_fft:
        raise ConfigError(f"config.task.hop={t.hop} exceeds config.task.n_fft={t.n_fft}: frames "
                          f"would skip samples; give hop <= n_fft")
    top = nyquist if t.fmax is None else float(t.fmax)
    if top > nyquist or t.fmin >= top:
        raise ConfigError(f"config.task.fmin={t.fmin:g} and fmax={t.fmax} must satisfy fmin < "
                          f"fmax <= {nyquist:g} Hz (half the sample rate)")
    if t.n_mels > t.n_fft // 2 + 1:
        raise ConfigError(f"config.task.n_mels={t.n_mels} exceeds the {t.n_fft // 2 + 1} FFT bins "
                          f"of n_fft={t.n_fft}; lower n_mels or raise n_fft")
    if t.freq_width > t.n_mels:
        raise ConfigError(f"config.task.freq_width={t.freq_width} exceeds config.task.n_mels="
                          f"{t.n_mels}; give a mask at most as wide as the mel bins")


def speech_features(t: Any, audio_BN: jax.Array, audio_len_B: jax.Array,
                    rng: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(features [B, T, n_mels] float32, frame_len [B] int32) of an audio batch; `t` is
    `config.task`. With `rng` (training) SpecAugment masks real frames; without, clean."""
    features, frame_len = log_mel(audio_BN, audio_len_B, sample_rate=SAMPLE_RATE, n_fft=t.n_fft,
                                  hop=t.hop, n_mels=t.n_mels, fmin=t.fmin, fmax=t.fmax)
    if t.normalize:
        features = normalize_utterance(features, frame_len)
    if rng is not None and (t.freq_masks or t.time_masks):
        features = spec_augment(rng, features, frame_len, freq_masks=t.freq_masks,
                                freq_width=t.freq_width, time_masks=t.time_masks,
                                time_width=t.time_width)
    return features, frame_len


class SpeechTask(Task):
    """One speech model over the shared front end: init, train and eval forward passes.

    Subclasses add the loss and metrics. Batches are used as the source made them (the
    features are computed here, on the device), so `preprocess` passes examples through.
    """

    phases = (ALL,)
    fields = FEATURE_FIELDS
    dataset_fields: ClassVar[Fields] = {}  # `preprocess` reads no dataset field

    def __init__(self, config: Any):
        super().__init__(config)
        check_feature_fields(config.task)
        self.model = build_model(config.model, config)

    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        return example

    def features(self, batch: Batch, rng: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """`speech_features` of the batch's audio (SpecAugment when `rng` is given)."""
        return speech_features(self.config.task, batch["audio"], batch["audio_len"], rng)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        params_rng, dropout_rng = jax.random.split(rng)
        features, frame_len = self.features(batch)
        variables = self.model.init({"params": params_rng, "dropout": dropout_rng}, features,
                                    frame_len, train=False)
        return {k: v for k, v in variables.items() if k != "intermediates"}

    def apply_train(self, params: Any, mutable: Variables, batch: Batch, rng: jax.Array
                    ) -> tuple[Any, Variables]:
        """Training forward pass (SpecAugment, dropout, batch statistics): (outputs, mutable)."""
        augment_rng, dropout_rng = jax.random.split(rng)
        features, frame_len = self.features(batch, augment_rng)
        variables = {"params": params, **mutable}
        if mutable:
            return self.model.apply(variables, features, frame_len, train=True,
                                    rngs={"dropout": dropout_rng}, mutable=list(mutable))
        return self.model.apply(variables, features, frame_len, train=True,
                                rngs={"dropout": dropout_rng}), {}

    def apply_eval(self, variables: Variables, audio_BN: jax.Array, audio_len_B: jax.Array) -> Any:
        """Eval forward pass on clean features of raw audio."""
        features, frame_len = speech_features(self.config.task, audio_BN, audio_len_B)
        return self.model.apply(variables, features, frame_len, train=False)


def real_rows(batch: Batch) -> jax.Array:
    """float32 [B]: 1 for real examples, 0 for the eval split's padding rows."""
    if "_mask" in batch:
        return (batch["_mask"] > 0).astype(jnp.float32)
    return jnp.ones(batch["audio_len"].shape, jnp.float32)
