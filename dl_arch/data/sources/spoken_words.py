"""`spoken_digits` and `spoken_commands`: speech synthesised offline by eSpeak NG.

Example `i` is drawn from (seed, split, i): the words, then the speaker (an English accent
of `accents` with a voice variant of the split's list), the speaking rate, pitch and pause
between words; the utterance is synthesised (`dl_arch.data.espeak`), resampled to 16 kHz,
peak-normalised, scaled by a drawn gain and mixed with white noise at a drawn SNR. The
training split speaks with `train_voices`, every other split with `eval_voices`, which must
not share a variant: the eval figure measures how well a model hears a speaker it never
heard. Synthesised utterances are cached per process (`SYNTH_CACHE_SIZE` of them), so the
epochs of a finite split synthesise each utterance once.

- `spoken_digits` (CTC transcription): `min_words`..`max_words` random digits spoken as
  words ("three one four"); `labels` are the transcript's character ids.
- `spoken_commands` (keyword spotting): one word of `words` (by default the ten digits,
  then yes, no, up, down, left, right, stop, go, on, off); `label` is its index.

eSpeak NG (GPL) comes with the optional `espeakng-loader` package: `pip install
'dl_arch[speech]'`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data import espeak
from dl_arch.data.audio import SAMPLE_RATE, audio_example, max_samples_of, resample
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.speech_text import encode_transcript, label_example
from dl_arch.registry import register_dataset

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off")
KEYWORDS = DIGIT_WORDS + COMMAND_WORDS
# eSpeak NG's English language voices (en-shaw, the Shavian alphabet, left out)
ACCENTS = ("en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp",
           "en-us", "en-us-nyc")
# voice variants: male m1..m8, female f1..f5, Klatt glottal sources klatt..klatt6; the eval
# split's speakers (one or two of each kind) are never heard in training
TRAIN_VOICES = ("m1", "m2", "m3", "m4", "m5", "m8", "f1", "f2", "f3", "f5", "klatt", "klatt2",
                "klatt3", "klatt5", "klatt6")
EVAL_VOICES = ("m6", "m7", "f4", "klatt4")
SYNTH_CACHE_SIZE = 8192  # utterances kept per process (int16 at 16 kHz: ~32 KB per second)

SYNTH_FIELDS: Fields = {
    "accents": Field(ACCENTS, "eSpeak NG language voices drawn in every split (English accents)"),
    "train_voices": Field(TRAIN_VOICES, "voice variants (speakers) of the training split"),
    "eval_voices": Field(EVAL_VOICES, "voice variants of every other split: none of "
                                      "train_voices, so eval measures unseen speakers"),
    "min_rate": Field(140, "slowest speaking rate, words per minute", low=80, high=450),
    "max_rate": Field(220, "fastest speaking rate, words per minute", low=80, high=450),
    "min_pitch": Field(35, "lowest base pitch (eSpeak NG's 0..100, 50 = the voice's own)",
                       low=0, high=100),
    "max_pitch": Field(65, "highest base pitch (0..100)", low=0, high=100),
    "min_word_gap": Field(0, "shortest extra pause between words, in 10 ms", low=0),
    "max_word_gap": Field(3, "longest extra pause between words, in 10 ms", low=0),
    "min_gain_db": Field(-12.0, "lowest peak level in dB (0 = full scale)", high=0.0),
    "max_gain_db": Field(0.0, "highest peak level in dB", high=0.0),
    "min_snr_db": Field(15.0, "lowest signal-to-noise ratio of the added white noise, dB"),
    "max_snr_db": Field(40.0, "highest signal-to-noise ratio, dB"),
}


def _ordered(c: Any, low: str, high: str) -> None:
    if getattr(c, low) > getattr(c, high):
        raise ConfigError(f"config.dataset.{low}={getattr(c, low)} exceeds config.dataset.{high}="
                          f"{getattr(c, high)}; give {low} <= {high}")


def check_synth_fields(c: Any, name: str) -> None:
    """One-line errors for eSpeak NG missing, unknown accents or voices, train and eval
    voices that overlap, and ranges given upside down."""
    if not espeak.available():
        raise ConfigError(f"config.dataset.name='{name}' synthesises speech with eSpeak NG, which "
                          f"is not installed; pip install 'dl_arch[speech]' (GPL-licensed), or "
                          f"use your own audio (audio_folder)")
    for low, high in (("min_rate", "max_rate"), ("min_pitch", "max_pitch"),
                      ("min_word_gap", "max_word_gap"), ("min_gain_db", "max_gain_db"),
                      ("min_snr_db", "max_snr_db")):
        _ordered(c, low, high)
    known = {"accents": espeak.languages(), "train_voices": espeak.variants(),
             "eval_voices": espeak.variants()}
    for field, names in known.items():
        given = tuple(getattr(c, field))
        if not given:
            raise ConfigError(f"config.dataset.{field} is empty; give at least one (e.g. "
                              f"{SYNTH_FIELDS[field].default[0]!r})")
        unknown = [n for n in given if n not in names]
        if unknown:
            english = [n for n in names if n.startswith("en")] if field == "accents" else names
            raise ConfigError(f"config.dataset.{field}: eSpeak NG has no {unknown[0]!r}; known: "
                              f"{', '.join(english)}")
    shared = sorted(set(c.train_voices) & set(c.eval_voices))
    if shared:
        raise ConfigError(f"config.dataset.eval_voices shares {', '.join(shared)} with "
                          f"config.dataset.train_voices; keep the eval speakers unseen in training")


@functools.lru_cache(maxsize=SYNTH_CACHE_SIZE)
def spoken(text: str, voice: str, rate: int, pitch: int, word_gap: int) -> np.ndarray:
    """`text` spoken by eSpeak NG `voice`, as int16 samples at SAMPLE_RATE (read-only: it is
    the cached copy); a pure function of its arguments (see `dl_arch.data.espeak`)."""
    samples = espeak.synthesize(text, voice, rate, pitch, word_gap)
    audio = resample(samples.astype(np.float32) / 32768.0, espeak.ESPEAK_RATE, SAMPLE_RATE)
    out = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    out.flags.writeable = False
    return out


class SpokenWords(ProceduralSource):
    """Utterances of words drawn by `draw_words`, with speaker, prosody, gain and noise drawn
    per example (module doc); subclasses add their labels."""

    name = "spoken_words"

    def __init__(self, c: Any, split: str, seed: int):
        super().__init__(split_length(c, split), seed, split)
        check_synth_fields(c, self.name)
        self.split = split
        self.accents = tuple(c.accents)
        self.voices = tuple(c.train_voices if split == c.train_split else c.eval_voices)
        self.rates = (int(c.min_rate), int(c.max_rate))
        self.pitches = (int(c.min_pitch), int(c.max_pitch))
        self.word_gaps = (int(c.min_word_gap), int(c.max_word_gap))
        self.gains_db = (float(c.min_gain_db), float(c.max_gain_db))
        self.snrs_db = (float(c.min_snr_db), float(c.max_snr_db))
        self.max_samples = max_samples_of(c.max_seconds)

    def draw_words(self, rng: np.random.Generator) -> tuple[str, ...]:
        raise NotImplementedError

    def utterance(self, rng: np.random.Generator, index: int) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The words of example `index` and its `audio`/`audio_len`, in the drawing order
        that defines the example."""
        words = self.draw_words(rng)
        accent = self.accents[int(rng.integers(len(self.accents)))]
        voice = f"{accent}+{self.voices[int(rng.integers(len(self.voices)))]}"
        rate = int(rng.integers(self.rates[0], self.rates[1] + 1))
        pitch = int(rng.integers(self.pitches[0], self.pitches[1] + 1))
        gap = int(rng.integers(self.word_gaps[0], self.word_gaps[1] + 1))
        gain_db = float(rng.uniform(*self.gains_db))
        snr_db = float(rng.uniform(*self.snrs_db))
        text = " ".join(words)
        speech = spoken(text, voice, rate, pitch, gap).astype(np.float32) / 32768.0
        peak = float(np.abs(speech).max())
        if peak > 0:
            speech *= 10.0 ** (gain_db / 20.0) / peak
        power = float(np.mean(np.square(speech, dtype=np.float64)))
        noise = rng.standard_normal(len(speech)).astype(np.float32)
        audio = np.clip(speech + noise * np.float32(np.sqrt(power / 10.0 ** (snr_db / 10.0))), -1, 1)
        where = (f"config.dataset.name='{self.name}': example {index} of split '{self.split}' "
                 f"({text!r} by {voice} at {rate} words/min)")
        return words, audio_example(audio, self.max_samples, where)


