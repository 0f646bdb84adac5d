"""CTC loss against a brute-force sum over alignments and torch; decoders; error rates vs jiwer."""

from __future__ import annotations

import collections
import itertools

import chex
import jax
import jiwer
import numpy as np
import pytest
import torch

from dl_arch.tasks.ctc import (
    ctc_loss,
    greedy_decode,
    greedy_ids,
    labelling_log_prob,
    prefix_beam_search,
)
from dl_arch.tasks.error_rates import (
    batched_edit_distance,
    char_error_rate,
    edit_distance,
    error_counts,
    word_error_rate,
)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def collapse(path) -> tuple[int, ...]:
    """CTC's many-to-one map: merge repeats, then drop blanks (0)."""
    return tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c))


def labelling_probs(log_probs_TV: np.ndarray) -> dict[tuple[int, ...], float]:
    """Probability of every labelling: the sum over all V^T alignments that collapse to it."""
    probs = np.exp(log_probs_TV)
    out: dict[tuple[int, ...], float] = collections.defaultdict(float)
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        out[collapse(path)] += float(np.prod(probs[np.arange(len(path)), path]))
    return out


def ctc_forward_prob(log_probs_TV: np.ndarray, labels) -> float:
    """p(labels | x) by the forward recursion over the blank-extended label sequence."""
    probs = np.exp(log_probs_TV)
    ext = [0]
    for c in labels:
        ext += [c, 0]
    alpha = np.zeros(len(ext))
    alpha[0] = probs[0, 0]
    if len(ext) > 1:
        alpha[1] = probs[0, ext[1]]
    for t in range(1, len(probs)):
        new = alpha.copy()
        new[1:] += alpha[:-1]
        skip = np.array([s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2] for s in range(len(ext))])
        new[2:] += np.where(skip[2:], alpha[:-2], 0.0)
        alpha = new * probs[t, ext]
    return float(alpha[-1] + (alpha[-2] if len(ext) > 1 else 0.0))


