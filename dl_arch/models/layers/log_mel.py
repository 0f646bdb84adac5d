"""Log-mel spectrograms in JAX, with librosa's conventions, for zero-padded batches of audio.

`log_mel` = centred STFT frames (periodic Hann window, reflect padding), power spectrum, a mel
filterbank (Slaney scale and area norm by default, HTK scale as an option), natural log
of power + a small floor. Each utterance is reflected at its own end (`audio_len`), not at the
end of the padded array, so a real frame's features are those librosa gives for the unpadded
utterance and padding never changes them; frames past `frame_len` hold the value of silence.
The filterbank is built in numpy from the equations (librosa is only the tests' reference).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above it.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray, htk: bool = False) -> np.ndarray:
    """Mel value of frequencies in Hz: HTK's 2595 log10(1 + f/700), or Slaney's piecewise scale."""
    hz = np.asarray(hz, np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    log_ratio = np.log(np.maximum(hz, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ)
    log_part = _SLANEY_BREAK_MEL + log_ratio / _SLANEY_LOG_STEP
    return np.where(hz >= _SLANEY_BREAK_HZ, log_part, hz / _SLANEY_HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray, htk: bool = False) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    log_part = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(mel, _SLANEY_BREAK_MEL)
                                                             - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, log_part, mel * _SLANEY_HZ_PER_MEL)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, slaney_norm: bool = True
                   ) -> np.ndarray:
    """`[n_fft//2 + 1, n_mels]` triangular filters, centres evenly spaced in mels.

    Filter m rises from centre m-1 to m and falls to m+1 (linear in Hz); with `slaney_norm`
    each is scaled by 2 / (its width in Hz), so every filter has the same area.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges_hz)
    below = edges_hz[:, None] - fft_hz[None, :]  # [n_mels + 2, n_freq]
    rising = -below[:-2] / widths[:-1, None]
    falling = below[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_freq]
    if slaney_norm:
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.T.astype(np.float32)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (the DFT-even one librosa and scipy use for spectra)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def num_frames(num_samples: Array | int, hop: int) -> Array | int:
    """Centred frames in `num_samples` samples: 1 + n // hop (librosa's count); 0 for none."""
    if isinstance(num_samples, int):
        return 1 + num_samples // hop if num_samples > 0 else 0
    n = jnp.asarray(num_samples, jnp.int32)
    return jnp.where(n > 0, 1 + n // hop, 0).astype(jnp.int32)


def frame_audio(audio_BN: Array, audio_len_B: Array, n_fft: int, hop: int) -> Array:
    """Centred frames `[B, 1 + N // hop, n_fft]`, each utterance reflected at its own ends.

    Frame t covers samples t*hop - n_fft//2 .. t*hop - n_fft//2 + n_fft - 1; an index i < 0
    reads -i and one past the utterance's last sample L-1 reads 2(L-1) - i (numpy's 'reflect'),
    clipped to the utterance when it has n_fft//2 samples or fewer (numpy reflects again).
    """
    n = audio_BN.shape[1]
    t = np.arange(1 + n // hop)
    idx_TK = t[:, None] * hop + np.arange(n_fft)[None, :] - n_fft // 2
    last_B11 = (jnp.maximum(audio_len_B, 1) - 1).astype(jnp.int32)[:, None, None]
    idx_BTK = jnp.abs(jnp.asarray(idx_TK, jnp.int32))[None]
    idx_BTK = jnp.where(idx_BTK > last_B11, 2 * last_B11 - idx_BTK, idx_BTK)
    idx_BTK = jnp.clip(idx_BTK, 0, last_B11)
    frames = jax.vmap(lambda a_N, i_TK: a_N[i_TK])(audio_BN, idx_BTK)
    return jnp.where((audio_len_B > 0)[:, None, None], frames, 0.0)


def log_mel(audio_BN: Array, audio_len_B: Array, *, sample_rate: int, n_fft: int = 400,
            hop: int = 160, n_mels: int = 40, fmin: float = 20.0, fmax: float | None = None,
            htk: bool = False, floor: float = 1e-6) -> tuple[Array, Array]:
    """(log(mel power + floor) `[B, 1 + N // hop, n_mels]` float32, real frames `[B]` int32).

    Real frame t < 1 + audio_len // hop equals librosa's `melspectrogram(y[:audio_len], sr,
    n_fft, hop_length=hop, n_mels, fmin, fmax, htk, pad_mode='reflect')` + floor, logged.
    Frames past the real ones are set to log(floor), what silence gives.
    """
    audio_BN = jnp.asarray(audio_BN, jnp.float32)
    audio_len_B = jnp.asarray(audio_len_B, jnp.int32)
    frames_BTK = frame_audio(audio_BN, audio_len_B, n_fft, hop) * hann_window(n_fft)[None, None, :]
    spectrum_BTF = jnp.fft.rfft(frames_BTK, axis=-1)
    power_BTF = jnp.real(spectrum_BTF) ** 2 + jnp.imag(spectrum_BTF) ** 2
    bank_FM = jnp.asarray(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk))
    mel_BTM = jnp.einsum("btf,fm->btm", power_BTF, bank_FM, precision=jax.lax.Precision.HIGHEST)
    frame_len_B = num_frames(audio_len_B, hop)
    real_BT1 = (jnp.arange(frames_BTK.shape[1])[None, :] < frame_len_B[:, None])[..., None]
    features = jnp.log(jnp.where(real_BT1, mel_BTM, 0.0) + floor)
    return features.astype(jnp.float32), frame_len_B


def normalize_utterance(features_BTF: Array, frame_len_B: Array, eps: float = 1e-5) -> Array:
    """Per utterance and mel bin: (x - mean) / sqrt(var + eps) over real frames; padding -> 0."""
    real_BT1 = (jnp.arange(features_BTF.shape[1])[None, :] < frame_len_B[:, None])[..., None]
    count_B11 = jnp.maximum(frame_len_B, 1).astype(jnp.float32)[:, None, None]
    x = jnp.where(real_BT1, features_BTF.astype(jnp.float32), 0.0)
    mean_B1F = x.sum(axis=1, keepdims=True) / count_B11
    centred = jnp.where(real_BT1, x - mean_B1F, 0.0)
    var_B1F = (centred**2).sum(axis=1, keepdims=True) / count_B11
    return centred * jax.lax.rsqrt(var_B1F + eps)
