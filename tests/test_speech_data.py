"""Speech data: the character vocabulary, audio reading and resampling, eSpeak NG synthesis
independent of call history, the synthesised sources (deterministic, unseen eval voices,
real speech, labels that decode to the transcript), users' audio folders with every error as
one line, and the TFDS mappings on hand-made records."""

from __future__ import annotations

import os

import chex
import ml_collections
import numpy as np
import pytest
import scipy.signal
import soundfile

from dl_arch.config.errors import ConfigError
from dl_arch.data import espeak
from dl_arch.data.audio import SAMPLE_RATE, audio_example, pad_or_cut, read_audio, resample, to_mono
from dl_arch.data.pipeline import eval_batches, make_source, train_dataset
from dl_arch.data.sources import spoken_words as sw
from dl_arch.data.sources.speech_tfds import (
    SPEECH_COMMANDS_CLASSES,
    SPEECH_COMMANDS_TFDS,
    SpeechTFDS,
    _keyword_record,
    _transcription_record,
    keyword_example,
    transcription_example,
)
from dl_arch.data.speech_text import CHAR_VOCAB_SIZE, decode_ids, encode_transcript, keep_known

IDENTITY = lambda ex, rng, train: ex
needs_espeak = pytest.mark.skipif(not espeak.available(), reason="eSpeak NG (espeakng-loader) "
                                                                  "is not installed")


def _one_line(info: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ vocabulary
def test_vocabulary_ids_and_round_trip():
    assert CHAR_VOCAB_SIZE == 29
    np.testing.assert_array_equal(encode_transcript("a z' B"), [2, 1, 27, 28, 1, 3])
    assert encode_transcript("").dtype == np.int32
    text = "it's three o'clock"
    assert decode_ids(np.concatenate([encode_transcript(text), np.zeros(5, np.int32)])) == text
    with pytest.raises(ValueError, match=r"character '7' \(U\+0037\) is outside the vocabulary"):
        encode_transcript("room 7")
    assert keep_known("Hello,  WORLD-2 don't!") == "hello world don't"


# ------------------------------------------------------------------ audio helpers
def test_resample_matches_a_polyphase_reference_and_keeps_the_tone():
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    ours = resample(tone, 22050)
    reference = scipy.signal.resample_poly(tone.astype(np.float64), 320, 441)
    assert abs(len(ours) - len(reference)) <= 1 and len(ours) == pytest.approx(16000, abs=1)
    n = min(len(ours), len(reference))
    middle = slice(400, n - 400)  # away from the edges, where the two filters' transients differ
    np.testing.assert_allclose(ours[middle], reference[middle], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(ours[:16000]))
    assert np.argmax(spectrum) == 440  # 1 Hz bins over one second
    assert resample(tone, SAMPLE_RATE) is not None and np.array_equal(resample(tone, 16000), tone)


def test_read_audio_wav_and_flac_mono_mixdown_and_rates(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (800, 2)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(str(tmp_path / "a.wav"), "w"), stereo.mean(1), atol=1e-7)
    mono = (rng.uniform(-0.5, 0.5, 800) * 32767).astype(np.int16)
    soundfile.write(tmp_path / "b.flac", mono, SAMPLE_RATE)
    np.testing.assert_allclose(read_audio(str(tmp_path / "b.flac"), "w"), mono / 32768, atol=1e-7)
    soundfile.write(tmp_path / "c.wav", mono, 8000)
    assert len(read_audio(str(tmp_path / "c.wav"), "w")) == 1600
    with pytest.raises(ConfigError, match=r"w: '.*c.wav' is sampled at 8000 Hz, not 16000; set "
                                          r"config.dataset.resample=True") as info:
        read_audio(str(tmp_path / "c.wav"), "w", allow_resample=False)
    _one_line(info)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(ConfigError, match=r"w: cannot read '.*bad.wav' as audio"):
        read_audio(str(tmp_path / "bad.wav"), "w")
    assert to_mono(np.ones((3, 1))).shape == (3,)
    np.testing.assert_array_equal(pad_or_cut(np.ones(3), 5), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(pad_or_cut(np.ones(6), 5), np.ones(5))
    ex = audio_example(np.ones(3, np.float32), 4, "x")
    assert ex["audio"].dtype == np.float32 and ex["audio_len"] == 3 and ex["audio_len"].dtype == np.int32
    with pytest.raises(ConfigError, match=r"x lasts 0.00 s, longer than config.dataset.max_seconds"):
        audio_example(np.ones(5, np.float32), 4, "x")


# ------------------------------------------------------------------ eSpeak NG
@needs_espeak
def test_synthesis_does_not_depend_on_what_was_spoken_before():
    """eSpeak NG's own state runs on between utterances; the server's forked children make an
    utterance a function of its arguments only: the same after other utterances, and from a
    second server (a fresh process, as a grain worker or a resumed run would have)."""
    first = espeak.synthesize("three one four", "en-us+m3", 160, 40, 2)
    espeak.synthesize("seven", "en-029+f2", 200, 60, 0)
    again = espeak.synthesize("three one four", "en-us+m3", 160, 40, 2)
    other = espeak.Synthesizer()
    try:
        fresh = other("three one four", "en-us+m3", 160, 40, 2)
    finally:
        other.close()
    assert first.dtype == np.int16 and len(first) > 0.5 * espeak.ESPEAK_RATE
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
    assert not np.array_equal(first[:1000], espeak.synthesize("three one four", "en-us+f1")[:1000])
    with pytest.raises(ValueError, match="eSpeak NG has no voice 'xx-yy'"):
        espeak.synthesize("one", "xx-yy")
    assert {"en-us", "en-gb-scotland"} <= set(espeak.languages())
    assert set(sw.TRAIN_VOICES + sw.EVAL_VOICES) <= set(espeak.variants())


def _synth_config(name: str, **kw) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "num_eval_examples": 8, **kw})


