"""Sequence-to-sequence with attention: teacher forcing, exact match, attention heat maps.

Batches hold `inputs` (B, S) source tokens, `input_lengths` (B,), `targets` (B, T) ending
in EOS then PAD, and `decoder_inputs` (B, T) = BOS + targets[:-1] (built here if absent).
Training is teacher-forced cross-entropy over non-PAD target tokens. Eval reports token
accuracy and exact-match of whole sequences, teacher-forced and free-running: greedy
decoding, and beam search when `task.beam_size > 1`. The `attention_map` evaluator draws
the attention weights of a few greedy decodes (`attention.png`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from dl_arch.config.fields import Field, Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair


@register_task("seq2seq")
class Seq2Seq(Task):
    """Teacher-forced training of an encoder-decoder with `greedy`/`beam_search` methods."""

    evaluators = ("attention_map",)

    fields = {
        "beam_size": Field(0, "eval: also decode with beam search of this width (0, 1: greedy "
                              "only)", low=0),
        "length_penalty": Field(0.6, "beam search: GNMT length penalty exponent", low=0.0),
    }
    dataset_fields: Fields = {}  # token batches: the default preprocess reads no field

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        self.beam_size = config.task.beam_size
        self.length_penalty = config.task.length_penalty
        self.pad, self.bos = self.model.pad_id, self.model.bos_id

    def _decoder_inputs(self, batch: Batch) -> jax.Array:
        if "decoder_inputs" in batch:
            return batch["decoder_inputs"]
        t = batch["targets"]
        return jnp.concatenate([jnp.full_like(t[:, :1], self.bos), t[:, :-1]], axis=1)

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        v = self.model.init({"params": p_rng, "dropout": d_rng}, batch["inputs"],
                            batch["input_lengths"], self._decoder_inputs(batch), train=False)
        return {"params": v["params"]}

    def _token_stats(self, logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        targets = batch["targets"].astype(jnp.int32)
        real = (targets != self.pad).astype(jnp.float32)
        n = jnp.maximum(real.sum(-1), 1.0)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        hit = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return {"loss": (ce * real).sum(-1) / n, "token_accuracy": (hit * real).sum(-1) / n,
                "exact_match_teacher_forced": jnp.all((hit > 0) | (real == 0), axis=-1)}

    def _exact(self, tokens: jax.Array, batch: Batch) -> jax.Array:
        targets = batch["targets"].astype(jnp.int32)
        return jnp.all(tokens[:, :targets.shape[1]] == targets, axis=-1)

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        logits = self.model.apply({"params": params}, batch["inputs"], batch["input_lengths"],
                                  self._decoder_inputs(batch), train=True, rngs={"dropout": rng})
        per = self._token_stats(logits, batch)
        metrics = {k: v.astype(jnp.float32).mean() for k, v in per.items() if k != "loss"}
        return per["loss"].mean(), (metrics, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        v = {"params": variables["params"]}
        logits = self.model.apply(v, batch["inputs"], batch["input_lengths"],
                                  self._decoder_inputs(batch))
        per = self._token_stats(logits, batch)
        max_len = batch["targets"].shape[1]
        greedy, _ = self.model.apply(v, batch["inputs"], batch["input_lengths"], max_len,
                                     method="greedy")
        per["exact_match_greedy"] = self._exact(greedy, batch)
        if self.beam_size > 1:
            beam = self.model.apply(v, batch["inputs"], batch["input_lengths"], max_len,
                                    self.beam_size, self.length_penalty, method="beam_search")
            per["exact_match_beam"] = self._exact(beam, batch)
        return {k: masked_mean_pair(x, batch["_mask"]) for k, x in per.items()}
