"""Speech recognition with CTC: character transcripts of audio (DeepSpeech2, Transformer CTC).

Batch: `audio` [B, N] with `audio_len`, `labels` [B, L] character ids of
`dl_arch.data.speech_text` (0 = blank and padding) with `label_len`. The shared front end
(`speech_features`) turns audio into log-mel features; the model returns per-frame logits
[B, T', 29] and their real lengths.

Loss: the CTC negative log-likelihood of each transcript (`dl_arch.tasks.ctc.ctc_loss`),
averaged over the batch. Eval, summed on the device over the split: `loss` (per utterance),
`cer` and `wer` of greedy decoding, corpus-level as `dl_arch.tasks.error_rates` and jiwer
compute them (total edits / total reference characters or words; outer spaces do not count,
words are split on spaces). Words are compared on the device by a base-29 number of their
characters, exact for words of up to six characters and a 32-bit hash beyond (two different
long words share one with probability about 2^-32). Training logs the greedy `cer` of each
batch (with SpecAugment and dropout on). The `transcripts` evaluator adds prefix beam search;
`launch.py --sample` transcribes your audio files or a few eval examples.
"""

from __future__ import annotations

import functools
import glob
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, read_audio
from dl_arch.data.speech_text import CHAR_VOCAB_SIZE, decode_ids
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables
from dl_arch.tasks.ctc import ctc_loss, greedy_decode, greedy_ids, prefix_beam_search
from dl_arch.tasks.error_rates import batched_edit_distance
from dl_arch.tasks.speech_features import SpeechTask, real_rows
from dl_arch.train.compile_options import model_jit

SPACE = 1  # the space's character id
_WORD_BASE = 29  # > the largest character id, so short words map to distinct numbers

SAMPLE_FIELDS = {
    "audio": Field("", "audio files to transcribe: a folder, a glob such as 'clips/*.wav', or "
                       "paths separated by commas ('': the first num_examples eval examples)"),
    "num_examples": Field(4, "eval examples transcribed when `audio` is ''", low=1),
    "beam": Field(8, "prefix beam search width (0: greedy decoding)", low=0),
    "output": Field("", "folder for the transcripts ('': <name>.transcript.txt beside each "
                        "file; a relative path lies under the workdir)"),
}


