"""Exact match and F1 of extractive question answering, by the SQuAD v1.1 definition.

Both compare answers after normalisation: lowercase, punctuation removed, the articles
"a", "an", "the" removed, whitespace collapsed. F1 is the harmonic mean of precision and
recall over the normalised words (counted with multiplicity); a question with several
gold answers scores the best of them. Scores are fractions in [0, 1] per question; the
reported figures are their means times 100, as in the SQuAD evaluation script. (Two
answers that both normalise to nothing have F1 1, as in the SQuAD 2.0 script; v1.1's gave 0,
a case its data never meets.)
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation out, articles out, runs of whitespace to one space."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Word-overlap F1 of the normalised strings (1.0 when both normalise to nothing)."""
    pred_words = normalize_answer(prediction).split()
    gold_words = normalize_answer(gold).split()
    if not pred_words or not gold_words:
        return float(pred_words == gold_words)
    common = sum((collections.Counter(pred_words) & collections.Counter(gold_words)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_words), common / len(gold_words)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of one question: the maximum of each over its gold answers."""
    if not golds:
        raise ValueError("a question needs at least one gold answer to be scored")
    return (max(exact_match(prediction, g) for g in golds),
            max(f1(prediction, g) for g in golds))


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """{'exact_match', 'f1'} in percent over questions (prediction i against golds[i])."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    pairs = [best_over_golds(p, g) for p, g in zip(predictions, golds, strict=True)]
    n = len(pairs)
    return {"exact_match": 100.0 * sum(e for e, _ in pairs) / n,
            "f1": 100.0 * sum(f for _, f in pairs) / n}
