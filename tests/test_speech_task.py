"""The speech tasks: on-device CER / WER against `error_rates` and jiwer, eval metrics against
the decoded text, the shared front end (SpecAugment in training only), learning one batch
(CTC and keywords), the smoke configs end to end with the `transcripts` evaluator and
`--sample` on a WAV file, own audio folders, the TFDS configs on hand-made records, and the
one-line errors.

The metric tests use probe models registered here (a dense layer per frame; a dense layer on
the mean frame), so they pin the tasks, not an architecture of the family.
"""

from __future__ import annotations

import json
import os
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import jiwer
import ml_collections
import numpy as np
import pytest
import soundfile

from configs.base import base_config
from dl_arch.config.errors import ConfigError
from dl_arch.data import espeak
from dl_arch.data.audio import SAMPLE_RATE
from dl_arch.data.speech_text import CHAR_VOCAB_SIZE, decode_ids, encode_transcript
from dl_arch.models.layers.log_mel import log_mel, normalize_utterance
from dl_arch.registry import register_model
from dl_arch.tasks.ctc import ctc_loss, greedy_decode
from dl_arch.tasks.error_rates import char_error_rate, edit_distance, word_error_rate
from dl_arch.tasks.speech_features import speech_features
from dl_arch.tasks.speech_recognition import error_sums
from dl_arch.testing import load_config, overfit_one_batch
from dl_arch.train.trainer import Trainer

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="eSpeak NG (espeakng-loader) "
                                                                  "is not installed")


@register_model("ctc_probe")
class CTCProbe(nn.Module):
    """Per-frame dense logits over the features; every frame is an output frame."""

    vocab_size: int = CHAR_VOCAB_SIZE  # characters, the CTC blank included
    dtype: Any = jnp.float32  # computation dtype
    param_dtype: Any = jnp.float32  # parameter dtype

    @nn.compact
    def __call__(self, features_BTF, frame_len_B, *, train: bool = False):
        return nn.Dense(self.vocab_size, name="head")(features_BTF), frame_len_B


@register_model("kws_probe")
class KWSProbe(nn.Module):
    """Dense class logits of the mean of each utterance's real frames."""

    num_classes: int = 3  # keywords
    dtype: Any = jnp.float32  # computation dtype
    param_dtype: Any = jnp.float32  # parameter dtype

    @nn.compact
    def __call__(self, features_BTF, frame_len_B, *, train: bool = False):
        real = (jnp.arange(features_BTF.shape[1])[None, :] < frame_len_B[:, None])[..., None]
        mean = jnp.sum(features_BTF * real, 1) / jnp.maximum(frame_len_B, 1)[:, None]
        return nn.Dense(self.num_classes, name="head")(mean)


def probe_config(task: str, **fields: Any) -> ml_collections.ConfigDict:
    c = base_config()
    c.task = ml_collections.ConfigDict({"name": task, **fields})
    if task == "speech_recognition":
        c.model = ml_collections.ConfigDict({"name": "ctc_probe"})
        c.dataset = ml_collections.ConfigDict({"name": "spoken_digits", "max_words": 3,
                                               "max_seconds": 2.5})
    else:
        c.model = ml_collections.ConfigDict({"name": "kws_probe", "num_classes": 3})
        c.dataset = ml_collections.ConfigDict({"name": "spoken_commands",
                                               "words": ("yes", "no", "up")})
    c.batch_size = 4
    return c


def audio_batch(rng: np.random.Generator, lengths: list[int], width: int) -> dict[str, np.ndarray]:
    """Noise bursts of the given lengths, zero padded to `width` samples."""
    audio = np.zeros((len(lengths), width), np.float32)
    for i, n in enumerate(lengths):
        audio[i, :n] = 0.1 * rng.standard_normal(n)
    return {"audio": audio, "audio_len": np.array(lengths, np.int32)}


