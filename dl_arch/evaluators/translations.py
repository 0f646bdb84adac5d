"""Corpus BLEU of a translation model on eval sentences, with greedy and with beam search.

The first `num_examples` eval sentences are decoded on the KV cache by the task's
`translate` (beam width and length penalty of `config.task`); sacrebleu scores them
against the references (`eval/bleu_beam`, `eval/bleu_greedy`), and the first
`num_shown` source / reference / beam hypothesis triples go to translations.txt.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.registry import register_evaluator


@register_evaluator("translations", fields={
    "every_evals": every_evals(1),
    "num_examples": Field(256, "eval sentences translated for BLEU", low=1),
    "num_shown": Field(10, "of those, source / reference / hypothesis triples written to "
                           "translations.txt", low=0),
})
class Translations(Evaluator):
    """eval/bleu_beam, eval/bleu_greedy and translations.txt."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("translate", "tokenizer")

    def decode(self, ctx: EvalContext) -> dict[str, list[str]]:
        """Sources, references and beam / greedy hypotheses of the first eval sentences."""
        n = self.settings.num_examples
        out: dict[str, list[str]] = {"src": [], "ref": [], "beam": [], "greedy": []}
        params, tok = ctx.variables["params"], self.task.tokenizer
        for batch in ctx.eval_batches():
            keep = np.flatnonzero(np.asarray(batch["_mask"]) > 0)[: n - len(out["src"])]
            source = np.asarray(batch["inputs"])  # the whole batch: one compiled shape
            for kind in ("beam", "greedy"):
                texts = self.task.translate(params, source, beam=kind == "beam")
                out[kind] += [texts[i] for i in keep]
            out["src"] += [tok.decode(source[i]) for i in keep]
            out["ref"] += [tok.decode(np.asarray(batch["targets"])[i]) for i in keep]
            if len(out["src"]) >= n:
                break
        return out

    def __call__(self, ctx: EvalContext) -> Report:
        import sacrebleu

        text = self.decode(ctx)
        bleu = {f"bleu_{kind}": sacrebleu.corpus_bleu(text[kind], [text["ref"]]).score
                for kind in ("beam", "greedy")}
        lines = [f"BLEU beam={bleu['bleu_beam']:.2f} greedy={bleu['bleu_greedy']:.2f} "
                 f"on {len(text['src'])} sentences"]
        for src, ref, hyp in list(zip(text["src"], text["ref"], text["beam"],
                                      strict=True))[: self.settings.num_shown]:
            lines.append(f"src: {src}\nref: {ref}\nhyp: {hyp}\n")
        return Report(scalars=bleu, texts={"translations": "\n".join(lines)})
