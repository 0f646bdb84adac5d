"""TFDS speech datasets mapped to the speech keys: `speech_commands` (keyword spotting) and
`librispeech` (character CTC transcription).

- `speech_commands`: Warden's one-second clips at 16 kHz. TFDS labels 12 classes in the order
  down, go, left, no, off, on, right, stop, up, yes, _silence_, _unknown_; here they become
  `SPEECH_COMMANDS_CLASSES` (yes, no, up, down, left, right, stop, go, on, off, silence,
  unknown), so classes 0..9 are the command words in the order of the offline
  `spoken_commands` with `words` set to its `COMMAND_WORDS`.
- `librispeech`: read audiobook utterances at 16 kHz with upper-case transcripts; they are
  lower-cased and encoded as `dl_arch.data.speech_text` character ids (LibriSpeech uses only
  letters, spaces and apostrophes; anything else is dropped or an error, `unknown_chars`).
  Trains on `train_clean100`, evaluates on `dev_clean` by default.

Both need TensorFlow once to download and prepare (`pip install 'dl_arch[tfds]'`); then
`tfds.data_source` reads them with random access. A clip longer than `max_seconds` is a
one-line error naming the field.
"""

from __future__ import annotations

import functools
from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.audio import audio_example, max_samples_of, to_float, to_mono
from dl_arch.data.speech_text import keep_known, label_example
from dl_arch.data.tfds_source import TFDS_FIELDS, tfds_source
from dl_arch.registry import register_dataset

# TFDS's `label` names of speech_commands, in its order
SPEECH_COMMANDS_TFDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
                        "_silence_", "_unknown_")
SPEECH_COMMANDS_CLASSES = ("yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off",
                           "silence", "unknown")
# TFDS label -> our class index
SPEECH_COMMANDS_TABLE = np.array([SPEECH_COMMANDS_CLASSES.index(n.strip("_"))
                                  for n in SPEECH_COMMANDS_TFDS], np.int32)
UNKNOWN_CHARS = ("drop", "error")


def _samples(audio: Any) -> np.ndarray:
    """A TFDS Audio value (int16 [N] or [N, 1]) -> float32 mono in [-1, 1]."""
    return to_float(to_mono(np.asarray(audio)))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def keyword_example(audio: Any, label: Any, max_samples: int, where: str) -> dict[str, Any]:
    """A speech_commands record -> `audio`, `audio_len` and `label` (our class index)."""
    label = int(label)
    if not 0 <= label < len(SPEECH_COMMANDS_TABLE):
        raise ValueError(f"speech_commands label {label} outside 0..{len(SPEECH_COMMANDS_TABLE) - 1}")
    example = audio_example(_samples(audio), max_samples, where)
    example["label"] = SPEECH_COMMANDS_TABLE[label]
    return example


def transcription_example(speech: Any, text: Any, max_samples: int, max_label_len: int,
                          unknown_chars: str, where: str) -> dict[str, Any]:
    """A librispeech record -> `audio`, `audio_len`, `labels` and `label_len`."""
    transcript = _text(text).lower()
    if unknown_chars == "drop":
        transcript = keep_known(transcript)
    example = audio_example(_samples(speech), max_samples, where)
    try:
        example.update(label_example(transcript, max_label_len, where))
    except ConfigError as e:
        if "outside the vocabulary" in str(e):
            raise ConfigError(f"{e}; or set config.dataset.unknown_chars='drop'") from None
        raise
    return example


def _keyword_record(record: Any, where: str, max_samples: int) -> dict[str, Any]:
    return keyword_example(record["audio"], record["label"], max_samples, where)


def _transcription_record(record: Any, where: str, max_samples: int, max_label_len: int,
                          unknown_chars: str) -> dict[str, Any]:
    return transcription_example(record["speech"], record["text"], max_samples, max_label_len,
                                 unknown_chars, where)


class SpeechTFDS:
    """Random-access view of a TFDS speech split through one of the mapping functions."""

    def __init__(self, source: Any, name: str, split: str, to_example: Any,
                 class_names: tuple[str, ...] | None = None):
        self._source, self.name, self.split = source, name, split
        self.to_example = to_example
        if class_names is not None:
            self.class_names, self.num_classes = class_names, len(class_names)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        where = f"config.dataset.name='{self.name}': example {index} of split '{self.split}'"
        return self.to_example(self._source[index], where)


def _open(dataset_config: Any, split: str) -> Any:
    return tfds_source(ml_collections.ConfigDict({
        "name": f"tfds:{dataset_config.tfds_name}", "data_dir": dataset_config.data_dir,
        "download": dataset_config.download}), split)


@register_dataset("speech_commands", fields={
    "tfds_name": Field("speech_commands", "TFDS name (and version) of Speech Commands"),
    **TFDS_FIELDS,
    "max_seconds": Field(1.0, "length of `audio` in seconds (padded; a longer clip is an error)",
                         low=0.0, low_open=True)})
def speech_commands(dataset_config: Any, split: str, seed: int) -> SpeechTFDS:
    """Speech Commands: 10 words, silence and unknown (module doc)."""
    to_example = functools.partial(_keyword_record,
                                   max_samples=max_samples_of(dataset_config.max_seconds))
    return SpeechTFDS(_open(dataset_config, split), "speech_commands", split, to_example,
                      SPEECH_COMMANDS_CLASSES)


@register_dataset("librispeech", fields={
    "tfds_name": Field("librispeech", "TFDS name (and version) of LibriSpeech"),
    **TFDS_FIELDS,
    "train_split": Field("train_clean100", "split to train on (train_clean100, train_clean360, "
                                           "train_other500)"),
    "eval_split": Field("dev_clean", "split to evaluate on (dev_clean, dev_other, test_clean, "
                                     "test_other)"),
    "max_seconds": Field(35.0, "length of `audio` in seconds (padded; a longer utterance is an "
                               "error)", low=0.0, low_open=True),
    "max_label_len": Field(600, "length of `labels` in characters (0-padded)", low=1),
    "unknown_chars": Field("drop", "transcript characters outside a-z, space and apostrophe: "
                                   "drop | error", choices=UNKNOWN_CHARS)})
def librispeech(dataset_config: Any, split: str, seed: int) -> SpeechTFDS:
    """LibriSpeech utterances with character transcripts (module doc)."""
    c = dataset_config
    to_example = functools.partial(_transcription_record, max_samples=max_samples_of(c.max_seconds),
                                   max_label_len=int(c.max_label_len),
                                   unknown_chars=c.unknown_chars)
    return SpeechTFDS(_open(c, split), "librispeech", split, to_example)