class SpokenDigits(SpokenWords):
    """Digit strings spoken as words, with their transcripts as character ids (CTC)."""

    name = "spoken_digits"

    def __init__(self, c: Any, split: str, seed: int):
        super().__init__(c, split, seed)
        _ordered(c, "min_words", "max_words")
        self.words = (int(c.min_words), int(c.max_words))
        longest = int(c.max_words) * (max(map(len, DIGIT_WORDS)) + 1) - 1
        if longest > c.max_label_len:
            raise ConfigError(f"config.dataset.max_label_len={c.max_label_len} cannot hold "
                              f"{c.max_words} digit words ({longest} characters); raise it to "
                              f"{longest} or lower config.dataset.max_words")
        self.max_label_len = int(c.max_label_len)

    def draw_words(self, rng: np.random.Generator) -> tuple[str, ...]:
        count = int(rng.integers(self.words[0], self.words[1] + 1))
        return tuple(DIGIT_WORDS[d] for d in rng.integers(0, 10, count).tolist())

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        words, example = self.utterance(rng, index)
        example.update(label_example(" ".join(words), self.max_label_len, self.name))
        return example


class SpokenCommands(SpokenWords):
    """One keyword per example; `label` is its index in `words` (keyword spotting)."""

    name = "spoken_commands"

    def __init__(self, c: Any, split: str, seed: int):
        super().__init__(c, split, seed)
        words = tuple(c.words)
        if len(words) < 2:
            raise ConfigError(f"config.dataset.words={words}: give at least two keywords")
        if len(set(words)) < len(words):
            twice = sorted({w for w in words if words.count(w) > 1})
            raise ConfigError(f"config.dataset.words names {', '.join(twice)} twice; give each "
                              f"keyword once")
        for word in words:
            try:
                ids = encode_transcript(word)
            except ValueError as e:
                raise ConfigError(f"config.dataset.words: {word!r} has a {e}") from None
            if not len(ids) or word != word.lower():
                raise ConfigError(f"config.dataset.words: {word!r} is not a lower-case word")
        self.class_names = words
        self.num_classes = len(words)

    def draw_words(self, rng: np.random.Generator) -> tuple[str, ...]:
        return (self.class_names[int(rng.integers(self.num_classes))],)

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        words, example = self.utterance(rng, index)
        example["label"] = np.int32(self.class_names.index(words[0]))
        return example


