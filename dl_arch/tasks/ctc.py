"""CTC: the loss (through optax), greedy decoding and prefix beam search.

Label id 0 is the blank (and the label padding). The loss and the greedy ids are jittable and
honour per-example lengths; `greedy_decode` and `prefix_beam_search` return python lists for
the host-side error rates.
"""

from __future__ import annotations

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
BLANK = 0


def length_paddings(lengths_B: Array, size: int) -> Array:
    """`[B, size]` float32: 1.0 at positions >= the example's length (optax's padding format)."""
    return (jnp.arange(size)[None, :] >= jnp.asarray(lengths_B)[:, None]).astype(jnp.float32)


def ctc_loss(logits: Array, out_len: Array, labels: Array, label_len: Array) -> Array:
    """Per-example negative log-likelihood `[B]` of `labels [B, L]` under `logits [B, T, V]`.

    Frames t >= out_len and labels past label_len are padding. An example whose labels cannot
    fit in its frames gets a loss near 1e5 (optax's log epsilon) instead of infinity.
    """
    logits = jnp.asarray(logits, jnp.float32)
    return optax.ctc_loss(logits, length_paddings(out_len, logits.shape[1]),
                          jnp.asarray(labels, jnp.int32), length_paddings(label_len, labels.shape[1]),
                          blank_id=BLANK)


def greedy_ids(logits: Array, out_len: Array) -> tuple[Array, Array]:
    """Best-path labellings as fixed-size arrays (jittable): (ids `[B, T]` 0-padded, lengths `[B]`).

    Argmax per real frame, repeats collapsed, then blanks dropped.
    """
    best_BT = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    frames = best_BT.shape[1]
    best_BT = jnp.where(jnp.arange(frames)[None, :] < jnp.asarray(out_len)[:, None], best_BT, BLANK)
    prev_BT = jnp.pad(best_BT[:, :-1], ((0, 0), (1, 0)), constant_values=BLANK)
    keep_BT = (best_BT != BLANK) & (best_BT != prev_BT)
    slot_BT = jnp.cumsum(keep_BT, axis=1) - 1
    # kept ids go to their slot; dropped ones to a spare column past the end, then cut off
    slot_BT = jnp.where(keep_BT, slot_BT, frames)
    ids = jnp.zeros((best_BT.shape[0], frames + 1), jnp.int32)
    ids = jax.vmap(lambda row, s, v: row.at[s].set(v))(ids, slot_BT, best_BT)
    return ids[:, :frames], keep_BT.sum(axis=1).astype(jnp.int32)


def greedy_decode(logits: Array, out_len: Array) -> list[list[int]]:
    """Best-path labelling of each example, as lists of ids (blanks and repeats removed)."""
    ids, lengths = jax.device_get(greedy_ids(logits, out_len))
    return [row[:n].tolist() for row, n in zip(ids, lengths, strict=True)]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def labelling_log_prob(log_probs_TV: np.ndarray, labels: list[int]) -> float:
    """Exact log p(labels | frames): the CTC forward recursion over blank-interleaved labels."""
    log_probs_TV = _log_softmax(log_probs_TV)
    ext = [BLANK]
    for c in labels:
        ext += [c, BLANK]
    if len(log_probs_TV) == 0:
        return 0.0 if not labels else -math.inf
    ext_arr = np.array(ext)
    # a label may skip the blank before it unless it repeats the label two states back
    can_skip = np.zeros(len(ext), bool)
    can_skip[2:] = (ext_arr[2:] != BLANK) & (ext_arr[2:] != ext_arr[:-2])
    alpha = np.full(len(ext), -np.inf)
    alpha[:2] = log_probs_TV[0, ext_arr[:2]]
    for row in log_probs_TV[1:]:
        from_prev = np.full_like(alpha, -np.inf)
        from_prev[1:] = alpha[:-1]
        from_skip = np.full_like(alpha, -np.inf)
        from_skip[2:] = np.where(can_skip[2:], alpha[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, from_prev), from_skip) + row[ext_arr]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(ext) > 1 else alpha[-1])


def prefix_beam_search(log_probs_TV: np.ndarray, beam: int) -> list[int]:
    """The most probable labelling CTC prefix beam search finds over `[T, V]` real frames.

    Each prefix keeps two log-probabilities: of the paths that produced it and end in a blank,
    and of those that end in its last label (so a repeated label needs a blank in between).
    After each frame the `beam` prefixes of highest total probability survive. The survivors
    and the greedy labelling are then rescored exactly (pruning only lowers a prefix's score),
    so the answer is never less probable than greedy decoding's, and with a beam at least as
    large as the number of prefixes it is the most probable labelling. Rows are log-softmaxed
    again, so logits work too.
    """
    log_probs_TV = _log_softmax(log_probs_TV)
    neg_inf = -math.inf
    # prefix -> (log p ending in blank, log p ending in its last label)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg_inf)}
    for row in log_probs_TV.tolist():
        nxt: dict[tuple[int, ...], list[float]] = collections.defaultdict(lambda: [neg_inf, neg_inf])
        for prefix, (p_blank, p_label) in beams.items():
            p_total = _logadd(p_blank, p_label)
            stay = nxt[prefix]
            stay[0] = _logadd(stay[0], p_total + row[BLANK])
            last = prefix[-1] if prefix else None
            for c in range(len(row)):
                if c == BLANK:
                    continue
                ext = nxt[prefix + (c,)]
                if c == last:
                    # a repeat extends only across a blank; without one it stays the same prefix
                    ext[1] = _logadd(ext[1], p_blank + row[c])
                    stay[1] = _logadd(stay[1], p_label + row[c])
                else:
                    ext[1] = _logadd(ext[1], p_total + row[c])
        ranked = sorted(nxt.items(), key=lambda kv: -_logadd(*kv[1]))
        beams = {prefix: (pb, pl) for prefix, (pb, pl) in ranked[:beam]}
    best = _best_path(log_probs_TV)
    candidates = set(beams) | {tuple(best)}
    return list(max(sorted(candidates), key=lambda p: labelling_log_prob(log_probs_TV, list(p))))


def _best_path(log_probs_TV: np.ndarray) -> list[int]:
    """Greedy labelling of one utterance's real frames, on the host."""
    best = np.argmax(log_probs_TV, axis=-1) if len(log_probs_TV) else np.zeros(0, int)
    return [int(c) for i, c in enumerate(best) if c != BLANK and (i == 0 or best[i - 1] != c)]
