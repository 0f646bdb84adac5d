"""Extractive question answering (BERT on SQuAD): the answer is a span of the passage.

Examples arrive as the windows of `dl_arch.data.sources.squad` (every window of one
example in one row). Training reads one window per example, drawn at random among its
real windows: a window that does not hold the whole answer (nor, where the source marks
them, another telling of it) points both targets at [CLS] (position 0), as BERT does.
The loss is the mean of the start and end cross-entropies; positions that cannot hold an
answer (question, [SEP], padding) are masked out of both softmaxes.

Evaluation keeps all windows of an example in its row, so choosing the answer needs no
gathering across batches: `best_spans` scores every (window, start, end) with start <= end
< start + `max_answer_len` inside the passage as start logit + end logit and keeps the best
(the [CLS] "no answer" is never chosen: every question has an answer). The device reports
the loss per window and `span_match` (the chosen passage tokens are the gold's); exact match
and F1 on text, which need the passage's characters and the normalised gold answers, are
computed on the host by the `qa_answers` evaluator (listed by default), which reads the eval
split again through `ctx.eval_batches()` and maps each chosen span to characters with the
batch's `context_offsets` and the source's `reference(example_id)`.

Fields of config.task: max_answer_len. `launch.py --sample` answers config.sample.question
about config.sample.context.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model
from dl_arch.train.compile_options import model_jit

NEG_INF = -1.0e9
WINDOW_KEYS = ("inputs", "token_types", "context_index", "starts", "ends")


def answer_positions(context_index: jax.Array) -> jax.Array:
    """Where an answer may start or end: passage tokens, and [CLS] (position 0)."""
    is_cls = jnp.arange(context_index.shape[-1]) == 0
    return (context_index >= 0) | is_cls.reshape((1,) * (context_index.ndim - 1) + (-1,))


def span_loss(logits_BT2: jax.Array, valid_BT: jax.Array, starts_B: jax.Array,
              ends_B: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per window: (mean of start and end cross-entropy, start hit, end hit)."""
    logits_BT2 = jnp.where(valid_BT[..., None], logits_BT2, NEG_INF)
    ce_s = optax.softmax_cross_entropy_with_integer_labels(logits_BT2[..., 0], starts_B)
    ce_e = optax.softmax_cross_entropy_with_integer_labels(logits_BT2[..., 1], ends_B)
    hit_s = (jnp.argmax(logits_BT2[..., 0], -1) == starts_B).astype(jnp.float32)
    hit_e = (jnp.argmax(logits_BT2[..., 1], -1) == ends_B).astype(jnp.float32)
    return 0.5 * (ce_s + ce_e), hit_s, hit_e


def best_spans(logits_BWT2: jax.Array, context_index_BWT: jax.Array, window_mask_BW: jax.Array,
               max_answer_len: int) -> dict[str, jax.Array]:
    """The best passage span of each example across its windows.

    Candidates: start <= end < start + max_answer_len, both passage tokens of one real
    window; score = start logit + end logit. Returns per example the window, the window
    positions (start, end), the passage tokens (context_start, context_end) and the score.
    """
    b, w, t, _ = logits_BWT2.shape
    inside_BWT = (context_index_BWT >= 0) & (window_mask_BW[..., None] > 0)
    i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
    shape_11TT = ((j >= i) & (j < i + max_answer_len))[None, None]
    ok_BWTT = inside_BWT[..., :, None] & inside_BWT[..., None, :] & shape_11TT
    score_BWTT = logits_BWT2[..., :, None, 0] + logits_BWT2[..., None, :, 1]
    flat_BN = jnp.where(ok_BWTT, score_BWTT, NEG_INF).reshape(b, w * t * t)
    best_B = jnp.argmax(flat_BN, axis=1)
    window_B, rest_B = best_B // (t * t), best_B % (t * t)
    start_B, end_B = rest_B // t, rest_B % t
    rows = jnp.arange(b)
    return {"window": window_B, "start": start_B, "end": end_B,
            "context_start": context_index_BWT[rows, window_B, start_B],
            "context_end": context_index_BWT[rows, window_B, end_B],
            "score": flat_BN[rows, best_B]}