@pytest.fixture
def recorded(monkeypatch):
    """Every (text, voice, rate, pitch, word_gap) synthesised, through the real synthesiser."""
    calls = []
    real = sw.spoken.__wrapped__

    def spoken(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(sw, "spoken", spoken)
    return calls


@needs_espeak
def test_spoken_digits_are_deterministic_and_labelled_with_their_transcript(recorded):
    c = _synth_config("spoken_digits", min_words=2, max_words=4, max_seconds=3.0, max_label_len=24)
    a, b = make_source(c, "train", 0), make_source(c, "train", 0)
    for i in (0, 3, 123456):
        ea, eb = a[i], b[i]
        assert set(ea) == {"audio", "audio_len", "labels", "label_len"}
        for k in ea:
            np.testing.assert_array_equal(ea[k], eb[k])
    assert not np.array_equal(a[0]["audio"], make_source(c, "train", 1)[0]["audio"])
    assert not np.array_equal(a[0]["audio"], make_source(c, "test", 0)[0]["audio"])
    assert len(make_source(c, "test", 0)) == 8
    recorded.clear()
    for i in range(6):
        ex = a[i]
        chex.assert_shape([ex["audio"], ex["labels"]], [(48000,), (24,)])
        assert ex["audio"].dtype == np.float32 and ex["labels"].dtype == np.int32
        text = decode_ids(ex["labels"])
        assert text == recorded[-1][0] and int(ex["label_len"]) == len(text)
        words = text.split()
        assert 2 <= len(words) <= 4 and set(words) <= set(sw.DIGIT_WORDS)
        assert not ex["labels"][int(ex["label_len"]):].any()
        n = int(ex["audio_len"])
        assert 0 < n <= 48000 and not ex["audio"][n:].any()


@needs_espeak
def test_eval_split_speaks_with_voices_training_never_uses(recorded):
    c = _synth_config("spoken_commands", num_eval_examples=40)
    train, test = make_source(c, "train", 0), make_source(c, "test", 0)
    for i in range(40):
        train[i]
    train_calls = list(recorded)
    recorded.clear()
    for i in range(40):
        test[i]
    variant = lambda call: call[1].split("+")[1]
    train_voices, eval_voices = {variant(x) for x in train_calls}, {variant(x) for x in recorded}
    assert train_voices <= set(sw.TRAIN_VOICES) and eval_voices <= set(sw.EVAL_VOICES)
    assert not train_voices & eval_voices and len(eval_voices) >= 3 and len(train_voices) >= 8
    accents = {x[1].split("+")[0] for x in train_calls + recorded}
    assert accents <= set(sw.ACCENTS) and len(accents) >= 5
    rates = [x[2] for x in train_calls]
    assert 140 <= min(rates) < max(rates) <= 220


@needs_espeak
def test_synthesised_audio_is_speech():
    """Speech, not noise: duration grows with the word count, and the clean signal has the
    syllabic energy contour of speech (loud voiced frames and near-silent gaps)."""
    lengths = [len(sw.spoken(" ".join(["four"] * n), "en-us+m3", 175, 50, 0)) for n in (1, 3, 6)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[2] / lengths[0] > 4
    for voice in ("en-gb-x-rp+f2", "en-us+m3", "en+klatt4"):  # 200 ms pauses between words
        clean = sw.spoken("one two three four five", voice, 175, 50, 20).astype(np.float64) / 32768
        frames = clean[:len(clean) // 320 * 320].reshape(-1, 320)  # 20 ms frames
        energy_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
        assert np.percentile(energy_db, 90) - np.percentile(energy_db, 10) > 40  # words and pauses
        loud = energy_db > energy_db.max() - 25
        assert 0.3 < loud.mean() < 0.7
        starts = np.flatnonzero(np.diff(np.r_[0, loud.astype(int)]) == 1)
        assert len(starts) == 5  # one loud stretch per word
    # the source's examples: the clean utterance scaled and noisy, not silence
    src = make_source(_synth_config("spoken_commands", min_snr_db=30.0, max_snr_db=30.0), "train", 0)
    for i in range(5):
        ex = src[i]
        real = ex["audio"][:int(ex["audio_len"])]
        assert 0.2 < np.abs(real).max() <= 1.0 and np.std(real) > 0.01


@needs_espeak
def test_spoken_commands_labels_and_word_sets(recorded):
    c = _synth_config("spoken_commands", words=("yes", "no", "stop"))
    src = make_source(c, "train", 0)
    assert src.class_names == ("yes", "no", "stop") and src.num_classes == 3
    labels = []
    for i in range(12):
        ex = src[i]
        assert set(ex) == {"audio", "audio_len", "label"} and ex["label"].dtype == np.int32
        assert recorded[-1][0] == src.class_names[int(ex["label"])]
        labels.append(int(ex["label"]))
        assert ex["audio"].shape == (16000,)
    assert set(labels) == {0, 1, 2}
    default = make_source(_synth_config("spoken_commands"), "train", 0)
    assert default.class_names[:10] == sw.DIGIT_WORDS and len(default.class_names) == 20


@needs_espeak
def test_synthesised_sources_through_the_pipeline():
    c = _synth_config("spoken_commands", num_train_examples=16, num_eval_examples=5)
    batch = next(iter(train_dataset(c, 0, 4, IDENTITY)))
    chex.assert_shape([batch["audio"], batch["audio_len"], batch["label"]], [(4, 16000), (4,), (4,)])
    evals = list(eval_batches(c, 0, 4, IDENTITY))
    assert len(evals) == 2 and evals[1]["_mask"].tolist() == [1, 0, 0, 0]
    np.testing.assert_array_equal(evals[0]["audio"][2], make_source(c, "test", 0)[2]["audio"])


@needs_espeak
def test_synthesis_config_errors_are_one_line(monkeypatch):
    def fails(match: str, name: str = "spoken_digits", read: bool = False, **kw) -> None:
        with pytest.raises(ConfigError, match=match) as info:
            src = make_source(_synth_config(name, **kw), "train", 0)
            if read:
                src[0]
        _one_line(info)

    fails(r"config.dataset.eval_voices shares m1 with config.dataset.train_voices",
          eval_voices=("m1", "m7"))
    fails(r"config.dataset.accents: eSpeak NG has no 'en-mars'; known: en, en-029", accents=("en-mars",))
    fails(r"config.dataset.train_voices: eSpeak NG has no 'm99'", train_voices=("m1", "m99"))
    fails(r"config.dataset.eval_voices is empty", eval_voices=())
    fails(r"config.dataset.min_rate=300 exceeds config.dataset.max_rate=220", min_rate=300)
    fails(r"config.dataset.min_words=5 exceeds config.dataset.max_words=3", min_words=5, max_words=3)
    fails(r"config.dataset.max_label_len=20 cannot hold 7 digit words \(41 characters\)",
          max_label_len=20)
    fails(r"config.dataset.name='spoken_digits': example 0 of split 'train' \('.*' by en.*\) lasts "
          r"\d.\d\d s, longer than config.dataset.max_seconds=0.2; raise max_seconds",
          read=True, max_seconds=0.2)
    fails(r"config.dataset.words names yes twice", "spoken_commands", words=("yes", "no", "yes"))
    fails(r"config.dataset.words: 'r2d2' has a character '2'", "spoken_commands", words=("r2d2", "no"))
    fails(r"config.dataset.words=\('yes',\): give at least two", "spoken_commands", words=("yes",))
    fails(r"config.dataset.min_rate=10 is out of range", min_rate=10)  # the declared range
    monkeypatch.setattr(espeak, "available", lambda: False)
    fails(r"config.dataset.name='spoken_commands' synthesises speech with eSpeak NG, which is not "
          r"installed; pip install 'dl_arch\[speech\]'", "spoken_commands")


# ------------------------------------------------------------------ users' audio folders
def _write_folder(root, rows, rate=SAMPLE_RATE, header="file,text", seconds=0.25):
    """root/<file> for each (file, target) row (a tone of its own pitch) and root/metadata.csv."""
    os.makedirs(root, exist_ok=True)
    tones = {}
    for k, (file, _) in enumerate(rows):
        t = np.arange(int(seconds * rate)) / rate
        tones[file] = (0.3 * np.sin(2 * np.pi * (200 + 50 * k) * t)).astype(np.float32)
        os.makedirs(os.path.dirname(os.path.join(root, file)), exist_ok=True)
        soundfile.write(os.path.join(root, file), tones[file], rate)
    lines = [header] + [f"{file},{target}" for file, target in rows]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return tones


def _folder_source(path, split="train", **kw):
    return make_source(ml_collections.ConfigDict({"name": "audio_folder", "path": str(path), **kw}),
                       split, 0)


def test_audio_folder_transcripts_and_labels(tmp_path):
    rows = [("a.wav", "Three one four"), ("sub/b.flac", "it's two"), ("c.wav", "nine")]
    tones = _write_folder(tmp_path / "t", rows)
    src = _folder_source(tmp_path / "t", eval_path=str(tmp_path / "t"), max_seconds=1.0,
                         max_label_len=20)
    assert len(src) == 3
    for i, (file, text) in enumerate(rows):
        ex = src[i]
        assert set(ex) == {"audio", "audio_len", "labels", "label_len"}
        chex.assert_shape([ex["audio"], ex["labels"]], [(16000,), (20,)])
        n = int(ex["audio_len"])
        np.testing.assert_allclose(ex["audio"][:n], tones[file], atol=1e-4)  # WAV PCM_16 rounding
        assert decode_ids(ex["labels"]) == text.lower() and int(ex["label_len"]) == len(text)
    # keyword labels: classes sorted, 8 kHz files resampled, file_name column (HF audiofolder)
    _write_folder(tmp_path / "k", [("x.wav", "yes"), ("y.wav", "no"), ("z.wav", "yes")], rate=8000,
                  header="file_name,label")
    kws = _folder_source(tmp_path / "k", eval_path=str(tmp_path / "k"))
    assert kws.class_names == ("no", "yes") and [int(kws[i]["label"]) for i in range(3)] == [1, 0, 1]
    assert int(kws[0]["audio_len"]) == 4000 and set(kws[0]) == {"audio", "audio_len", "label"}
    _write_folder(tmp_path / "n", [("x.wav", "10"), ("y.wav", "2"), ("z.wav", "0")], header="file,label")
    assert _folder_source(tmp_path / "n", eval_path=str(tmp_path / "n")).class_names == ("0", "2", "10")


def test_audio_folder_split_is_disjoint_and_eval_folder_keeps_the_classes(tmp_path):
    rows = [(f"{i}.wav", ["zero", "one", "two"][i % 3]) for i in range(10)]
    _write_folder(tmp_path / "a", rows, header="file,label", seconds=0.05)
    train, test = _folder_source(tmp_path / "a"), _folder_source(tmp_path / "a", "test")
    assert len(train) == 9 and len(test) == 1
    files = lambda s: {s.source.files[j] for j in s.indices.tolist()}
    assert not files(train) & files(test) and len(files(train) | files(test)) == 10
    _write_folder(tmp_path / "v", [("p.wav", "two")], header="file,label")
    val = _folder_source(tmp_path / "a", "test", eval_path=str(tmp_path / "v"))
    assert val.class_names == ("one", "two", "zero") and int(val[0]["label"]) == 1


def test_audio_folder_errors_are_one_line(tmp_path):
    def fails(match: str, path, read: int | None = None, **kw) -> None:
        with pytest.raises(ConfigError, match=match) as info:
            src = _folder_source(path, eval_path=str(path), **kw)
            if read is not None:
                src[read]
        _one_line(info)

    fails(r"config.dataset.path is not set", "")
    fails(r"config.dataset.path='.*nowhere': no such folder", tmp_path / "nowhere")
    (tmp_path / "nocsv").mkdir()
    fails(r"config.dataset.csv='metadata.csv': no such file in '.*nocsv'; write a CSV with the "
          r"columns file,text", tmp_path / "nocsv")
    _write_folder(tmp_path / "cols", [("a.wav", "x")], header="path,words")
    fails(r"metadata.csv' has the columns path, words; it needs 'file' and 'text' \(transcripts\) "
          r"or 'label'", tmp_path / "cols")
    both = tmp_path / "both"
    _write_folder(both, [("a.wav", "x")])
    (both / "metadata.csv").write_text("file,text,label\na.wav,one,yes\n")
    fails(r"choose one with config.dataset.column", both)
    assert _folder_source(both, eval_path=str(both), column="label").class_names == ("yes",)
    _write_folder(tmp_path / "missing", [("a.wav", "one")])
    (tmp_path / "missing" / "metadata.csv").write_text("file,text\na.wav,one\nb.wav,two\n")
    fails(r"metadata.csv' line 3: no audio file 'b.wav' in '.*missing'", tmp_path / "missing")
    _write_folder(tmp_path / "bad", [("a.wav", "one"), ("b.wav", "two")])
    (tmp_path / "bad" / "b.wav").write_bytes(b"RIFF nonsense")
    fails(r"config.dataset.path='.*bad': metadata.csv line 3: cannot read '.*b.wav' as audio",
          tmp_path / "bad")
    _write_folder(tmp_path / "rate", [("a.wav", "one")], rate=22050)
    fails(r"line 2: '.*a.wav' is sampled at 22050 Hz, not 16000; set config.dataset.resample=True",
          tmp_path / "rate", resample=False)
    fails(r"line 2: '.*a.wav' lasts 0.25 s, longer than config.dataset.max_seconds=0.2",
          tmp_path / "rate", max_seconds=0.2)
    _write_folder(tmp_path / "empty", [("a.wav", "one"), ("b.wav", " ")])
    fails(r"metadata.csv line 3: the transcript is empty", tmp_path / "empty")
    _write_folder(tmp_path / "chars", [("a.wav", "one"), ("b.wav", "room 101")])
    fails(r"metadata.csv line 3: character '1' \(U\+0031\) is outside the vocabulary",
          tmp_path / "chars")
    kept = _folder_source(tmp_path / "chars", eval_path=str(tmp_path / "chars"), unknown_chars="drop")
    assert decode_ids(kept[1]["labels"]) == "room"
    fails(r"line 3: the transcript has 4 characters, more than config.dataset.max_label_len=3",
          tmp_path / "chars", max_label_len=3, unknown_chars="drop")
    _write_folder(tmp_path / "lab", [("a.wav", "yes"), ("b.wav", "no"), ("c.wav", "up")],
                  header="file,label")
    fails(r"has 3 classes \(no, up, yes\) but the model was built for config.dataset.num_classes=2",
          tmp_path / "lab", num_classes=2)
    fails(r"line 4: the label 'up' is not among the classes \(no, yes\)", tmp_path / "lab",
          class_names=("no", "yes"))
    _write_folder(tmp_path / "one", [("a.wav", "one")])
    with pytest.raises(ConfigError, match=r"holds 1 example\(s\); a train/eval split needs at least 2"):
        _folder_source(tmp_path / "one")


# ------------------------------------------------------------------ TFDS mappings
class _Records:
    """A stand-in for `tfds.data_source`: a list of records."""

    def __init__(self, records):
        self.records = records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]


def test_speech_commands_labels_map_to_the_offline_command_order():
    assert len(SPEECH_COMMANDS_TFDS) == len(SPEECH_COMMANDS_CLASSES) == 12
    assert SPEECH_COMMANDS_CLASSES[:10] == sw.COMMAND_WORDS
    audio = (np.arange(12000) % 200 - 100).astype(np.int16)
    records = [{"audio": audio, "label": np.int64(k)} for k in range(12)]
    src = SpeechTFDS(_Records(records), "speech_commands", "train",
                     lambda r, where: _keyword_record(r, where, max_samples=16000),
                     SPEECH_COMMANDS_CLASSES)
    assert src.num_classes == 12
    for k in range(12):
        ex = src[k]
        assert SPEECH_COMMANDS_CLASSES[int(ex["label"])] == SPEECH_COMMANDS_TFDS[k].strip("_")
        assert ex["label"].dtype == np.int32 and int(ex["audio_len"]) == 12000
        np.testing.assert_allclose(ex["audio"][:12000], audio / 32768)
        assert not ex["audio"][12000:].any()
    with pytest.raises(ConfigError, match=r"name='speech_commands': example 0 of split 'train' "
                                          r"lasts 1.10 s, longer than config.dataset.max_seconds=1"):
        keyword_example(np.zeros(17600, np.int16), 0, 16000,
                        "config.dataset.name='speech_commands': example 0 of split 'train'")


def test_librispeech_transcripts_lower_cased_and_unknown_characters():
    speech = (np.arange(3200) % 50).astype(np.int16)[:, None]  # [N, 1] as some decoders give it
    ex = _transcription_record({"speech": speech, "text": b"HE HOPED THERE WOULD BE STEW'S"},
                               "w", max_samples=4000, max_label_len=40, unknown_chars="drop")
    assert decode_ids(ex["labels"]) == "he hoped there would be stew's"
    assert int(ex["audio_len"]) == 3200 and ex["audio"].shape == (4000,)
    dropped = transcription_example(speech, "NUMBER 42, PLEASE", 4000, 40, "drop", "w")
    assert decode_ids(dropped["labels"]) == "number please"
    with pytest.raises(ConfigError, match=r"w: character '4' \(U\+0034\) is outside the vocabulary.*"
                                          r"or set config.dataset.unknown_chars='drop'") as info:
        transcription_example(speech, "NUMBER 42", 4000, 40, "error", "w")
    _one_line(info)
    with pytest.raises(ConfigError, match=r"more than config.dataset.max_label_len=5"):
        transcription_example(speech, "LONGER", 4000, 5, "drop", "w")


def test_tfds_speech_sources_declare_their_fields():
    from dl_arch.data.pipeline import dataset_fields

    fields = dataset_fields("librispeech")
    assert fields["train_split"].default == "train_clean100"
    assert fields["eval_split"].default == "dev_clean" and fields["unknown_chars"].default == "drop"
    assert dataset_fields("speech_commands")["max_seconds"].default == 1.0
