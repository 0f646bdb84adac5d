"""Edit distance and corpus-level character and word error rates, as jiwer computes them.

A rate is the total edits (substitutions + deletions + insertions of the cheapest alignment)
over the total reference length, summed over the corpus, not averaged per utterance. Like
jiwer, characters are those of the text with leading and trailing whitespace stripped, and
words are the text split on whitespace; when every reference is empty the rate is the raw
number of inserted units (jiwer's convention), so a silent corpus decoded as silence scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning a into b."""
    a, b = list(a), list(b)
    if not a or not b:
        return len(a) + len(b)
    cols = np.arange(len(b) + 1)
    prev = cols.copy()  # row 0: j insertions
    for i, x in enumerate(a, start=1):
        subst = prev[:-1] + np.fromiter((x != y for y in b), np.int64, len(b))
        diag_or_up = np.concatenate([[i], np.minimum(subst, prev[1:] + 1)])
        # insertions run along the row: cur[j] = min_k<=j (diag_or_up[k] + j - k)
        prev = np.minimum.accumulate(diag_or_up - cols) + cols
    return int(prev[-1])


def batched_edit_distance(hyp_BT: jax.Array, hyp_len_B: jax.Array, ref_BL: jax.Array,
                          ref_len_B: jax.Array) -> jax.Array:
    """`[B]` int32 Levenshtein distances between id rows of the given lengths (jittable).

    The same row recurrence as `edit_distance`, scanned over hypothesis positions, so eval
    steps can sum character edits on the device.
    """
    hyp_BT, ref_BL = jnp.asarray(hyp_BT, jnp.int32), jnp.asarray(ref_BL, jnp.int32)
    hyp_len_B, ref_len_B = jnp.asarray(hyp_len_B, jnp.int32), jnp.asarray(ref_len_B, jnp.int32)
    batch, width = ref_BL.shape
    cols = jnp.arange(width + 1, dtype=jnp.int32)[None, :]
    row0 = jnp.broadcast_to(cols, (batch, width + 1))

    def pick(row_BJ):
        return jnp.take_along_axis(row_BJ, ref_len_B[:, None], axis=1)[:, 0]

    def step(carry, inputs):
        prev_BJ, answer_B = carry
        i, tok_B = inputs
        subst = prev_BJ[:, :-1] + (tok_B[:, None] != ref_BL).astype(jnp.int32)
        first = jnp.full((batch, 1), i, jnp.int32)
        diag_or_up = jnp.concatenate([first, jnp.minimum(subst, prev_BJ[:, 1:] + 1)], axis=1)
        cur_BJ = jax.lax.cummin(diag_or_up - cols, axis=1) + cols
        answer_B = jnp.where(hyp_len_B == i, pick(cur_BJ), answer_B)
        return (cur_BJ, answer_B), None

    steps = (jnp.arange(1, hyp_BT.shape[1] + 1, dtype=jnp.int32), hyp_BT.T)
    (_, answer_B), _ = jax.lax.scan(step, (row0, pick(row0)), steps)
    return answer_B


def _rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    total = sum(len(r) for r in refs)
    return float(edits) if total == 0 else edits / total


def _as_list(texts: str | Sequence[str]) -> Sequence[str]:
    return [texts] if isinstance(texts, str) else texts


def char_error_rate(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Total character edits / total reference characters (spaces count, outer whitespace not)."""
    return _rate([r.strip() for r in _as_list(refs)], [h.strip() for h in _as_list(hyps)])


def word_error_rate(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Total word edits / total reference words (words split on whitespace)."""
    return _rate([r.split() for r in _as_list(refs)], [h.split() for h in _as_list(hyps)])


def error_counts(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> tuple[int, int]:
    """(total edits, total reference length) over pairs of id sequences: summable across batches."""
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    return edits, sum(len(r) for r in refs)
