"""`audio_folder`: a user's folder of audio files with a CSV of transcripts or keyword labels.

    my_audio/
      metadata.csv      file,text               (transcription: CTC)
                        a.wav,three one four
                        clips/b.flac,yes please
      a.wav  clips/b.flac ...

The CSV (`csv`, by default `metadata.csv` in the folder, as Hugging Face's `audiofolder`
names it) has a column `file` (or `file_name`) with paths relative to the folder, and a
column `text` (transcripts: `labels`/`label_len`, character ids of
`dl_arch.data.speech_text`) or `label` (keyword classes: `label`, the position of the class
in `class_names`, by default the sorted labels of `path`'s CSV, numerically when they are all
integers). Files are read with `soundfile` (WAV, FLAC, OGG), mixed down to mono and, at
another rate than 16 kHz, resampled (or an error with `resample=False`).

Every check but decoding runs at start-up, from the CSV and each file's header, and fails in
one line naming the field and the line: a missing folder or CSV, a file that does not exist
or cannot be read, a wrong sample rate, audio longer than `max_seconds`, an empty transcript,
a character outside the vocabulary (or dropped, `unknown_chars='drop'`), a transcript longer
than `max_label_len`, more classes than `num_classes`.
"""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.audio import SAMPLE_RATE, audio_example, max_samples_of, read_audio
from dl_arch.data.speech_text import keep_known, label_example
from dl_arch.data.user_files import USER_FILE_FIELDS, check_class_count, path_of, require, user_split
from dl_arch.registry import register_dataset

FILE_COLUMNS = ("file", "file_name")  # the audio file's column (file_name: HF audiofolder)
TARGET_COLUMNS = ("text", "label")
UNKNOWN_CHARS = ("error", "drop")


def read_rows(folder: str, field: str, csv_name: str, column: str) -> tuple[str, list[tuple[int, str, str]]]:
    """(target column, [(CSV line, file path, target)]) of the CSV of `folder`."""
    where = f"config.dataset.{field}={folder!r}"
    if not os.path.isdir(folder):
        raise ConfigError(f"{where} is not a folder; give the folder of your audio files and "
                          f"their CSV")
    table = csv_name if os.path.isabs(csv_name) else os.path.join(folder, csv_name)
    if not os.path.isfile(table):
        raise ConfigError(f"config.dataset.csv={csv_name!r}: no such file in {folder!r}; write a "
                          f"CSV with the columns file,text (transcripts) or file,label (keywords)")
    with open(table, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    file_col = next((c for c in FILE_COLUMNS if c in header), None)
    targets = [c for c in TARGET_COLUMNS if c in header]
    if column:
        targets = [column] if column in header else []
    if file_col is None or len(targets) != 1:
        want = f"'{column}'" if column else "'text' (transcripts) or 'label' (keywords)"
        raise ConfigError(f"config.dataset.csv={table!r} has the columns {', '.join(header)}; it "
                          f"needs 'file' and {want}"
                          + ("; choose one with config.dataset.column" if len(targets) > 1 else ""))
    target = targets[0]
    out = []
    for line, row in enumerate(rows, start=2):
        name = (row[file_col] or "").strip()
        path = name if os.path.isabs(name) else os.path.join(folder, name)
        if not name or not os.path.isfile(path):
            raise ConfigError(f"config.dataset.csv={table!r} line {line}: no audio file {name!r} in "
                              f"{folder!r}; fix the path (relative to the folder) or drop the line")
        out.append((line, path, (row[target] or "").strip()))
    if not out:
        raise ConfigError(f"config.dataset.csv={table!r} lists no files; give one line per file")
    return target, out


def label_names(labels: list[str]) -> tuple[str, ...]:
    """The classes of `labels`, sorted (numerically when every label is an integer)."""
    unique = set(labels)
    if all(x.lstrip("-").isdigit() for x in unique):
        return tuple(sorted(unique, key=int))
    return tuple(sorted(unique))


def _header(path: str, where: str) -> tuple[int, int]:
    """(sample rate, frames) of an audio file, from its header."""
    import soundfile

    try:
        info = soundfile.info(path)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types; one line instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}: cannot read {path!r} as audio ({first}); give WAV or FLAC "
                          f"files") from None
    return int(info.samplerate), int(info.frames)


