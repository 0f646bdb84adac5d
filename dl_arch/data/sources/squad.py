"""Reading comprehension in the SQuAD format: windows of a passage, TFDS `squad`, your JSON.

Every question-answering source gives one example per question, already cut into the
windows BERT reads (Devlin et al. 2019, SQuAD set-up): `[CLS] question [SEP] passage piece
[SEP]`, pieces of `max_len - len(question) - 3` passage tokens starting every `doc_stride`
tokens, at most `max_windows` of them (a passage longer than that loses its tail). Example:

    inputs, token_types, context_index   (W, T) int32  ids; 0 question / 1 passage; the
                                                       passage token at each position (-1: none)
    starts, ends                         (W,) int32    the answer's positions in each window
                                                       (else those of another telling of it;
                                                       0, the [CLS], when none is all in it)
    window_mask                          (W,) float32  1 = a real window
    answer_tokens                        (2,) int32    first and last passage token of the
                                                       answer (-1, -1: none)
    context_offsets                      (C, 2) int32  characters [start, end) of each passage
                                                       token in the passage text (-1: padding)
    example_id                           () int32      the index, for `reference(index)`

A source also has `reference(index) -> (passage, question, gold answers)`, the strings that
exact match and F1 are scored on (`dl_arch.evaluators.qa_answers`; strings never reach the
device), and `featurize(passage, question)`, the windows of new text (`--sample`).

Sources here: `tfds_squad` (TFDS `squad`, v1.1: train / validation) and `squad_json` (your
file in the SQuAD JSON format: data -> paragraphs -> context, qas -> question, answers ->
text, answer_start). Text becomes ids through `tokenizer`: `bytes` (UTF-8 bytes from id 4,
[CLS] = 1, [SEP] = 2: vocabulary 260) or `hf:<folder>` (the fast tokenizer saved in a Hugging
Face model folder, e.g. the one `init_from=hf:<folder>` loads; its own [CLS] and [SEP]).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.tfds_source import TFDS_FIELDS
from dl_arch.data.tokenizers import BOS, EOS, SPECIALS
from dl_arch.data.user_files import USER_FILE_FIELDS, held_out, path_of
from dl_arch.registry import register_dataset

# How an example is cut into windows: declared by every question-answering source.
WINDOW_FIELDS: Fields = {
    "max_len": Field(384, "tokens per window: [CLS] question [SEP] passage piece [SEP]", low=8),
    "doc_stride": Field(128, "passage tokens between the starts of consecutive windows", low=1),
    "max_windows": Field(4, "windows kept per example (a longer passage loses its tail)",
                         low=1),
    "max_query_len": Field(64, "question tokens kept (the rest is cut)", low=1),
    "max_context_len": Field(1024, "passage tokens kept before windowing", low=1),
}


# ----- windows -----------------------------------------------------------------------------

def window_starts(num_tokens: int, room: int, stride: int) -> list[int]:
    """First passage token of each window: 0, stride, 2 * stride, ... until one reaches the
    end (a window holds `room` tokens; a passage that fits gives the one window [0])."""
    starts, start = [0], 0
    while start + room < num_tokens:
        start += min(stride, room)
        starts.append(start)
    return starts


def window_features(question: Sequence[int], context: Sequence[int], offsets: np.ndarray,
                    answer: tuple[int, int], cls_id: int, sep_id: int, cfg: Any,
                    example_id: int, retellings: Sequence[tuple[int, int]] = ()
                    ) -> dict[str, np.ndarray]:
    """The windows of one example (the arrays of the module docstring).

    `context` are the passage's token ids with `offsets` (N, 2) their character spans;
    `answer` the first and last passage token of the answer ((-1, -1): none); `cfg` holds
    the `WINDOW_FIELDS`. `retellings` are other spans stating the same answer (a fact the
    passage tells twice): a window without `answer` but with one of them targets it, not
    [CLS], so the same text is never taught as both an answer and none.
    """
    t, w = int(cfg.max_len), int(cfg.max_windows)
    question = list(question)[: int(cfg.max_query_len)]
    n = min(len(context), int(cfg.max_context_len))
    room = t - len(question) - 3
    if room < 1:
        raise ConfigError(f"config.dataset.max_len={t} leaves no room for the passage after a "
                          f"{len(question)}-token question; raise max_len or lower max_query_len")
    head = [cls_id, *question, sep_id]
    out = {"inputs": np.zeros((w, t), np.int32), "token_types": np.zeros((w, t), np.int32),
           "context_index": np.full((w, t), -1, np.int32), "starts": np.zeros(w, np.int32),
           "ends": np.zeros(w, np.int32), "window_mask": np.zeros(w, np.float32)}
    b = answer[1]
    for k, s in enumerate(window_starts(n, room, int(cfg.doc_stride))[:w]):
        piece = list(context[s: min(s + room, n)])
        ids = head + piece + [sep_id]
        out["inputs"][k, : len(ids)] = ids
        out["token_types"][k, len(head): len(ids)] = 1
        out["context_index"][k, len(head): len(head) + len(piece)] = np.arange(s, s + len(piece))
        out["window_mask"][k] = 1.0
        inside = [(a, z) for a, z in (answer, *retellings) if s <= a <= z < s + len(piece)]
        if inside:
            a, z = inside[0]
            out["starts"][k], out["ends"][k] = len(head) + a - s, len(head) + z - s
    kept = np.full((int(cfg.max_context_len), 2), -1, np.int32)
    kept[:n] = np.asarray(offsets, np.int32).reshape(-1, 2)[:n]
    out["answer_tokens"] = np.array(answer if b < n else (-1, -1), np.int32)
    out["context_offsets"] = kept
    out["example_id"] = np.int32(example_id)
    return out


def token_span(offsets: np.ndarray, char_start: int, char_end: int) -> tuple[int, int]:
    """First and last token overlapping characters [char_start, char_end); (-1, -1): none."""
    offsets = np.asarray(offsets).reshape(-1, 2)
    hit = np.flatnonzero((offsets[:, 1] > char_start) & (offsets[:, 0] < char_end)
                         & (offsets[:, 1] > offsets[:, 0]))
    return (int(hit[0]), int(hit[-1])) if len(hit) else (-1, -1)


# ----- tokenizers with character offsets ---------------------------------------------------

class WordOffsets:
    """Whitespace-separated words of a closed vocabulary (the procedural passages)."""

    def __init__(self, index: dict[str, int], cls_id: int = BOS, sep_id: int = EOS):
        self.index, self.cls_id, self.sep_id = index, cls_id, sep_id
        self.vocab_size = max(index.values()) + 1

    def encode(self, text: str) -> tuple[list[int], np.ndarray]:
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        unknown = [text[s:e] for s, e in spans if text[s:e] not in self.index]
        if unknown:
            raise ConfigError(f"word {unknown[0]!r} is not in the vocabulary of the procedural "
                              f"passages; use their words (see a generated passage)")
        return [self.index[text[s:e]] for s, e in spans], np.array(spans, np.int32).reshape(-1, 2)


class ByteOffsets:
    """UTF-8 bytes from id 4 (the project's specials: [CLS] = 1, [SEP] = 2); every byte of a
    character spans that character."""

    cls_id, sep_id, vocab_size = BOS, EOS, 256 + len(SPECIALS)

    def encode(self, text: str) -> tuple[list[int], np.ndarray]:
        ids, spans = [], []
        for i, ch in enumerate(text):
            for byte in ch.encode("utf-8"):
                ids.append(byte + len(SPECIALS))
                spans.append((i, i + 1))
        return ids, np.array(spans, np.int32).reshape(-1, 2)


class HfOffsets:
    """The tokenizer of a Hugging Face model folder (`dl_arch.interop.hf_tokenizer`; WordPiece
    for BERT), with its [CLS] and [SEP]."""

    def __init__(self, folder: str):
        from dl_arch.interop.hf_tokenizer import load_tokenizer

        self.tok = load_tokenizer(folder, "config.dataset.tokenizer")
        if self.tok.bos_id is None or self.tok.eos_id is None:
            raise ConfigError(f"config.dataset.tokenizer='hf:{folder}' has no [CLS] / [SEP] "
                              f"tokens; question answering needs a BERT-style tokenizer")
        self.cls_id, self.sep_id = int(self.tok.bos_id), int(self.tok.eos_id)
        self.vocab_size = self.tok.vocab_size

    def encode(self, text: str) -> tuple[list[int], np.ndarray]:
        enc = self.tok.backend.encode(text, add_special_tokens=False)
        return list(enc.ids), np.array(enc.offsets, np.int32).reshape(-1, 2)


@functools.lru_cache(maxsize=4)
def text_tokenizer(spec: str) -> ByteOffsets | HfOffsets:
    """`bytes` or `hf:<folder>` (config.dataset.tokenizer)."""
    if spec == "bytes":
        return ByteOffsets()
    if spec.startswith("hf:"):
        return HfOffsets(spec[3:])
    raise ConfigError(f"config.dataset.tokenizer={spec!r}: use 'bytes' or hf:<folder> (a Hugging "
                      f"Face model folder with its tokenizer files)")


# ----- sources of (passage, question, answers) ---------------------------------------------

class QASource:
    """Windowed examples from `records`: (passage, question, answer texts, answer starts)."""

    def __init__(self, records: Any, cfg: Any, strict: bool, where: str):
        self.records, self.cfg, self.strict, self.where = records, cfg, strict, where
        self.tok = text_tokenizer(cfg.tokenizer)

    def __len__(self) -> int:
        return len(self.records)

    def record(self, index: int) -> tuple[str, str, list[str], list[int]]:
        return self.records[index]

    def reference(self, index: int) -> tuple[str, str, list[str]]:
        """(passage, question, gold answers) of example `index`."""
        context, question, answers, _ = self.record(index)
        return context, question, answers

    def featurize(self, context: str, question: str) -> dict[str, np.ndarray]:
        """The windows of a new (passage, question) pair, no answer marked (--sample)."""
        ids, offsets = self.tok.encode(context)
        return window_features(self.tok.encode(question)[0], ids, offsets, (-1, -1),
                               self.tok.cls_id, self.tok.sep_id, self.cfg, 0)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        context, question, answers, starts = self.record(index)
        ids, offsets = self.tok.encode(context)
        span = (-1, -1)
        if answers:
            start = _answer_start(context, answers[0], starts[0], self.strict,
                                  f"{self.where} example {index}")
            if start >= 0:
                span = token_span(offsets, start, start + len(answers[0]))
        return window_features(self.tok.encode(question)[0], ids, offsets, span,
                               self.tok.cls_id, self.tok.sep_id, self.cfg, index)


def _answer_start(context: str, text: str, start: int, strict: bool, where: str) -> int:
    """Where `text` starts in `context`: at `start` as given; else (not strict) its first
    occurrence, or -1; strict: a one-line error."""
    if context[start: start + len(text)] == text:
        return start
    if strict:
        raise ConfigError(f"{where}: answer {text[:40]!r} is not at answer_start={start} of its "
                          f"context (found there: {context[start: start + len(text)][:40]!r}); "
                          f"fix answer_start")
    return context.find(text)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class TfdsRecords:
    """TFDS `squad` examples as (context, question, answer texts, answer starts)."""

    def __init__(self, source: Any, limit: int | None):
        self.source = source
        self.n = len(source) if limit is None else min(int(limit), len(source))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[str, str, list[str], list[int]]:
        ex = self.source[index]
        answers = ex["answers"]
        texts = [_text(t) for t in np.asarray(answers["text"]).reshape(-1)]
        starts = [int(s) for s in np.asarray(answers["answer_start"]).reshape(-1)]
        return _text(ex["context"]), _text(ex["question"]), texts, starts[: len(texts)]


QA_TEXT_FIELDS: Fields = {
    "tokenizer": Field("bytes", "text -> ids: 'bytes' or hf:<folder> (a Hugging Face model "
                                "folder's fast tokenizer)"),
    **WINDOW_FIELDS,
}


@register_dataset("tfds_squad", fields={
    "tfds_name": Field("squad", "TFDS reading-comprehension dataset in the SQuAD layout"),
    **TFDS_FIELDS,
    "num_train_examples": Field(None, "train on only the first N questions (None: all)",
                                kind=int, low=1),
    "num_eval_examples": Field(None, "evaluate on only the first N questions (None: all)",
                               kind=int, low=1),
    **QA_TEXT_FIELDS})
def tfds_squad(cfg: Any, split: str, seed: int) -> QASource:
    """TFDS `squad` (train / validation; several gold answers per validation question)."""
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source(cfg.tfds_name, split=split, data_dir=cfg.data_dir or None,
                                  download=cfg.download)
    except ModuleNotFoundError as e:
        raise ConfigError(f"config.dataset.tfds_name='{cfg.tfds_name}' is not prepared; "
                          f"preparing it needs TensorFlow (missing {e.name}): pip install "
                          f"'dl_arch[tfds]' once, with network") from e
    limit = cfg.num_train_examples if split == cfg.train_split else cfg.num_eval_examples
    return QASource(TfdsRecords(source, limit), cfg, strict=False,
                    where=f"tfds {cfg.tfds_name} {split}")


def read_squad_json(path: str) -> list[list[tuple[str, str, list[str], list[int]]]]:
    """Paragraphs of a SQuAD-format file, each a list of (context, question, answer texts,
    answer starts); a missing field or a misplaced answer is one line naming where."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as e:
        raise ConfigError(f"config.dataset.path={path!r} is not valid JSON ({e})") from None

    def need(obj: Any, key: str, where: str, kind: type) -> Any:
        if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
            raise ConfigError(f"{path}: {where} has no {kind.__name__} field '{key}' (the SQuAD "
                              f"layout: data -> paragraphs -> context, qas -> question, answers "
                              f"-> text, answer_start)")
        return obj[key]

    paragraphs = []
    for i, article in enumerate(need(data, "data", "the file", list)):
        for j, par in enumerate(need(article, "paragraphs", f"data[{i}]", list)):
            where = f"data[{i}].paragraphs[{j}]"
            context = need(par, "context", where, str)
            rows = []
            for k, qa in enumerate(need(par, "qas", where, list)):
                at = f"{where}.qas[{k}]"
                question = need(qa, "question", at, str)
                texts, starts = [], []
                for m, ans in enumerate(need(qa, "answers", at, list)):
                    text = need(ans, "text", f"{at}.answers[{m}]", str)
                    start = need(ans, "answer_start", f"{at}.answers[{m}]", int)
                    _answer_start(context, text, start, True, f"{path}: {at}.answers[{m}]")
                    texts.append(text)
                    starts.append(start)
                if not texts:
                    raise ConfigError(f"{path}: {at} has no answer; extractive QA needs at least "
                                      f"one (text, answer_start) per question")
                rows.append((context, question, texts, starts))
            paragraphs.append(rows)
    if not any(paragraphs):
        raise ConfigError(f"config.dataset.path={path!r} holds no question")
    return paragraphs


@register_dataset("squad_json", fields={**USER_FILE_FIELDS, **QA_TEXT_FIELDS})
def squad_json(cfg: Any, split: str, seed: int) -> QASource:
    """Your questions in a SQuAD-format JSON file; without `eval_path`, `eval_fraction` of
    the paragraphs (with all their questions) is held out."""
    path = path_of(cfg, split)
    paragraphs = read_squad_json(path)
    if not cfg.eval_path:
        paragraphs = [paragraphs[i] for i in held_out(len(paragraphs), cfg, split)]
    records = [row for par in paragraphs for row in par]
    return QASource(records, cfg, strict=True, where=path)
