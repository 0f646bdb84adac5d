"""Text a language model writes, continuing an eval example or a given prompt.

The end-of-run `samples.txt` of the language-model tasks (`language_model`, `causal_lm`):
the task's own generator (recurrent state, KV cache or the whole buffer re-read) samples with
the temperature, top-k and top-p of `config.text_samples`, as `launch.py --sample` does with
`config.sample`. Prompts are encoded and samples decoded by the task (`encode_text`,
`decode_tokens`): byte values, or the run's tokenizer (`config.dataset.tokenizer=hf:<folder>`,
an imported checkpoint's own), the whole sequence at once so a word split at the prompt's end
reads right.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report
from dl_arch.registry import register_evaluator
from dl_arch.tasks.generation import SAMPLE_FIELDS, sample_tokens


@register_evaluator("text_samples", fields={
    **{k: SAMPLE_FIELDS[k] for k in ("num_samples", "temperature", "top_k", "top_p", "seed")},
    "length": Field(200, "tokens (bytes for byte-level models) generated per sample", low=1),
    "prompt": Field("", "text the samples continue ('': the first prompt_length tokens of "
                        "the first eval example)"),
    "prompt_length": Field(32, "prompt='': tokens of the eval example the samples continue",
                           low=1),
})
class TextSamples(Evaluator):
    """samples.txt: `num_samples` continuations of the prompt, each under a header line."""

    def __init__(self, config: ml_collections.ConfigDict, task: Any):
        super().__init__(config, task)
        self.needs("generate", "byte_vocabulary", "encode_text", "decode_tokens")
        if getattr(task, "tokenizer", None) is None and not task.byte_vocabulary():
            raise ConfigError(f"config.evaluators lists 'text_samples', which prints bytes, "
                              f"but config.model.vocab_size={task.model.vocab_size} < 256: "
                              f"drop it from config.evaluators")

    def prompt_tokens(self, batch: dict[str, Any]) -> np.ndarray:
        """The prompt as tokens (P,): the field's text encoded by the task, else the head of
        the first eval example."""
        if self.settings.prompt:
            return np.asarray(self.task.encode_text(self.settings.prompt), np.int32)
        return np.asarray(batch["inputs"])[0, : self.settings.prompt_length].astype(np.int32)

    def __call__(self, ctx: EvalContext) -> Report:
        s = self.settings
        prompt = self.prompt_tokens(ctx.batch)
        out, _ = sample_tokens(self.task.generate, ctx.variables["params"], prompt, s)
        texts = [f"----- sample {i} (temperature={s.temperature}, top_k={s.top_k}, "
                 f"top_p={s.top_p}) -----\n"
                 f"{self.task.decode_tokens(np.concatenate([prompt, np.asarray(row)]))}"
                 for i, row in enumerate(out)]
        return Report(texts={"samples": "\n".join(texts)})
