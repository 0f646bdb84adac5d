"""Audio helpers shared by the speech sources: the sample rate, reading, resampling, padding.

Every speech source yields 16 kHz mono float32 in [-1, 1], zero padded to a fixed length
(`audio`) with the real length beside it (`audio_len`), so grain can batch examples of
different durations. Files are read with `soundfile` (WAV, FLAC, OGG...) and resampled with
`soxr` (band-limited, deterministic).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError

SAMPLE_RATE = 16000  # Hz: the rate of every `audio` array a speech source yields
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")  # what `read_audio` accepts


def max_samples_of(max_seconds: float) -> int:
    """Samples of `max_seconds` at SAMPLE_RATE (the fixed length of `audio`)."""
    return int(round(float(max_seconds) * SAMPLE_RATE))


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 PCM (or float) samples -> float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if np.issubdtype(samples.dtype, np.integer):  # int32 PCM as some decoders give it
        return (samples.astype(np.float64) / float(np.iinfo(samples.dtype).max + 1)).astype(np.float32)
    return samples.astype(np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[N] or [N, channels] -> [N]: the mean of the channels."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"audio of shape {samples.shape}: expected [samples] or [samples, channels]")
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono `samples` at `rate` Hz -> `target` Hz (soxr, high quality); unchanged when
    the rates agree."""
    samples = np.asarray(samples, np.float32)
    if int(rate) == int(target):
        return samples
    import soxr

    return np.asarray(soxr.resample(samples, int(rate), int(target), quality="HQ"), np.float32)


def read_audio(path: str, where: str, allow_resample: bool = True,
               field: str = "resample") -> np.ndarray:
    """The file `path` as 16 kHz mono float32; `where` starts each one-line error (the config
    field and the file). A file at another rate is resampled, or, with `allow_resample`
    False, an error naming `config.dataset.<field>`."""
    import soundfile

    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types; one line instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where}: cannot read {path!r} as audio ({first}); give WAV or FLAC "
                          f"files") from None
    if samples.shape[0] == 0:
        raise ConfigError(f"{where}: {path!r} holds no samples; remove it or record it again")
    if rate != SAMPLE_RATE and not allow_resample:
        raise ConfigError(f"{where}: {path!r} is sampled at {rate} Hz, not {SAMPLE_RATE}; set "
                          f"config.dataset.{field}=True to resample it, or convert the file")
    return resample(to_mono(samples), rate)


def pad_or_cut(samples: np.ndarray, length: int) -> np.ndarray:
    """float32 `samples` zero padded (or cut) to exactly `length`."""
    samples = np.asarray(samples, np.float32)
    if len(samples) >= length:
        return samples[:length].copy()
    out = np.zeros(length, np.float32)
    out[:len(samples)] = samples
    return out


def audio_example(samples: np.ndarray, max_samples: int, where: str,
                  field: str = "max_seconds") -> dict[str, Any]:
    """`audio` float32 [max_samples] (zero padded) and `audio_len`; audio longer than
    `max_samples` is a one-line error naming `config.dataset.<field>`."""
    n = len(samples)
    if n > max_samples:
        raise ConfigError(f"{where} lasts {n / SAMPLE_RATE:.2f} s, longer than config.dataset."
                          f"{field}={max_samples / SAMPLE_RATE:g}; raise {field} to at least "
                          f"{np.ceil(n / SAMPLE_RATE * 10) / 10:g}")
    return {"audio": pad_or_cut(samples, max_samples), "audio_len": np.int32(n)}
