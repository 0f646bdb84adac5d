"""Log-mel features against librosa, frame counts, padding, normalisation and SpecAugment."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from dl_arch.models.layers.log_mel import log_mel, mel_filterbank, normalize_utterance, num_frames
from dl_arch.models.layers.spec_augment import spec_augment

SR = 16000
FLOOR = 1e-6


def librosa_mel(y: np.ndarray, n_fft: int, hop: int, n_mels: int, fmin: float = 20.0,
                fmax: float | None = None, htk: bool = False, sr: int = SR) -> np.ndarray:
    """`[T, n_mels]` mel power of librosa with the conventions log_mel documents."""
    return librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin,
        fmax=fmax, htk=htk, pad_mode="reflect").T


def signals(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    chirp = np.sin(2 * np.pi * (200 * t + 3000 * t**2))
    return {"noise": 0.3 * rng.normal(size=n),
            "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
            "tones_chirp": 0.2 * np.sin(2 * np.pi * 1234.5 * t) + 0.3 * chirp}


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax",
                         [(16000, 400, 40, 20.0, None), (16000, 512, 80, 0.0, 7600.0),
                          (22050, 1024, 64, 30.0, 8000.0)])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk)
    np.testing.assert_allclose(ours.T, ref, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("n_fft,hop,n_mels,htk", [(400, 160, 40, False), (512, 128, 80, False),
                                                  (256, 100, 23, True), (400, 160, 80, True)])
def test_log_mel_matches_librosa(n_fft, hop, n_mels, htk):
    """exp(ours) = librosa mel power + floor to 1e-4 relative (1e-9 absolute: float32 FFT)."""
    for name, y in signals(8000).items():
        feats, frame_len = log_mel(y[None].astype(np.float32), np.array([len(y)]), sample_rate=SR,
                                   n_fft=n_fft, hop=hop, n_mels=n_mels, htk=htk, floor=FLOOR)
        ref = librosa_mel(y, n_fft, hop, n_mels, htk=htk)
        chex.assert_shape(feats, (1, ref.shape[0], n_mels))
        assert int(frame_len[0]) == ref.shape[0], name
        np.testing.assert_allclose(np.exp(np.asarray(feats[0], np.float64)), ref + FLOOR,
                                   rtol=1e-4, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("hop", [100, 160, 128])
def test_frame_len_is_librosa_frame_count(hop):
    lengths = np.array([2, 99, 100, 399, 400, 1600, 1601, 4799, 4800])
    ours = np.asarray(num_frames(jnp.asarray(lengths), hop))
    for n, f in zip(lengths, ours, strict=True):
        y = np.zeros(n, np.float32)
        ref = librosa.stft(y, n_fft=2, hop_length=hop, center=True).shape[1]  # count needs no n_fft
        assert f == ref == num_frames(int(n), hop)
    assert int(num_frames(jnp.asarray(0), hop)) == 0 and num_frames(1, hop) == 1


def test_padded_batch_real_frames_equal_unpadded_librosa():
    """Each utterance is reflected at its own end: every real frame equals librosa on y[:L].

    So no real frame (not even the last ones, whose windows reach past L) changes with the
    padding, whatever the padding holds; frames past frame_len are log(floor).
    """
    n_fft, hop, n_mels = 400, 160, 40
    rng = np.random.default_rng(1)
    lengths = np.array([4000, 2345, 801, 4000 - 17])
    audio = rng.normal(size=(4, 4000)).astype(np.float32) * 0.2
    garbage = audio.copy()
    for b, n in enumerate(lengths):
        audio[b, n:] = 0.0
        garbage[b, n:] = rng.normal(size=4000 - n) * 5.0
    feats, frame_len = log_mel(audio, lengths, sample_rate=SR, n_fft=n_fft, hop=hop, n_mels=n_mels)
    feats_g, _ = log_mel(garbage, lengths, sample_rate=SR, n_fft=n_fft, hop=hop, n_mels=n_mels)
    longer, _ = log_mel(np.pad(audio, ((0, 0), (0, 1000))), lengths, sample_rate=SR, n_fft=n_fft,
                        hop=hop, n_mels=n_mels)
    np.testing.assert_array_equal(feats, feats_g)
    np.testing.assert_allclose(longer[:, :feats.shape[1]], feats, atol=1e-6)
    for b, n in enumerate(lengths):
        f = int(frame_len[b])
        ref = librosa_mel(audio[b, :n], n_fft, hop, n_mels)
        assert f == ref.shape[0]
        np.testing.assert_allclose(np.exp(np.asarray(feats[b, :f], np.float64)), ref + FLOOR,
                                   rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(feats[b, f:], np.log(FLOOR), rtol=1e-6)


def test_log_mel_jits_and_is_batched():
    y = signals(3200)["tones_chirp"].astype(np.float32)
    audio = np.stack([y, np.pad(y[:2000], (0, 1200))])
    lengths = np.array([3200, 2000])
    fn = jax.jit(lambda a, n: log_mel(a, n, sample_rate=SR, n_mels=80))
    jitted, frame_len = fn(audio, lengths)
    eager, _ = log_mel(audio, lengths, sample_rate=SR, n_mels=80)
    chex.assert_trees_all_close(jitted, eager, atol=1e-5)
    chex.assert_type(jitted, jnp.float32)
    chex.assert_type(frame_len, jnp.int32)
    np.testing.assert_array_equal(frame_len, [21, 13])


def test_normalize_utterance_matches_numpy():
    rng = np.random.default_rng(2)
    feats = rng.normal(3.0, 2.0, size=(3, 12, 5)).astype(np.float32)
    frame_len = np.array([12, 7, 1])
    out = np.asarray(normalize_utterance(jnp.asarray(feats), jnp.asarray(frame_len), eps=1e-5))
    for b, f in enumerate(frame_len):
        x = feats[b, :f].astype(np.float64)
        ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
        np.testing.assert_allclose(out[b, :f], ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(out[b, f:], 0.0)
    # padded frames' values never reach the statistics
    feats[1, 7:] = 1e6
    np.testing.assert_array_equal(normalize_utterance(jnp.asarray(feats), jnp.asarray(frame_len)),
                                  out)


# --- SpecAugment -------------------------------------------------------------------------

@functools.cache
def _jitted_spec_augment(**kw):
    return jax.jit(functools.partial(spec_augment, **kw))


def _masked(seed: int, feats: np.ndarray, frame_len: np.ndarray, **kw) -> np.ndarray:
    return np.asarray(_jitted_spec_augment(**kw)(jax.random.key(seed), feats, frame_len))


def test_spec_augment_masks_only_real_frames_within_bounds():
    b, t, f = 6, 50, 20
    feats = np.random.default_rng(3).uniform(1.0, 2.0, size=(b, t, f)).astype(np.float32)
    frame_len = np.array([50, 30, 9, 1, 0, 44])
    kw = dict(freq_masks=2, freq_width=5, time_masks=3, time_width=7)
    for seed in range(20):
        out = _masked(seed, feats, frame_len, **kw)
        zero = out == 0.0
        for i, n in enumerate(frame_len):
            # padding frames untouched; unmasked values unchanged
            np.testing.assert_array_equal(out[i, n:], feats[i, n:])
            np.testing.assert_array_equal(out[i][~zero[i]], feats[i][~zero[i]])
            if n == 0:
                continue
            # a masked cell lies in a fully masked mel column or a fully masked real frame
            cols = zero[i, :n].all(axis=0)
            rows = zero[i, :n].all(axis=1)
            np.testing.assert_array_equal(zero[i, :n], cols[None, :] | rows[:, None])
            # freq masks cover at most freq_masks * freq_width bins (a union of that many runs)
            # (a fully masked utterance shows every column and row masked: nothing to count)
            if not rows.all():
                assert cols.sum() <= 2 * 5 and _runs(cols) <= 2
            if not cols.all():
                assert rows.sum() <= 3 * 7 and _runs(rows) <= 3


def _runs(flags: np.ndarray) -> int:
    """Number of maximal runs of True."""
    return int(np.sum(flags & ~np.concatenate([[False], flags[:-1]])))


def test_spec_augment_is_deterministic_and_random_across_keys():
    feats = np.random.default_rng(4).uniform(1.0, 2.0, size=(4, 40, 16)).astype(np.float32)
    frame_len = np.array([40, 33, 20, 12])
    kw = dict(freq_masks=2, freq_width=4, time_masks=2, time_width=6)
    a = _masked(7, feats, frame_len, **kw)
    np.testing.assert_array_equal(a, _masked(7, feats, frame_len, **kw))
    eager = spec_augment(jax.random.key(7), jnp.asarray(feats), jnp.asarray(frame_len), **kw)
    np.testing.assert_array_equal(a, eager)
    patterns = {(_masked(s, feats, frame_len, **kw) == 0).tobytes() for s in range(10)}
    assert len(patterns) > 5


def test_spec_augment_single_mask_width_reaches_but_never_exceeds_bound():
    feats = np.random.default_rng(6).uniform(1.0, 2.0, size=(1, 40, 16)).astype(np.float32)
    frame_len = np.array([40])
    freq = [_longest_run((_masked(s, feats, frame_len, freq_masks=1, freq_width=4, time_masks=0,
                                  time_width=0)[0] == 0).all(0)) for s in range(60)]
    time = [_longest_run((_masked(s, feats, frame_len, freq_masks=0, freq_width=0, time_masks=1,
                                  time_width=6)[0] == 0).all(1)) for s in range(60)]
    assert max(freq) == 4 and min(freq) == 0
    assert max(time) == 6 and min(time) == 0


def _longest_run(flags: np.ndarray) -> int:
    best = cur = 0
    for v in flags:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


def test_spec_augment_zero_masks_is_identity():
    feats = np.random.default_rng(5).normal(size=(2, 10, 8)).astype(np.float32)
    out = _masked(0, feats, np.array([10, 6]), freq_masks=0, freq_width=3, time_masks=0, time_width=3)
    np.testing.assert_array_equal(out, feats)