def id_rows(texts: list[str], width: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.zeros((len(texts), width), np.int32)
    for i, t in enumerate(texts):
        rows[i, :len(t)] = encode_transcript(t)
    return rows, np.array([len(t) for t in texts], np.int32)


# ------------------------------------------------------------------ error rates on the device
def test_device_error_sums_match_error_rates_and_jiwer():
    refs = ["three one four", "nine", "eight eight two", "wonderful seventeen apostrophe's x",
            "one two", "extraordinary words"]
    hyps = [" three one for ", "nine  nine", "", "wonderfull seventeen apostrophe's x",
            "one two", "extraordinarx  words  "]
    rng = np.random.default_rng(0)
    letters = "abcdefghij '"
    for _ in range(6):  # random strings with leading, trailing and repeated spaces
        refs.append("".join(rng.choice(list(letters), 12)).strip() or "a")
        hyps.append("".join(rng.choice(list(letters), int(rng.integers(0, 15)))))
    hyp, hyp_len = id_rows(hyps, 40)
    ref, ref_len = id_rows(refs, 36)
    sums = jax.jit(error_sums)(hyp, hyp_len, ref, ref_len)
    want_chars = [edit_distance(r.strip(), h.strip()) for r, h in zip(refs, hyps, strict=True)]
    want_words = [edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True)]
    np.testing.assert_array_equal(sums["char_edits"], want_chars)
    np.testing.assert_array_equal(sums["word_edits"], want_words)
    np.testing.assert_array_equal(sums["chars"], [len(r.strip()) for r in refs])
    np.testing.assert_array_equal(sums["words"], [len(r.split()) for r in refs])
    cer = float(sums["char_edits"].sum() / sums["chars"].sum())
    wer = float(sums["word_edits"].sum() / sums["words"].sum())
    assert cer == pytest.approx(char_error_rate(refs, hyps))
    assert wer == pytest.approx(word_error_rate(refs, hyps))
    assert wer == pytest.approx(jiwer.wer(refs, [h if h.strip() else "" for h in hyps]))


@needs_espeak
def test_eval_metrics_equal_error_rates_of_the_greedy_text_and_skip_padding():
    trainer = Trainer(probe_config("speech_recognition", freq_masks=0, time_masks=0))
    task = trainer.task
    batch = {k: np.array(v) for k, v in trainer.first_batch().items()}
    batch["_mask"] = np.array([1, 1, 1, 0], np.float32)
    batch["labels"][3, :] = 5  # a padding row whose numbers must not count
    variables = jax.jit(task.init_variables)(jax.random.key(0), batch)
    totals = jax.jit(task.eval_metrics)(variables, batch)
    got = task.finalize_metrics({k: (np.asarray(s), np.asarray(c)) for k, (s, c) in totals.items()})

    features, frame_len = log_mel(batch["audio"], batch["audio_len"], sample_rate=SAMPLE_RATE)
    logits, out_len = task.model.apply(variables, normalize_utterance(features, frame_len), frame_len)
    hyps = [decode_ids(ids) for ids in greedy_decode(logits, out_len)][:3]
    refs = [decode_ids(batch["labels"][i][:batch["label_len"][i]]) for i in range(3)]
    assert all(refs) and any(h.strip() for h in hyps)
    assert got["cer"] == pytest.approx(char_error_rate(refs, hyps), rel=1e-6)
    assert got["wer"] == pytest.approx(word_error_rate(refs, hyps), rel=1e-6)
    nll = ctc_loss(logits, out_len, batch["labels"], batch["label_len"])[:3]
    assert got["loss"] == pytest.approx(float(np.mean(nll)), rel=1e-5)
    text = task.transcribe(variables, batch["audio"], batch["audio_len"], beam=0)
    assert text[:3] == hyps


def test_speech_features_mask_only_in_training_and_only_real_frames():
    t = ml_collections.ConfigDict(dict(n_mels=16, n_fft=256, hop=128, fmin=20.0, fmax=None,
                                       normalize=True, freq_masks=2, freq_width=4, time_masks=2,
                                       time_width=5))
    batch = audio_batch(np.random.default_rng(1), [4000, 2500], 4000)
    clean, frame_len = speech_features(t, batch["audio"], batch["audio_len"])
    features, lengths = log_mel(batch["audio"], batch["audio_len"], sample_rate=SAMPLE_RATE,
                                n_fft=256, hop=128, n_mels=16)
    chex.assert_trees_all_close(clean, normalize_utterance(features, lengths), atol=1e-6)
    np.testing.assert_array_equal(frame_len, [1 + 4000 // 128, 1 + 2500 // 128])
    masked, _ = speech_features(t, batch["audio"], batch["audio_len"], jax.random.key(0))
    changed = np.asarray(masked != clean)
    assert changed.any() and not np.asarray(masked)[changed].any()  # masked entries are 0
    real = np.arange(clean.shape[1])[None, :] < np.asarray(frame_len)[:, None]
    assert not changed[~real].any()  # padding frames untouched


# ------------------------------------------------------------------ learning one batch
@needs_espeak
def test_ctc_task_overfits_one_batch():
    config = load_config("configs/speech_digits.py:smoke")
    config.task.freq_masks = config.task.time_masks = 0
    config.model.dropout = 0.0
    config.optimizer.learning_rate = 1e-2
    config.optimizer.schedule = "constant"
    history, _ = overfit_one_batch(config, steps=150)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    assert history[0]["cer"] > 0.8 and history[-1]["cer"] == 0.0


@needs_espeak
def test_keyword_task_overfits_one_batch():
    config = load_config("configs/keyword_spotting.py:smoke")
    config.task.freq_masks = config.task.time_masks = 0
    config.model.dropout_rate = 0.0
    config.optimizer.learning_rate = 1e-2
    config.optimizer.schedule = "constant"
    history, _ = overfit_one_batch(config, steps=60)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    assert history[-1]["accuracy"] == 1.0


# ------------------------------------------------------------------ end to end
def _write_wav(path: str, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 22050)) / 22050  # another rate: --sample resamples it
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))),
                    22050)


