"""ROUGE-1/2/L F-measures through Google's `rouge-score` package, and the lead baseline.

Scores are the mean over examples of each pair's F-measure, times 100 (the convention of
summarization papers). Text is tokenised by rouge-score itself (lowercase, every run of
non-alphanumeric characters a separator, Porter stemming of words longer than 3 letters
when `stem`), so the punctuation tokens of the procedural reports do not count.
The lead baseline summarises a document by its first k sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _scorer(stem: bool):
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise ImportError("ROUGE needs the rouge-score package: pip install rouge-score") from e
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem)


def rouge_tokens(text: str, stem: bool = True) -> list[str]:
    """The tokens rouge-score compares for `text`."""
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=stem).tokenize(text)


def rouge(predictions: Sequence[str], references: Sequence[str], stem: bool = True
          ) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (0-100) of `predictions` against their `references`."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return {t: 0.0 for t in ROUGE_TYPES}
    scorer = _scorer(stem)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)  # rouge-score takes (target, prediction)
        for t in ROUGE_TYPES:
            totals[t] += scores[t].fmeasure
    return {t: 100.0 * s / len(predictions) for t, s in totals.items()}


def sentences(text: str) -> list[str]:
    """`text` split after each '.', '!' or '?' that a space follows."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def lead(text: str, k: int) -> str:
    """The first `k` sentences of `text`: the lead baseline's summary."""
    return " ".join(sentences(text)[:k])