@register_task("question_answering")
class QuestionAnswering(Task):
    """Start/end cross-entropy on one window per example; best span across windows."""

    fields = {
        "max_answer_len": Field(30, "longest answer chosen at evaluation, in tokens", low=1),
    }
    evaluators = ("qa_answers",)  # exact match and F1 on text, sample answers
    dataset_fields: Fields = {}  # `preprocess` reads no dataset field
    sections = {"sample": {
        "context": Field("", "--sample: the passage to read"),
        "question": Field("", "--sample: questions about it, separated by '|'"),
    }}
    required_keys = WINDOW_KEYS

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        self.max_answer_len = int(config.task.max_answer_len)

    def check_batch(self, batch: dict[str, Any]) -> None:
        super().check_batch(batch)
        top = int(np.max(batch["inputs"]))
        if top >= self.model.vocab_size:
            raise ConfigError(f"config.model.vocab_size={self.model.vocab_size} but the dataset's "
                              f"token ids reach {top}; set config.model.vocab_size to the "
                              f"tokenizer's size")

    # ----- host side: one random window per training example -----
    def preprocess(self, example: dict[str, Any], rng: Any, train: bool) -> dict[str, Any]:
        if not train:
            return example
        real = np.flatnonzero(np.asarray(example["window_mask"]) > 0)
        k = int(real[rng.integers(len(real))])
        return {key: np.asarray(example[key])[k] for key in WINDOW_KEYS}

    # ----- device -----
    def _logits(self, params: Any, batch: Batch, train: bool, rng: jax.Array | None = None
                ) -> jax.Array:
        """Span logits (..., T, 2) for windows of any leading shape."""
        tokens = batch["inputs"]
        lead, t = tokens.shape[:-1], tokens.shape[-1]
        flat = lambda x: x.reshape(-1, t)
        kwargs = {"rngs": {"dropout": rng}} if train else {}
        logits = self.model.apply({"params": params}, flat(tokens), flat(batch["token_types"]),
                                  train=train, **kwargs)
        return logits.reshape(*lead, t, 2)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        t = batch["inputs"].shape[-1]
        v = self.model.init({"params": p_rng, "dropout": d_rng},
                            batch["inputs"].reshape(-1, t), batch["token_types"].reshape(-1, t),
                            train=False)
        return {"params": v["params"]}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        logits = self._logits(params, batch, True, rng)
        ce, hit_s, hit_e = span_loss(logits, answer_positions(batch["context_index"]),
                                     batch["starts"], batch["ends"])
        return ce.mean(), ({"start_accuracy": hit_s.mean(), "end_accuracy": hit_e.mean()},
                           mutable)

    def best_spans(self, variables: Variables, batch: Batch) -> dict[str, jax.Array]:
        """`best_spans` of an eval batch (B, W, T) under `variables`."""
        logits = self._logits(variables["params"], batch, False)
        return best_spans(logits, batch["context_index"], batch["window_mask"],
                          self.max_answer_len)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits_BWT2 = self._logits(variables["params"], batch, False)
        real_B = batch["_mask"].astype(jnp.float32)
        w_BW = batch["window_mask"] * real_B[:, None]
        ce, hit_s, hit_e = span_loss(logits_BWT2, answer_positions(batch["context_index"]),
                                     batch["starts"], batch["ends"])
        best = best_spans(logits_BWT2, batch["context_index"], batch["window_mask"],
                          self.max_answer_len)
        gold_B2 = batch["answer_tokens"]
        match_B = ((best["context_start"] == gold_B2[:, 0])
                   & (best["context_end"] == gold_B2[:, 1])).astype(jnp.float32)
        return {"loss": ((ce * w_BW).sum(), w_BW.sum()),
                "start_accuracy": ((hit_s * w_BW).sum(), w_BW.sum()),
                "end_accuracy": ((hit_e * w_BW).sum(), w_BW.sum()),
                "span_match": ((match_B * real_B).sum(), real_B.sum())}

    # ----- host side: spans -> text -----
    @functools.cached_property
    def _predict(self):
        return model_jit(self.best_spans)

    def answer_texts(self, variables: Variables, batch: dict[str, Any], contexts: list[str]
                     ) -> list[str]:
        """The chosen answer of each row of an eval batch as text of its passage."""
        best = jax.device_get(self._predict(variables, batch))
        offsets = np.asarray(batch["context_offsets"])
        out = []
        for row, context in enumerate(contexts):
            a, b = int(best["context_start"][row]), int(best["context_end"][row])
            if a < 0 or b < 0:
                out.append("")
                continue
            out.append(context[offsets[row, a, 0]: offsets[row, b, 1]])
        return out

    def sample(self, variables: Variables, sample_config: Any, workdir: str) -> list[str]:
        """Answers `config.sample.question` ('|'-separated) about `config.sample.context`."""
        from dl_arch.data.batching import stack_examples
        from dl_arch.data.pipeline import make_source

        context = sample_config.context.strip()
        questions = [q.strip() for q in sample_config.question.split("|") if q.strip()]
        if not context or not questions:
            raise ConfigError("--sample needs config.sample.context (a passage) and "
                              "config.sample.question (questions separated by '|')")
        ds = self.config.dataset
        source = make_source(ds, ds.eval_split, self.config.seed)
        if not hasattr(source, "featurize"):
            raise ConfigError(f"config.dataset.name='{ds.name}' cannot tokenise new text for "
                              f"--sample; use a question-answering source")
        batch = stack_examples([source.featurize(context, q) for q in questions])
        out = self.answer_texts(variables, batch, [context] * len(questions))
        for q, a in zip(questions, out, strict=True):
            print(f"{q}\n  -> {a}")
        return out