@needs_espeak
def test_digits_smoke_run_reports_greedy_and_beam_transcripts(tmp_path):
    from dl_arch.train.loop import train_and_evaluate

    summary = train_and_evaluate(load_config("configs/speech_digits.py:smoke"), str(tmp_path))
    for key in ("cer", "wer", "loss", "cer_beam", "wer_beam", "cer_greedy", "wer_greedy"):
        assert np.isfinite(summary[f"eval/{key}"]), key
    # the evaluator's host CER of greedy text is the eval metric summed on the device
    assert summary["eval/cer_greedy"] == pytest.approx(summary["eval/cer"], rel=1e-6)
    assert summary["eval/wer_greedy"] == pytest.approx(summary["eval/wer"], rel=1e-6)
    record = json.load(open(tmp_path / "transcripts.json"))
    assert len(record["examples"]) == 4 and record["beam_width"] == 2
    assert "| reference | greedy | beam |" in open(tmp_path / "transcripts.txt").read()


@needs_espeak
def test_sample_transcribes_wav_files_beside_them_or_eval_examples(tmp_path):
    config = probe_config("speech_recognition")
    config.dataset.num_eval_examples = 3
    task = Trainer(config).task
    variables = jax.jit(task.init_variables)(jax.random.key(0), audio_batch(np.random.default_rng(4),
                                                                   [9000, 7000], 16000))
    clips = tmp_path / "clips"
    clips.mkdir()
    _write_wav(str(clips / "a.wav"), 0.7, 0)
    _write_wav(str(clips / "b.wav"), 1.9, 1)
    sample = ml_collections.ConfigDict(dict(audio=str(clips), num_examples=2, beam=2, output=""))
    texts = task.sample(variables, sample, str(tmp_path / "run"))
    assert len(texts) == 2
    for name, text in zip("ab", texts, strict=True):
        assert open(clips / f"{name}.transcript.txt").read() == text + "\n"
    assert str(clips / "a.wav") in open(tmp_path / "run" / "transcripts.txt").read()
    # the same file through a glob, into a folder of its own
    sample.update(audio=str(clips / "b*"), output="out")
    assert task.sample(variables, sample, str(tmp_path / "run")) == texts[1:]
    assert open(tmp_path / "run" / "out" / "b.transcript.txt").read() == texts[1] + "\n"
    sample.update(audio="", output="")
    assert len(task.sample(variables, sample, str(tmp_path / "run"))) == 2
    assert open(tmp_path / "run" / "sample_transcripts.txt").read().count("ref: ") == 2
    for audio in (str(tmp_path / "none*.wav"), str(tmp_path / "run" / "out")):
        sample.audio = audio
        with pytest.raises(ConfigError, match="config.sample.audio=.*matches no audio file"):
            task.sample(variables, sample, str(tmp_path / "run"))


@needs_espeak
def test_keyword_smoke_run_reports_accuracy_and_confusion(tmp_path):
    from dl_arch.train.loop import train_and_evaluate

    summary = train_and_evaluate(load_config("configs/keyword_spotting.py:smoke"), str(tmp_path))
    for key in ("accuracy", "top5_accuracy", "loss", "macro_f1"):
        assert 0.0 <= summary[f"eval/{key}"] < 10.0, key
    assert os.path.exists(tmp_path / "confusion_matrix.png")
    scores = json.load(open(tmp_path / "per_class_metrics.json"))
    assert len(scores["recall"]) == 20


def _audio_folder(folder, rows: list[tuple[str, str]], column: str) -> None:
    folder.mkdir()
    with open(folder / "metadata.csv", "w") as f:
        f.write(f"file,{column}\n")
        for i, (name, target) in enumerate(rows):
            _write_wav(str(folder / name), 0.5 + 0.1 * (i % 3), i)
            f.write(f"{name},{target}\n")