# --- loss ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_ctc_loss_matches_brute_force_sum_over_alignments(seed):
    rng = np.random.default_rng(seed)
    batch, frames, vocab, max_labels = 5, 5, 3, 3
    logits = rng.normal(0, 1.5, size=(batch, frames, vocab)).astype(np.float32)
    out_len = np.array([5, 4, 3, 5, 1])
    label_len = np.array([2, 3, 1, 0, 1])
    labels = np.zeros((batch, max_labels), np.int32)
    for b, n in enumerate(label_len):
        labels[b, :n] = rng.integers(1, vocab, n)
    labels[1, :3] = [1, 2, 1]
    labels[3] = [2, 1, 0]  # entries past label_len are padding, whatever they hold
    labels[4, 1:] = [2, 2]
    logits[2, 3:] = 50.0 * rng.normal(size=(2, vocab))  # padding frames: must not matter
    loss = np.asarray(jax.jit(ctc_loss)(logits, out_len, labels, label_len))
    chex.assert_shape(loss, (batch,))
    for b in range(batch):
        lp = log_softmax(logits[b, :out_len[b]])
        ref = -np.log(labelling_probs(lp)[tuple(labels[b, :label_len[b]])])
        np.testing.assert_allclose(loss[b], ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(-np.log(ctc_forward_prob(lp, labels[b, :label_len[b]])), ref,
                                   rtol=1e-9)


def test_ctc_loss_matches_torch_with_mixed_lengths():
    rng = np.random.default_rng(7)
    batch, frames, vocab, max_labels = 8, 30, 7, 12
    logits = rng.normal(0, 2.0, size=(batch, frames, vocab)).astype(np.float32)
    out_len = rng.integers(12, frames + 1, batch)
    out_len[0] = frames
    label_len = np.array([rng.integers(0, min(n // 2, max_labels) + 1) for n in out_len])
    label_len[1] = max_labels
    out_len[1] = frames
    labels = np.zeros((batch, max_labels), np.int32)
    for b, n in enumerate(label_len):
        labels[b, :n] = rng.integers(1, vocab, n)
        labels[b, n:] = 0
    ours = np.asarray(jax.jit(ctc_loss)(logits, out_len, labels, label_len))
    log_probs = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1).transpose(0, 1)
    ref = torch.nn.functional.ctc_loss(log_probs, torch.tensor(labels, dtype=torch.long),
                                       torch.tensor(out_len), torch.tensor(label_len), blank=0,
                                       reduction="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    # gradients flow only into real frames
    grad = jax.jit(jax.grad(lambda x: ctc_loss(x, out_len, labels, label_len).sum()))(logits)
    for b, n in enumerate(out_len):
        np.testing.assert_array_equal(grad[b, n:], 0.0)


# --- decoding ------------------------------------------------------------------------------

def test_greedy_decode_collapses_repeats_drops_blanks_and_padding():
    path = [[1, 1, 0, 1, 2, 2, 0, 0, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [2, 2, 2, 2, 2, 2, 2, 2, 2, 2], [3, 0, 3, 3, 1, 2, 1, 2, 2, 1]]
    out_len = np.array([10, 10, 3, 7])
    logits = np.asarray(jax.nn.one_hot(np.array(path), 4)) * 5.0
    got = greedy_decode(logits, out_len)
    assert got == [[1, 1, 2, 3], [], [2], [3, 3, 1, 2, 1]]
    assert got == [list(collapse(p[:n])) for p, n in zip(path, out_len, strict=True)]
    ids, lengths = jax.jit(greedy_ids)(logits, out_len)
    chex.assert_shape(ids, (4, 10))
    np.testing.assert_array_equal(lengths, [4, 0, 1, 5])
    np.testing.assert_array_equal(ids[3], [3, 3, 1, 2, 1, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("seed", range(6))
def test_wide_prefix_beam_search_finds_most_probable_labelling(seed):
    rng = np.random.default_rng(seed)
    frames, vocab = int(rng.integers(1, 6)), 3
    lp = log_softmax(rng.normal(0, 1.5, size=(frames, vocab)))
    probs = labelling_probs(lp)
    best = max(probs, key=probs.get)
    for labels in list(probs)[:20]:  # the exact rescoring's forward pass, against brute force
        assert np.exp(labelling_log_prob(lp, list(labels))) == pytest.approx(probs[labels], rel=1e-9)
    found = prefix_beam_search(lp, beam=100)  # 63 prefixes of length <= 5 over 2 labels: exact
    assert probs[tuple(found)] == pytest.approx(probs[best], rel=1e-12)
    assert tuple(found) == best


def test_prefix_beam_search_never_worse_than_greedy():
    rng = np.random.default_rng(11)
    wins = 0
    for _ in range(40):
        frames, vocab = 12, 4
        # peaky, blank-heavy frames like a trained model's, plus ambiguous ones
        logits = rng.normal(0, 2.0, size=(frames, vocab))
        logits[:, 0] += rng.uniform(0, 2.0)
        lp = log_softmax(logits)
        greedy = greedy_decode(logits[None], np.array([frames]))[0]
        beam = prefix_beam_search(lp, beam=6)
        p_greedy, p_beam = ctc_forward_prob(lp, greedy), ctc_forward_prob(lp, beam)
        assert p_beam >= p_greedy * (1 - 1e-9)
        wins += p_beam > p_greedy * (1 + 1e-6)
    assert wins > 0  # and it sometimes finds a strictly better labelling


def test_prefix_beam_search_handles_repeats_and_accepts_logits():
    # frames a, blank, a -> "aa"; frames a, a -> "a"
    sharp = np.log(np.array([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]]))
    assert prefix_beam_search(sharp, beam=4) == [1, 1]
    assert prefix_beam_search(sharp[[0, 2]], beam=4) == [1]
    assert prefix_beam_search(sharp + 3.0, beam=4) == [1, 1]  # unnormalised rows
    assert prefix_beam_search(np.zeros((0, 3)), beam=4) == []


# --- error rates ---------------------------------------------------------------------------

def levenshtein_reference(a, b) -> int:
    """Textbook full-table dynamic programme."""
    d = np.zeros((len(a) + 1, len(b) + 1), int)
    d[:, 0], d[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return int(d[-1, -1])


def test_edit_distance_known_and_random():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance(["one", "two"], ["one", "too", "three"]) == 2
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 4, rng.integers(0, 12)).tolist()
        b = rng.integers(0, 4, rng.integers(0, 12)).tolist()
        assert edit_distance(a, b) == levenshtein_reference(a, b)


def test_batched_edit_distance_matches_numpy():
    rng = np.random.default_rng(1)
    batch, hyp_w, ref_w = 32, 9, 7
    hyp = rng.integers(1, 4, (batch, hyp_w))
    ref = rng.integers(1, 4, (batch, ref_w))
    hyp_len = rng.integers(0, hyp_w + 1, batch)
    ref_len = rng.integers(0, ref_w + 1, batch)
    got = np.asarray(jax.jit(batched_edit_distance)(hyp, hyp_len, ref, ref_len))
    want = [levenshtein_reference(h[:m], r[:n]) for h, m, r, n in zip(hyp, hyp_len, ref, ref_len,
                                                                         strict=True)]
    np.testing.assert_array_equal(got, want)
    edits, total = error_counts([r[:n].tolist() for r, n in zip(ref, ref_len, strict=True)],
                                [h[:m].tolist() for h, m in zip(hyp, hyp_len, strict=True)])
    assert (edits, total) == (sum(want), int(ref_len.sum()))


HAND_WRITTEN = [
    (["the cat sat on the mat"], ["the cat sat on mat"]),
    (["one two three", "four five"], ["one too three four", "five"]),
    (["hello world"], ["hello  world "]),
    (["abc", "de f"], ["", "de f"]),  # an empty hypothesis: all deletions
    (["seven", "nine two"], ["", ""]),
    (["", "a b c"], ["x", "a b"]),  # an empty reference inside the corpus
    (["it's"], ["its"]),
]


@pytest.mark.parametrize("refs,hyps", HAND_WRITTEN)
def test_error_rates_match_jiwer_hand_written(refs, hyps):
    assert char_error_rate(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), rel=1e-12)
    assert word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), rel=1e-12)


def test_error_rates_match_jiwer_random_and_empty_edge_cases():
    rng = np.random.default_rng(3)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

    def sentence(lo: int) -> str:
        return " ".join(rng.choice(words, rng.integers(lo, 7)))

    for _ in range(30):
        n = int(rng.integers(1, 6))
        refs = [sentence(1) for _ in range(n)]
        hyps = [sentence(0) for _ in range(n)]
        assert char_error_rate(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), rel=1e-12)
        assert word_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), rel=1e-12)
    # a single string, and an all-empty reference (jiwer's rate is then the insertion count)
    assert char_error_rate("abc", "") == jiwer.cer("abc", "") == 1.0
    assert word_error_rate("", "x y") == jiwer.wer("", "x y") == 2.0
    assert char_error_rate("", "abc") == jiwer.cer("", "abc") == 3.0
    assert char_error_rate(["", ""], ["", ""]) == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        char_error_rate(["a", "b"], ["a"])
