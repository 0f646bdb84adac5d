"""Sequence-to-sequence translation with an encoder-decoder Transformer.

Training is teacher forced (targets shifted right behind <bos>) with label-smoothed
cross-entropy over real target tokens. Evaluation reports token loss/accuracy and greedy
exact-match on device; the `translations` evaluator (listed by default) decodes eval
sentences with greedy search and with beam search (length penalty ((5 + len) / 6) ** alpha,
as in GNMT) on the KV cache (`translate`) and logs corpus BLEU (`eval/bleu_beam`,
`eval/bleu_greedy`) plus example translations in `translations.txt`.

Fields of config.task: label_smoothing, beam_size, length_penalty, decode_len;
`launch.py --sample` translates config.sample.prompt.
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
from dl_arch.data.tokenizers import BOS, EOS, PAD, pad_to
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model
from dl_arch.tasks.generation import init_cache
from dl_arch.train.compile_options import model_jit

NEG_INF = -1.0e9


def shift_right(targets_BT: jax.Array) -> jax.Array:
    """Decoder inputs: <bos> followed by the targets without their last position."""
    bos = jnp.full((targets_BT.shape[0], 1), BOS, targets_BT.dtype)
    return jnp.concatenate([bos, targets_BT[:, :-1]], axis=1)


def smoothed_cross_entropy(logits_BTV: jax.Array, targets_BT: jax.Array, smoothing: float
                           ) -> jax.Array:
    """Per-token cross-entropy against (1 - s) one-hot + s uniform targets, float32."""
    onehot = jax.nn.one_hot(targets_BT, logits_BTV.shape[-1])
    return optax.softmax_cross_entropy(logits_BTV.astype(jnp.float32),
                                       optax.smooth_labels(onehot, smoothing))


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT length normalisation: ((5 + length) / 6) ** alpha."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def _empty_cache(decoder: Any, source_BS: jax.Array, max_len: int) -> Any:
    """The empty KV cache of `decoder` (decode=True) for this source batch and `max_len`."""
    return init_cache(decoder, source_BS, jnp.ones((source_BS.shape[0], max_len), jnp.int32))


def greedy_decode(model: Any, params: Any, source_BS: jax.Array, max_len: int) -> jax.Array:
    """Argmax decoding on the KV cache; (B, max_len) ids, <pad> after <eos>."""
    dec = model.clone(decode=True)
    encoded = model.apply({"params": params}, source_BS, method="encode")
    b = source_BS.shape[0]

    def step(carry, _):
        cache, tok_B, done_B = carry
        logits, upd = dec.apply({"params": params, "cache": cache}, encoded, source_BS,
                                tok_B[:, None], method="decode_logits", mutable=["cache"])
        nxt_B = jnp.where(done_B, PAD, jnp.argmax(logits[:, 0], -1)).astype(jnp.int32)
        return (upd["cache"], nxt_B, done_B | (nxt_B == EOS)), nxt_B

    init = (_empty_cache(dec, source_BS, max_len), jnp.full((b,), BOS, jnp.int32),
            jnp.zeros((b,), bool))
    _, toks_TB = jax.lax.scan(step, init, None, length=max_len)
    return toks_TB.T


def _gather_beams(tree: Any, flat_index: jax.Array, bk: int) -> Any:
    """Reorders the batch*beam axis of every cache leaf (axis 0, or 1 in scanned stacks)."""
    def take(x):
        if x.ndim >= 1 and x.shape[0] == bk:
            return x[flat_index]
        if x.ndim >= 2 and x.shape[1] == bk:
            return x[:, flat_index]
        return x
    return jax.tree.map(take, tree)


def beam_search(model: Any, params: Any, source_BS: jax.Array, max_len: int, beam_size: int,
                alpha: float) -> jax.Array:
    """Beam search with GNMT length penalty; returns the best (B, max_len) hypotheses.

    Candidates are ranked by score / length_penalty(length); a finished beam can only be
    extended by <pad> at zero cost, so it keeps its score and competes with live beams.
    """
    b, k = source_BS.shape[0], beam_size
    dec = model.clone(decode=True)
    source_KS = jnp.repeat(source_BS, k, axis=0)  # (B*K, S): beam j of example i at i*K + j
    encoded = model.apply({"params": params}, source_KS, method="encode")
    vocab = model.vocab_size
    pad_row_V = jnp.full((vocab,), NEG_INF).at[PAD].set(0.0)

    def step(carry, t):
        cache, tok, scores_BK, seqs_BKT, finished_BK, lengths_BK = carry
        logits, upd = dec.apply({"params": params, "cache": cache}, encoded, source_KS,
                                tok[:, None], method="decode_logits", mutable=["cache"])
        logp_BKV = jax.nn.log_softmax(logits[:, 0]).reshape(b, k, vocab)
        logp_BKV = jnp.where(finished_BK[..., None], pad_row_V[None, None, :], logp_BKV)
        cand_BKV = scores_BK[..., None] + logp_BKV
        new_len_BK1 = (lengths_BK + (~finished_BK))[..., None]
        rank = (cand_BKV / length_penalty(new_len_BK1, alpha)).reshape(b, k * vocab)
        _, top_idx = jax.lax.top_k(rank, k)  # (B, K)
        beam_BK, tok_BK = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
        scores_BK = jnp.take_along_axis(cand_BKV.reshape(b, k * vocab), top_idx, axis=1)
        pick = lambda x: jnp.take_along_axis(x, beam_BK.reshape(
            beam_BK.shape + (1,) * (x.ndim - 2)), axis=1)
        seqs_BKT = pick(seqs_BKT).at[:, :, t].set(tok_BK)
        was_finished = pick(finished_BK)
        lengths_BK = pick(lengths_BK) + (~was_finished)
        finished_BK = was_finished | (tok_BK == EOS)
        flat = (jnp.arange(b)[:, None] * k + beam_BK).reshape(-1)
        cache = _gather_beams(upd["cache"], flat, b * k)
        return (cache, tok_BK.reshape(-1), scores_BK, seqs_BKT, finished_BK, lengths_BK), None

    scores = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1))[None, :], (b, 1))
    init = (_empty_cache(dec, source_KS, max_len), jnp.full((b * k,), BOS, jnp.int32), scores,
            jnp.zeros((b, k, max_len), jnp.int32), jnp.zeros((b, k), bool),
            jnp.zeros((b, k), jnp.int32))
    (_, _, scores, seqs, _, lengths), _ = jax.lax.scan(step, init, jnp.arange(max_len))
    best_B = jnp.argmax(scores / length_penalty(lengths, alpha), axis=1)
    return jnp.take_along_axis(seqs, best_B[:, None, None], axis=1)[:, 0]


@register_task("translation")
class Translation(Task):
    """Label-smoothed teacher forcing; greedy and beam decoding (BLEU: `translations`)."""

    fields = {
        "label_smoothing": Field(0.1, "training targets (1 - s) one-hot + s uniform", low=0.0,
                                 high=1.0, high_open=True),
        "beam_size": Field(4, "beam width of the BLEU and --sample translations (1: greedy)",
                           low=1),
        "length_penalty": Field(0.6, "beam search: GNMT length penalty exponent alpha", low=0.0),
        "decode_len": Field(0, "longest decoded translation in tokens (0: dataset.max_len)",
                            low=0),
    }
    evaluators = ("translations",)  # BLEU and example translations at each eval
    dataset_fields: Fields = {}  # token batches: the default preprocess reads no field
    sections = {"sample": {"prompt": Field("", "source sentences to translate, separated "
                                               "by '|'")}}

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        t = config.task
        self.smoothing = t.label_smoothing
        self.beam_size = t.beam_size
        self.alpha = t.length_penalty
        self.decode_len = t.decode_len or config.dataset.max_len

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        v = self.model.init({"params": p_rng, "dropout": d_rng}, batch["inputs"],
                            shift_right(batch["targets"]), train=False)
        return {"params": v["params"]}

    def _token_scores(self, logits: jax.Array, targets: jax.Array, w: jax.Array):
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        hit = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
        return nll * w, hit * w

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        targets = batch["targets"]
        logits = self.model.apply({"params": params}, batch["inputs"], shift_right(targets),
                                  train=True, rngs={"dropout": rng})
        w = (targets != PAD).astype(jnp.float32)
        n = jnp.maximum(w.sum(), 1.0)
        loss = (smoothed_cross_entropy(logits, targets, self.smoothing) * w).sum() / n
        nll, hit = self._token_scores(logits, targets, w)
        return loss, ({"nll": nll.sum() / n, "token_accuracy": hit.sum() / n,
                       "perplexity": jnp.exp(nll.sum() / n)}, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        targets, mask = batch["targets"], batch["_mask"].astype(jnp.float32)
        logits = self.model.apply({"params": variables["params"]}, batch["inputs"],
                                  shift_right(targets), train=False)
        w = (targets != PAD).astype(jnp.float32) * mask[:, None]
        nll, hit = self._token_scores(logits, targets, w)
        greedy = greedy_decode(self.model, variables["params"], batch["inputs"],
                               targets.shape[1])
        exact_B = jnp.all(greedy == targets, axis=1)  # both are <pad> after <eos>
        return {"loss": (nll.sum(), w.sum()), "token_accuracy": (hit.sum(), w.sum()),
                "exact_match": ((exact_B * mask).sum(), mask.sum())}

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        out = super().finalize_metrics(totals)
        out["perplexity"] = float(np.exp(out["loss"]))
        return out

    # ----- host side: decoding to text (the `translations` evaluator, --sample) -----
    @functools.cached_property
    def tokenizer(self):
        from dl_arch.data.sources.translation import tokenizer

        return tokenizer(self.config.dataset)

    @functools.cached_property
    def _decoders(self):
        greedy = model_jit(lambda p, s: greedy_decode(self.model, p, s, self.decode_len))
        beam = model_jit(lambda p, s: beam_search(self.model, p, s, self.decode_len,
                                                  self.beam_size, self.alpha))
        return greedy, beam

    def translate(self, params: Any, source_BS: np.ndarray, beam: bool = True) -> list[str]:
        """Decodes a batch of source ids into target text."""
        fn = self._decoders[1] if beam else self._decoders[0]
        return [self.tokenizer.decode(row) for row in np.asarray(fn(params, source_BS))]

    def sample(self, variables: Variables, sample_config: Any, workdir: str) -> list[str]:
        """Translates `config.sample.prompt` (sentences separated by '|') with beam search."""
        texts = [t.strip() for t in sample_config.prompt.split("|") if t.strip()]
        if not texts:
            raise ConfigError("config.sample.prompt is empty; give source sentences split by "
                              "'|', e.g. --config.sample.prompt='Hello.|Thank you.'")
        length = self.config.dataset.max_len
        src = np.stack([pad_to(self.tokenizer.encode(t)[:length - 1] + [EOS], length)
                        for t in texts])
        out = self.translate(variables["params"], src, beam=True)
        for t, o in zip(texts, out, strict=True):
            print(f"{t}\n  -> {o}")
        return out