class AudioFolder:
    """Every file of the CSV of one folder with its transcript or class; decoded on each read."""

    def __init__(self, folder: str, field: str, c: Any):
        target, rows = read_rows(folder, field, c.csv, c.column)
        self.transcribe = target == "text"
        self.resample, self.max_samples = bool(c.resample), max_samples_of(c.max_seconds)
        self.max_label_len = int(c.max_label_len)
        self.files = [path for _, path, _ in rows]
        self.wheres = [f"config.dataset.{field}={folder!r}: {c.csv} line {line}" for line, _, _ in rows]
        for (_, path, _), where in zip(rows, self.wheres):
            rate, frames = _header(path, where)
            if rate != SAMPLE_RATE and not self.resample:
                raise ConfigError(f"{where}: {path!r} is sampled at {rate} Hz, not {SAMPLE_RATE}; "
                                  f"set config.dataset.resample=True to resample it, or convert "
                                  f"the file")
            if frames / rate > float(c.max_seconds) + 0.5 / SAMPLE_RATE:
                raise ConfigError(f"{where}: {path!r} lasts {frames / rate:.2f} s, longer than "
                                  f"config.dataset.max_seconds={c.max_seconds:g}; raise max_seconds "
                                  f"or cut the file")
        if self.transcribe:
            texts = [text if c.unknown_chars == "error" else keep_known(text)
                     for _, _, text in rows]
            self.targets = [label_example(t, self.max_label_len, w) for t, w in zip(texts, self.wheres)]
        else:
            labels = [label for _, _, label in rows]
            for label, where in zip(labels, self.wheres):
                if not label:
                    raise ConfigError(f"{where}: the label is empty; give every file its class")
            names = tuple(c.class_names) if c.class_names is not None else label_names(
                [label for _, _, label in read_rows(c.path, "path", c.csv, c.column)[1]])
            outside = [(w, x) for w, x in zip(self.wheres, labels) if x not in names]
            if outside:
                raise ConfigError(f"{outside[0][0]}: the label {outside[0][1]!r} is not among the "
                                  f"classes ({', '.join(names[:8])}) of config.dataset.class_names "
                                  f"or the train CSV; fix it or add the class")
            check_class_count(c, list(names))
            self.class_names, self.num_classes = names, len(names)
            self.targets = [{"label": np.int32(names.index(x))} for x in labels]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        where = self.wheres[index]
        audio = read_audio(self.files[index], where, self.resample)
        example = audio_example(audio, self.max_samples, f"{where}: {self.files[index]!r}")
        example.update({k: v.copy() if isinstance(v, np.ndarray) else v
                        for k, v in self.targets[index].items()})
        return example


@register_dataset("audio_folder", fields={
    **USER_FILE_FIELDS,
    "csv": Field("metadata.csv", "the CSV of each folder (path and eval_path): columns file "
                                 "(or file_name) and text or label; a name in the folder or a "
                                 "full path"),
    "column": Field("", "the CSV's target column ('': whichever of text and label it has)"),
    "resample": Field(True, "resample files not at 16 kHz (False: such a file is an error)"),
    "max_seconds": Field(10.0, "length of `audio` in seconds (padded; a longer file is an error)",
                         low=0.0, low_open=True),
    "max_label_len": Field(200, "length of `labels` in characters (0-padded; transcripts)", low=1),
    "unknown_chars": Field("error", "characters outside a-z, space and apostrophe in a "
                                    "transcript: error | drop", choices=UNKNOWN_CHARS),
    "num_classes": Field(0, "classes the model was built for: more labels is an error (0: no "
                            "check)", low=0),
})
def audio_folder(dataset_config: Any, split: str, seed: int) -> Any:
    """A folder of audio files with a CSV of transcripts or labels (module doc), split into
    train and eval."""
    c = dataset_config
    require(c.path, "path", "folder")
    field = "eval_path" if c.eval_path and split != c.train_split else "path"
    return user_split(AudioFolder(path_of(c, split), field, c), c, split)
