"""Masked-language-model pretraining (BERT): corrupt 15% of the tokens, predict the originals.

Of the selected positions 80% become <mask>, 10% a random content token and 10% stay as
they are (so the model cannot rely on seeing <mask> at fine-tuning time). Only content
tokens (id >= `config.task.num_special`, default 4) are ever selected.

Masking is dynamic, as RoBERTa's: the corruption is drawn inside the jitted step from the
step's rng (`fold_in(key of config.seed, step)`), so an example seen again in a later epoch
gets a fresh masking, and a run is reproducible for its seed (the same seed and data order
give the same masks at every step). The original BERT instead masked each example once in
preprocessing. There is no next-sentence objective (the `Bert` heads are mlm, classify and
none), so RoBERTa's removal of it needs no switch; its full-sentence, longer inputs are the
source's `pack_sentences` and `max_len` (`configs/roberta_pretrain_offline.py`). Evaluation
uses one fixed masking, so eval numbers compare across steps.

Fields of config.task: mask_rate (0.15), mask_token_prob (0.8), random_token_prob (0.1),
mask_id (3), num_special (4).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Variables
from dl_arch.tasks.supervised import SupervisedTask


def corrupt(rng: jax.Array, tokens_BT: jax.Array, vocab_size: int, mask_rate: float = 0.15,
            mask_prob: float = 0.8, random_prob: float = 0.1, mask_id: int = 3,
            num_special: int = 4) -> tuple[jax.Array, jax.Array]:
    """(corrupted tokens, selected positions as float weights) for BERT's MLM objective."""
    select_rng, kind_rng, token_rng = jax.random.split(rng, 3)
    content_BT = tokens_BT >= num_special
    selected_BT = content_BT & (jax.random.uniform(select_rng, tokens_BT.shape) < mask_rate)
    u_BT = jax.random.uniform(kind_rng, tokens_BT.shape)
    random_tokens_BT = jax.random.randint(token_rng, tokens_BT.shape, num_special, vocab_size)
    corrupted = jnp.where(u_BT < mask_prob, mask_id,
                          jnp.where(u_BT < mask_prob + random_prob, random_tokens_BT, tokens_BT))
    out = jnp.where(selected_BT, corrupted, tokens_BT).astype(tokens_BT.dtype)
    return out, selected_BT.astype(jnp.float32)


@register_task("masked_lm")
class MaskedLM(SupervisedTask):
    """Cross-entropy of the original tokens at the corrupted positions; MLM accuracy."""

    fields = {
        "mask_rate": Field(0.15, "fraction of content tokens selected for prediction", low=0.0,
                           high=1.0, low_open=True, high_open=True),
        "mask_token_prob": Field(0.8, "selected tokens that become <mask>", low=0.0, high=1.0),
        "random_token_prob": Field(0.1, "selected tokens that become a random content token",
                                   low=0.0, high=1.0),
        "mask_id": Field(3, "id of the <mask> token", low=0),
        "num_special": Field(4, "ids below this are special tokens, never selected", low=0),
    }
    dataset_fields: Fields = {}  # token batches: the default preprocess reads no field

    def __init__(self, config: Any):
        super().__init__(config)
        self.vocab_size = int(self.model.vocab_size)
        t = config.task
        self.options = dict(mask_rate=t.mask_rate, mask_prob=t.mask_token_prob,
                            random_prob=t.random_token_prob, mask_id=t.mask_id,
                            num_special=t.num_special)
        if t.mask_token_prob + t.random_token_prob > 1.0:
            raise ConfigError(f"config.task.mask_token_prob={t.mask_token_prob} + "
                              f"random_token_prob={t.random_token_prob} exceeds 1; the rest "
                              f"of the selected tokens stay as they are")
        if getattr(self.model, "head", "mlm") != "mlm":
            raise ConfigError("config.task.name='masked_lm' needs config.model.head='mlm'")

    def _scores(self, logits_BTV: jax.Array, tokens_BT: jax.Array, w_BT: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
        ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, tokens_BT)
        hit_BT = (jnp.argmax(logits_BTV, -1) == tokens_BT).astype(jnp.float32)
        return (ce_BT * w_BT).sum(-1), (hit_BT * w_BT).sum(-1), w_BT.sum(-1)

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        mask_rng, dropout_rng = jax.random.split(rng)
        tokens = batch["inputs"]
        corrupted, w_BT = corrupt(mask_rng, tokens, self.vocab_size, **self.options)
        logits, new_mutable = self.apply_train(params, mutable, {**batch, "inputs": corrupted},
                                               dropout_rng)
        ce, hits, n = self._scores(logits, tokens, w_BT)
        total = jnp.maximum(n.sum(), 1.0)
        loss = ce.sum() / total
        return loss, ({"mlm_accuracy": hits.sum() / total, "perplexity": jnp.exp(loss),
                       "masked_fraction": n.sum() / jnp.maximum(
                           (tokens >= self.options["num_special"]).sum(), 1)}, new_mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        # a fixed masking per eval batch, so eval numbers are comparable across steps
        tokens = batch["inputs"]
        corrupted, w_BT = corrupt(jax.random.key(0), tokens, self.vocab_size, **self.options)
        logits = self.apply_eval(variables, {**batch, "inputs": corrupted})
        ce, hits, n = self._scores(logits, tokens, w_BT * batch["_mask"][:, None])
        return {"loss": (ce.sum(), n.sum()), "mlm_accuracy": (hits.sum(), n.sum())}

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        out = super().finalize_metrics(totals)
        out["perplexity"] = float(np.exp(out["loss"]))
        return out
