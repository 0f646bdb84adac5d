"""Transcripts of a CTC model on eval utterances, greedy and with prefix beam search.

The first `num_examples` eval utterances are decoded on the host from the model's per-frame
log-probabilities: greedy (best path) and CTC prefix beam search of width `beam`. Their
corpus CER and WER against the references (`dl_arch.tasks.error_rates`, as jiwer computes
them) are `eval/cer_beam`, `eval/wer_beam`, `eval/cer_greedy` and `eval/wer_greedy`; the
first `num_shown` reference / greedy / beam triples go to transcripts.txt (a Markdown table)
and all of them to transcripts.json.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.fields import Field
from dl_arch.data.speech_text import decode_ids
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.registry import register_evaluator
from dl_arch.tasks.error_rates import char_error_rate, word_error_rate
from dl_arch.tasks.speech_recognition import decode_batch


@register_evaluator("transcripts", fields={
    "num_examples": Field(64, "eval utterances transcribed for the host CER / WER", low=1),
    "num_shown": Field(10, "of those, reference / greedy / beam rows in transcripts.txt", low=0),
    "beam": Field(8, "prefix beam search width", low=1),
})
class Transcripts(Evaluator):
    """eval/{cer,wer}_{beam,greedy}, transcripts.txt and transcripts.json."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("log_probs_jit")

    def decode(self, ctx: EvalContext) -> dict[str, list[str]]:
        """References and greedy / beam transcripts of the first eval utterances."""
        n = self.settings.num_examples
        out: dict[str, list[str]] = {"ref": [], "greedy": [], "beam": []}
        for batch in ctx.eval_batches():
            keep = np.flatnonzero(np.asarray(batch["_mask"]) > 0)[: n - len(out["ref"])]
            log_probs, out_len = self.task.log_probs_jit(ctx.variables, batch["audio"],
                                                         batch["audio_len"])
            log_probs, out_len = np.asarray(log_probs)[keep], np.asarray(out_len)[keep]
            out["greedy"] += decode_batch(log_probs, out_len, 0)
            out["beam"] += decode_batch(log_probs, out_len, self.settings.beam)
            labels, label_len = np.asarray(batch["labels"]), np.asarray(batch["label_len"])
            out["ref"] += [decode_ids(labels[i][:label_len[i]]) for i in keep]
            if len(out["ref"]) >= n:
                break
        return out

    def __call__(self, ctx: EvalContext) -> Report:
        text = self.decode(ctx)
        scalars = {}
        for kind in ("beam", "greedy"):
            scalars[f"cer_{kind}"] = char_error_rate(text["ref"], text[kind])
            scalars[f"wer_{kind}"] = word_error_rate(text["ref"], text[kind])
        lines = [f"CER beam={scalars['cer_beam']:.4f} greedy={scalars['cer_greedy']:.4f}, "
                 f"WER beam={scalars['wer_beam']:.4f} greedy={scalars['wer_greedy']:.4f} on "
                 f"{len(text['ref'])} utterances (beam {self.settings.beam})", "",
                 "| reference | greedy | beam |", "|---|---|---|"]
        rows = list(zip(text["ref"], text["greedy"], text["beam"], strict=True))
        lines += [f"| {r} | {g} | {b} |" for r, g, b in rows[: self.settings.num_shown]]
        record = {"step": ctx.step, "beam_width": self.settings.beam, **scalars,
                  "examples": [{"reference": r, "greedy": g, "beam": b} for r, g, b in rows]}
        return Report(scalars=scalars, texts={"transcripts": "\n".join(lines)},
                      records={"transcripts": record})
