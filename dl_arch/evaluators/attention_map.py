"""Where an attention encoder-decoder looks: greedy-decode attention weights as heat maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from dl_arch.config.fields import Field
from dl_arch.evaluators.base import EvalContext, Evaluator, Report, every_evals
from dl_arch.evaluators.figures import figure_image, pyplot
from dl_arch.registry import register_evaluator


def token_labels(ids: Any, charset: str, pad: int, bos: int, eos: int) -> list[str]:
    """Tick labels of a token sequence up to its first PAD: id 3+i is charset[i] when a
    charset is given, BOS/EOS are <s> and </s>, any other id is <id>."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == pad:
            break
        if charset and 3 <= i < 3 + len(charset):
            out.append(charset[i - 3])
        else:
            out.append({bos: "<s>", eos: "</s>"}.get(i, f"<{i}>"))
    return out


def attention_image(attn_BTS: np.ndarray, sources: list[list[str]], outputs: list[list[str]],
                    title: str) -> np.ndarray:
    """One heat map per example (output token x source token), labelled (RGB uint8)."""
    n = len(sources)
    plt = pyplot()
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), dpi=100, squeeze=False)
    for i, ax in enumerate(axes[0]):
        src, out = sources[i], outputs[i]
        rows, cols = max(len(out), 1), max(len(src), 1)  # an untrained decoder may emit PAD first
        ax.imshow(attn_BTS[i, :rows, :cols], cmap="viridis", aspect="auto", vmin=0)
        ax.set_xticks(range(len(src)), src, fontsize=7)
        ax.set_yticks(range(len(out)), out, fontsize=7)
        ax.set_xlabel("source")
        ax.set_ylabel("output (greedy)")
    fig.suptitle(title)
    return figure_image(fig)


@register_evaluator("attention_map", fields={
    "every_evals": every_evals(1),
    "num_examples": Field(3, "eval examples drawn (one heat map each)", low=1),
    "charset": Field("", "characters of token ids 3, 4, ... for the tick labels ('': the "
                         "ids)"),
})
class AttentionMap(Evaluator):
    """attention.png: the attention weights of the greedy decodes of the first eval examples
    (a model with a `greedy` method returning (tokens, attention))."""

    def __call__(self, ctx: EvalContext) -> Report:
        self.needs("model")
        model, charset = self.task.model, self.settings.charset
        real = np.asarray(ctx.batch["_mask"]) > 0
        n = self.settings.num_examples
        src = np.asarray(ctx.batch["inputs"])[real][:n]
        lens = np.asarray(ctx.batch["input_lengths"])[real][:n]
        tokens, attn = model.apply({"params": ctx.variables["params"]}, src, lens,
                                   np.asarray(ctx.batch["targets"]).shape[1], method="greedy")
        label = lambda ids: token_labels(ids, charset, model.pad_id, model.bos_id, model.eos_id)
        sources = [label(src[i, :lens[i]]) for i in range(len(src))]
        outputs = [label(t) for t in np.asarray(tokens)]
        title = f"{self.config.model.name}: attention weights, step {ctx.step}"
        return Report(images={"attention": attention_image(np.asarray(attn), sources, outputs,
                                                           title)})