def test_own_audio_folders_through_the_configs(tmp_path):
    words = ["left", "right", "stop"]
    _audio_folder(tmp_path / "kws", [(f"w{i}.wav", words[i % 3]) for i in range(12)], "label")
    config = load_config(f"configs/keyword_spotting.py:smoke,data={tmp_path / 'kws'}")
    assert config.model.num_classes == 3 and tuple(config.dataset.class_names) == tuple(words)
    batch = Trainer(config).first_batch()
    assert set(np.asarray(batch["label"]).tolist()) <= {0, 1, 2}

    texts = ["one two", "three", "four five six"]
    _audio_folder(tmp_path / "asr", [(f"u{i}.wav", texts[i % 3]) for i in range(12)], "text")
    config = load_config(f"configs/speech_digits.py:smoke,data={tmp_path / 'asr'}")
    assert config.dataset.name == "audio_folder"
    batch = {k: np.asarray(v) for k, v in Trainer(config).first_batch().items()}
    decoded = {decode_ids(row[:n]) for row, n in zip(batch["labels"], batch["label_len"], strict=True)}
    assert decoded <= set(texts)


class _Records:
    def __init__(self, records):
        self.records = records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]


def test_tfds_configs_run_on_hand_made_records(tmp_path, monkeypatch):
    from dl_arch.data.sources import speech_tfds
    from dl_arch.train.loop import train_and_evaluate

    rng = np.random.default_rng(3)
    clips = [{"audio": (3000 * rng.standard_normal(int(rng.integers(8000, 16000)))).astype(np.int16),
              "label": np.int64(k % 12)} for k in range(16)]
    utterances = [{"speech": (3000 * rng.standard_normal(24000)).astype(np.int16),
                   "text": b"HE HOPED THERE WOULD BE STEW"} for _ in range(8)]
    monkeypatch.setattr(speech_tfds, "_open", lambda c, split: _Records(
        clips if c.tfds_name == "speech_commands" else utterances))
    summary = train_and_evaluate(load_config("configs/speech_commands_tfds.py:smoke"),
                                 str(tmp_path / "sc"))
    assert 0.0 <= summary["eval/accuracy"] <= 1.0
    config = load_config("configs/speech_librispeech.py:smoke")
    assert config.task.n_mels == 80 and config.model.name == "deepspeech2_tiny"
    batch = {k: np.asarray(v) for k, v in Trainer(config).first_batch().items()}
    assert decode_ids(batch["labels"][0][:batch["label_len"][0]]) == "he hoped there would be stew"


# ------------------------------------------------------------------ one-line errors
@pytest.mark.parametrize("task, fields, match", [
    ("speech_recognition", {"hop": 500}, r"config.task.hop=500 exceeds config.task.n_fft=400"),
    ("speech_recognition", {"n_mels": 300}, r"config.task.n_mels=300 exceeds the 201 FFT bins"),
    ("speech_recognition", {"fmax": 9000.0}, r"fmin < fmax <= 8000 Hz"),
    ("keyword_spotting", {"freq_width": 50}, r"config.task.freq_width=50 exceeds"),
])
def test_feature_field_errors_are_one_line(task, fields, match):
    with pytest.raises(ConfigError, match=match) as info:
        Trainer(probe_config(task, **fields))
    assert "\n" not in str(info.value)


@needs_espeak
def test_task_and_config_errors_are_one_line():
    config = probe_config("speech_recognition")
    config.model = ml_collections.ConfigDict({"name": "ctc_probe", "vocab_size": 30})
    with pytest.raises(ConfigError, match=r"config.model.vocab_size=30.*set config.model.vocab_size=29"):
        Trainer(config)
    config = probe_config("keyword_spotting")
    config.dataset.class_names = ("yes", "no")
    with pytest.raises(ConfigError, match="class_names has 2 names but config.model.num_classes=3"):
        Trainer(config)
    task = Trainer(probe_config("keyword_spotting")).task
    batch = audio_batch(np.random.default_rng(2), [800, 900], 1000)
    with pytest.raises(ConfigError, match="needs batch key.*label.*gives audio, audio_len"):
        task.check_batch(batch)
    with pytest.raises(ConfigError, match="label 7, but config.model.num_classes=3"):
        task.check_batch({**batch, "label": np.array([0, 7], np.int32)})
    task = Trainer(probe_config("speech_recognition")).task
    with pytest.raises(ConfigError, match="label id 40; transcripts need character ids 0..28"):
        task.check_batch({**batch, "labels": np.full((2, 4), 40, np.int32),
                          "label_len": np.array([4, 4], np.int32)})
    for spec, match in [("configs/speech_digits.py:size=huge", "size='huge'; use one of small, medium, base"),
                        ("configs/keyword_spotting.py:model=resnet", "model='resnet'; use one of"),
                        ("configs/speech_digits.py:data=/no/such/folder", "data='/no/such/folder'")]:
        with pytest.raises(ConfigError, match=match):
            load_config(spec)