def strip_spaces(ids_BT: jax.Array, len_B: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows without their leading and trailing spaces (0-padded), and the new lengths."""
    steps = ids_BT.shape[1]
    pos_BT = jnp.arange(steps)[None, :]
    text_BT = (pos_BT < len_B[:, None]) & (ids_BT != SPACE)
    first_B = jnp.argmax(text_BT, axis=1)
    last_B = steps - 1 - jnp.argmax(text_BT[:, ::-1], axis=1)
    new_len_B = jnp.where(text_BT.any(axis=1), last_B - first_B + 1, 0).astype(jnp.int32)
    moved_BT = jnp.take_along_axis(ids_BT, jnp.minimum(pos_BT + first_B[:, None], steps - 1), axis=1)
    return jnp.where(pos_BT < new_len_B[:, None], moved_BT, 0), new_len_B


def word_numbers(ids_BT: jax.Array, len_B: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(words [B, T] int32, word counts [B]): each space-separated word of a row as
    sum_k c_k 29^k over its characters c_k (wrapping in int32), empty words dropped."""
    batch, steps = ids_BT.shape
    pos_BT = jnp.arange(steps)[None, :]
    char_BT = (pos_BT < len_B[:, None]) & (ids_BT != SPACE) & (ids_BT != 0)
    start_BT = char_BT & ~jnp.pad(char_BT[:, :-1], ((0, 0), (1, 0)))
    word_BT = jnp.cumsum(start_BT, axis=1) - 1
    offset_BT = pos_BT - jax.lax.cummax(jnp.where(start_BT, pos_BT, 0), axis=1)
    powers = np.array([pow(_WORD_BASE, k, 2**32) for k in range(steps)], np.uint32).view(np.int32)
    value_BT = jnp.where(char_BT, ids_BT.astype(jnp.int32) * jnp.asarray(powers)[offset_BT], 0)
    slot_BT = jnp.where(char_BT, word_BT, steps)  # non-characters land in a spare column
    words = jnp.zeros((batch, steps + 1), jnp.int32)
    words = jax.vmap(lambda row, s, v: row.at[s].add(v))(words, slot_BT, value_BT)
    return words[:, :steps], start_BT.sum(axis=1).astype(jnp.int32)


def error_sums(hyp_BT: jax.Array, hyp_len_B: jax.Array, ref_BL: jax.Array, ref_len_B: jax.Array
               ) -> dict[str, jax.Array]:
    """Per example [B]: character edits and reference characters (outer spaces stripped), word
    edits and reference words, of hypotheses against references (id rows with lengths)."""
    hyp_BT, hyp_len_B = strip_spaces(hyp_BT, hyp_len_B)
    ref_BL, ref_len_B = strip_spaces(ref_BL, ref_len_B)
    hyp_words, hyp_count = word_numbers(hyp_BT, hyp_len_B)
    ref_words, ref_count = word_numbers(ref_BL, ref_len_B)
    return {"char_edits": batched_edit_distance(hyp_BT, hyp_len_B, ref_BL, ref_len_B),
            "chars": ref_len_B,
            "word_edits": batched_edit_distance(hyp_words, hyp_count, ref_words, ref_count),
            "words": ref_count}


def decode_batch(log_probs_BTV: np.ndarray, out_len_B: np.ndarray, beam: int) -> list[str]:
    """Transcripts of a batch of per-frame log-probabilities (host): greedy with `beam` 0,
    else CTC prefix beam search of that width over each utterance's real frames."""
    if beam <= 0:
        return [decode_ids(ids) for ids in greedy_decode(log_probs_BTV, out_len_B)]
    return [decode_ids(prefix_beam_search(lp[:n], beam))
            for lp, n in zip(np.asarray(log_probs_BTV), np.asarray(out_len_B), strict=True)]


@register_task("speech_recognition")
class SpeechRecognitionTask(SpeechTask):
    """CTC loss on log-mel features; greedy CER and WER on the device (module doc)."""

    required_keys = ("audio", "audio_len", "labels", "label_len")
    evaluators = ("transcripts",)
    sections = {"sample": SAMPLE_FIELDS}

    def __init__(self, config: Any):
        super().__init__(config)
        vocab = config.model.vocab_size if "vocab_size" in config.model else CHAR_VOCAB_SIZE
        if vocab != CHAR_VOCAB_SIZE:
            raise ConfigError(f"config.model.vocab_size={vocab}, but transcripts use "
                              f"{CHAR_VOCAB_SIZE} character ids (blank, space, a-z, apostrophe); "
                              f"set config.model.vocab_size={CHAR_VOCAB_SIZE}")

    @functools.cached_property
    def log_probs_jit(self) -> Any:
        """`log_probs` compiled once, shared by the evaluators and `sample`."""
        return model_jit(self.log_probs)

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Also: labels that are not character ids, or longer than their array, are one line."""
        super().check_batch(batch)
        labels, label_len = np.asarray(batch["labels"]), np.asarray(batch["label_len"])
        if labels.size and (labels.min() < 0 or labels.max() >= CHAR_VOCAB_SIZE):
            raise ConfigError(f"config.dataset.name='{self.config.dataset.name}' gives label id "
                              f"{int(labels.max())}; transcripts need character ids 0.."
                              f"{CHAR_VOCAB_SIZE - 1} (dl_arch.data.speech_text)")
        if label_len.size and label_len.max() > labels.shape[1]:
            raise ConfigError(f"config.dataset.name='{self.config.dataset.name}' gives label_len "
                              f"{int(label_len.max())} for labels of width {labels.shape[1]}; "
                              f"raise config.dataset.max_label_len")

    # ----- pure functions
    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        (logits, out_len), new_mutable = self.apply_train(params, mutable, batch, rng)
        per_example = ctc_loss(logits, out_len, batch["labels"], batch["label_len"])
        hyp, hyp_len = greedy_ids(logits, out_len)
        sums = error_sums(hyp, hyp_len, batch["labels"], batch["label_len"])
        cer = sums["char_edits"].sum() / jnp.maximum(sums["chars"].sum(), 1)
        return per_example.mean(), ({"cer": cer.astype(jnp.float32)}, new_mutable)

    def log_probs(self, variables: Variables, audio_BN: jax.Array, audio_len_B: jax.Array
                  ) -> tuple[jax.Array, jax.Array]:
        """(log-probabilities [B, T', vocab] float32, out_len [B]) of clean audio."""
        logits, out_len = self.apply_eval(variables, audio_BN, audio_len_B)
        return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), out_len

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits, out_len = self.apply_eval(variables, batch["audio"], batch["audio_len"])
        real = real_rows(batch)
        # a padding row's loss may be anything; where() keeps it out even when not finite
        per_example = jnp.where(real > 0, ctc_loss(logits, out_len, batch["labels"],
                                                   batch["label_len"]), 0.0)
        hyp, hyp_len = greedy_ids(logits, out_len)
        sums = {k: v.astype(jnp.float32) * real
                for k, v in error_sums(hyp, hyp_len, batch["labels"], batch["label_len"]).items()}
        return {"loss": (per_example.sum(), real.sum()),
                "cer": (sums["char_edits"].sum(), sums["chars"].sum()),
                "wer": (sums["word_edits"].sum(), sums["words"].sum())}

    # ----- host side
    def transcribe(self, variables: Variables, audio_BN: np.ndarray, audio_len_B: np.ndarray,
                   beam: int) -> list[str]:
        """Transcripts of a batch of audio (greedy with `beam` 0, else prefix beam search)."""
        log_probs, out_len = jax.device_get(self.log_probs_jit(variables, audio_BN, audio_len_B))
        return decode_batch(log_probs, out_len, beam)

    def sample(self, variables: Variables, sample_config: ml_collections.ConfigDict,
               workdir: str) -> list[str]:
        """`launch.py --sample`: transcribes the files `sample_config.audio` names, writing
        each transcript to `<name>.transcript.txt` beside its file (or into `output`) and all
        of them to `<workdir>/transcripts.txt`; with no files, the first `num_examples` eval
        examples with their references. Returns the transcripts."""
        s = sample_config
        batch_size = self.config.eval_batch_size or self.config.batch_size
        os.makedirs(workdir, exist_ok=True)
        if not s.audio:
            return self._sample_eval_examples(variables, s, batch_size, workdir)
        files = audio_files(s.audio)
        clips = [read_audio(f, "config.sample.audio") for f in files]
        width = int(np.ceil(max(map(len, clips)) / SAMPLE_RATE)) * SAMPLE_RATE  # whole seconds
        texts: list[str] = []
        for at in range(0, len(clips), batch_size):
            chunk = clips[at:at + batch_size]
            chunk += [chunk[0]] * (batch_size - len(chunk))  # one compiled shape
            audio = np.stack([np.pad(c, (0, width - len(c))) for c in chunk]).astype(np.float32)
            lengths = np.array([len(c) for c in chunk], np.int32)
            texts += self.transcribe(variables, audio, lengths, s.beam)[:len(clips) - at]
        out_dir = os.path.join(workdir, s.output) if s.output else ""
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        lines = []
        for file, text in zip(files, texts, strict=True):
            stem = os.path.splitext(os.path.basename(file))[0]
            path = os.path.join(out_dir or os.path.dirname(file), f"{stem}.transcript.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            lines.append(f"{file}\t{text}")
            print(f"{file}: {text}")
        with open(os.path.join(workdir, "transcripts.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return texts

    def _sample_eval_examples(self, variables: Variables, s: Any, batch_size: int,
                              workdir: str) -> list[str]:
        """Transcripts of the first eval examples, written with their references."""
        from dl_arch.data.pipeline import eval_batches

        c = self.config
        refs, texts = [], []
        for batch in eval_batches(c.dataset, c.seed, batch_size, self.preprocess):
            keep = np.flatnonzero(np.asarray(batch["_mask"]) > 0)[: s.num_examples - len(refs)]
            hyps = self.transcribe(variables, batch["audio"], batch["audio_len"], s.beam)
            refs += [decode_ids(batch["labels"][i][:batch["label_len"][i]]) for i in keep]
            texts += [hyps[i] for i in keep]
            if len(refs) >= s.num_examples:
                break
        lines = [f"ref: {r}\nhyp: {h}\n" for r, h in zip(refs, texts, strict=True)]
        path = os.path.join(workdir, "sample_transcripts.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        print("\n".join(lines))
        print(f"wrote {len(texts)} transcript(s) of eval examples to {path}")
        return texts


def audio_files(spec: str) -> list[str]:
    """The audio files `config.sample.audio` names (a folder, a glob or comma-separated
    paths), in order; a name that matches no audio file is a one-line error."""
    where = f"config.sample.audio={spec!r}"
    files: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        part = os.path.expanduser(part)
        if os.path.isdir(part):
            found = sorted(os.path.join(part, f) for f in os.listdir(part))
        else:
            found = sorted(glob.glob(part))
        found = [f for f in found if os.path.isfile(f) and f.lower().endswith(AUDIO_EXTENSIONS)]
        if not found:
            raise ConfigError(f"{where}: {part!r} matches no audio file ({', '.join(AUDIO_EXTENSIONS)}); "
                              f"give a folder, a glob such as 'clips/*.wav' or file paths")
        files += found
    if not files:
        raise ConfigError(f"{where} names no file; give a folder, a glob or file paths")
    return files