@register_dataset("spoken_digits", fields={
    **SYNTH_FIELDS,
    "min_words": Field(3, "fewest digits per utterance", low=1),
    "max_words": Field(7, "most digits per utterance", low=1),
    "max_seconds": Field(4.5, "length of `audio` in seconds (padded; a longer utterance is an "
                              "error)", low=0.0, low_open=True),
    "max_label_len": Field(48, "length of `labels` (character ids, 0-padded)", low=1),
    **SPLIT_FIELDS})
def spoken_digits(dataset_config: Any, split: str, seed: int) -> SpokenDigits:
    """Digit strings spoken by eSpeak NG voices, for CTC transcription (module doc)."""
    return SpokenDigits(dataset_config, split, seed)


@register_dataset("spoken_commands", fields={
    **SYNTH_FIELDS,
    "words": Field(KEYWORDS, "the keywords; label = position in this list"),
    "max_seconds": Field(1.0, "length of `audio` in seconds (padded; a longer utterance is an "
                              "error)", low=0.0, low_open=True),
    **SPLIT_FIELDS})
def spoken_commands(dataset_config: Any, split: str, seed: int) -> SpokenCommands:
    """Single keywords spoken by eSpeak NG voices, for keyword spotting (module doc)."""
    return SpokenCommands(dataset_config, split, seed)
