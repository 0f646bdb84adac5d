"""Exact match and F1 of an extractive QA model on the eval split, and sample answers.

Every eval batch is read again (`ctx.eval_batches()`, all windows of an example in one row);
the task's `answer_texts` picks the best span across each example's windows and cuts it
out of the passage, which, with the question and the gold answers, comes from the eval
source's `reference(example_id)`. `squad_metrics` scores the answers (normalised; the best
over several golds): `eval/exact_match` and `eval/f1`, in percent. The first `num_shown`
questions, with the passage, the golds and the answer, go to answers.txt.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator
from dl_arch.tasks.squad_metrics import best_over_golds, squad_scores


@register_evaluator("qa_answers", fields={
    "every_evals": every_evals(1),
    "num_examples": Field(0, "eval questions scored (0: the whole eval split)", low=0),
    "num_shown": Field(8, "of those, passage / question / gold / answer written to answers.txt",
                       low=0),
})
class QAAnswers(Evaluator):
    """eval/exact_match, eval/f1 and answers.txt."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("answer_texts")

    def answers(self, ctx: EvalContext) -> list[tuple[str, str, list[str], str]]:
        """(passage, question, golds, predicted answer) of the eval questions, in order."""
        from dl_arch.data.pipeline import make_source

        ds = self.config.dataset
        source = make_source(ds, ds.eval_split, self.config.seed)
        limit = self.settings.num_examples or len(source)
        out: list[tuple[str, str, list[str], str]] = []
        for batch in ctx.eval_batches():
            refs = [source.reference(int(i)) for i in np.asarray(batch["example_id"])]
            texts = self.task.answer_texts(ctx.variables, batch, [r[0] for r in refs])
            for row in np.flatnonzero(np.asarray(batch["_mask"]) > 0):
                out.append((*refs[row], texts[row]))
            if len(out) >= limit:
                break
        return out[:limit]

    def __call__(self, ctx: EvalContext) -> Report:
        rows = self.answers(ctx)
        scores = squad_scores([r[3] for r in rows], [r[2] for r in rows])
        lines = [f"exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} on "
                 f"{len(rows)} questions"]
        for passage, question, golds, answer in rows[: self.settings.num_shown]:
            em, f1 = best_over_golds(answer, golds)
            lines.append(f"passage: {passage}\nquestion: {question}\ngold: {' | '.join(golds)}\n"
                         f"answer: {answer}  (EM {em:.0f}, F1 {f1:.2f})\n")
        return Report(scalars=scores, texts={"answers": "\n".join(lines)})
