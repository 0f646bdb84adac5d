"""ROUGE-1/2/L of a summarization model's beam and greedy summaries, beside the lead baseline.

The first `num_examples` eval documents are summarised as the `translations` evaluator
decodes them (the task's beam width and length penalty); rouge-score compares each
summary with its reference (`eval/rouge1_beam`, `eval/rougeL_greedy`, ...). The lead
baseline takes the first `lead_sentences` sentences of each document as its summary and is
scored the same way (`eval/rougeL_lead`, ...): a model that does not beat it has learned
nothing a copy of the opening would not give. summaries.txt holds the first `num_shown`
documents with their reference, beam and lead summaries.
"""

from __future__ import annotations

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Report, every_evals
from dl_arch.evaluators.translations import Translations
from dl_arch.registry import register_evaluator
from dl_arch.tasks.rouge import lead, rouge


@register_evaluator("summaries", fields={
    "every_evals": every_evals(1),
    "num_examples": Field(256, "eval documents summarised for ROUGE", low=1),
    "num_shown": Field(5, "of those, documents written to summaries.txt with their reference, "
                          "beam and lead summaries", low=0),
    "lead_sentences": Field(3, "the lead baseline's summary: the first k sentences of the "
                               "document (3 for CNN/DailyMail, 1 for XSum)", low=1),
    "stem": Field(True, "Porter-stem words before ROUGE matches them (rouge-score's "
                        "use_stemmer)"),
})
class Summaries(Translations):
    """eval/rouge{1,2,L}_{beam,greedy,lead} and summaries.txt."""

    def __call__(self, ctx: EvalContext) -> Report:
        text = self.decode(ctx)
        k = self.settings.lead_sentences
        text["lead"] = [lead(doc, k) for doc in text["src"]]
        scalars = {}
        for kind in ("beam", "greedy", "lead"):
            scores = rouge(text[kind], text["ref"], stem=self.settings.stem)
            scalars.update({f"{name}_{kind}": value for name, value in scores.items()})
        lines = [f"ROUGE-1/2/L on {len(text['src'])} documents: " + "; ".join(
            f"{kind} " + "/".join(f"{scalars[f'{n}_{kind}']:.1f}" for n in ("rouge1", "rouge2",
                                                                           "rougeL"))
            for kind in ("beam", "greedy", "lead"))]
        for i in range(min(self.settings.num_shown, len(text["src"]))):
            lines.append(f"document: {text['src'][i]}\nreference: {text['ref'][i]}\n"
                         f"beam: {text['beam'][i]}\nlead-{k}: {text['lead'][i]}\n")
        return Report(scalars=scalars, texts={"summaries": "\n".join(lines)})
