"""Next-token language modelling: loss, perplexity, bits per character, sampling.

Model-agnostic: the model maps tokens (B, T) to logits (B, T, V) through
`model.apply(variables, tokens, train=...)` (an RNN LM here, a GPT decoder elsewhere).
Batches hold `inputs` and `targets` (B, T) and optionally `weights` (B, T) (0 = ignore).

Truncated backpropagation through time (`task.carry_state=True`, recurrent models only):
the final state of each batch row becomes the initial state of the same row in the next
batch, with no gradient across the boundary. The state lives in the mutable collection
`carry`, which the loop keeps in the train state (and in checkpoints); the `text` source
with `stream_batch_size = batch_size` and `shuffle=False` orders windows so row b keeps
reading the same stretch of text, and its `reset` flag zeroes the state at each row's start.
Evaluation scores every window from a zero state.

`sample()` (`launch.py --sample`) generates from `config.sample.prompt` with temperature
and top-k; recurrent models step their state, others re-read the whole buffer each step.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.registry import register_task
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair

# `config.sample` of `launch.py --sample` (and of the end-of-run sample, with its own prompt)
SAMPLE_FIELDS: Fields = {
    "prompt": Field("\n", "text the samples continue ('' stands for a newline)"),
    "length": Field(300, "tokens generated per sample", low=1),
    "num_samples": Field(1, "samples generated", low=1),
    "temperature": Field(0.8, "softmax temperature (0: greedy)", low=0.0),
    "top_k": Field(0, "sample among the k most likely tokens (0: all)", low=0),
    "seed": Field(0, "seed of the sampling noise"),
}


def sample_logits(rng: jax.Array, logits_BV: jax.Array, temperature: float, top_k: int
                  ) -> jax.Array:
    """Draws token ids from logits with temperature (0 = greedy) and top-k (0 = all)."""
    logits_BV = logits_BV.astype(jnp.float32)
    if temperature <= 0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    if top_k > 0:
        kth = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
        logits_BV = jnp.where(logits_BV < kth, -jnp.inf, logits_BV)
    return jax.random.categorical(rng, logits_BV / temperature, axis=-1).astype(jnp.int32)


def decode_bytes(tokens: Any) -> str:
    """Byte tokens -> text (invalid UTF-8 shown as replacement characters)."""
    return bytes(int(t) % 256 for t in np.asarray(tokens).tolist()).decode("utf-8", "replace")


@register_task("language_model")
class LanguageModel(Task):
    """Cross-entropy over next tokens; optional state carried across batches."""

    fields = {
        "carry_state": Field(False, "truncated BPTT: each batch row starts from the state its "
                                    "previous batch ended in (recurrent models)"),
        "report_sample_length": Field(200, "end of run: bytes sampled into samples.txt (0: none)",
                                      low=0),
    }
    dataset_fields: Fields = {}  # token batches: the default preprocess reads no field
    sections = {"sample": SAMPLE_FIELDS}

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        self.carry_state = config.task.carry_state
        if self.carry_state:
            self._check_carry_config(config)

    def _check_carry_config(self, config: Any) -> None:
        if not getattr(self.model, "recurrent", False):
            raise ConfigError(f"config.task.carry_state=True needs a recurrent model; "
                              f"'{config.model.name}' has none: set carry_state=False")
        if config.dataset.shuffle:
            raise ConfigError("config.task.carry_state=True needs config.dataset.shuffle=False "
                              "(consecutive batches must continue the same text)")
        stream = config.dataset.stream_batch_size if "stream_batch_size" in config.dataset else None
        if stream != config.batch_size:
            raise ConfigError("config.task.carry_state=True needs a dataset whose "
                              "stream_batch_size equals config.batch_size (the 'text' source; "
                              f"{stream} != {config.batch_size})")
        if config.grad_accum_steps != 1:
            raise ConfigError("config.task.carry_state=True needs config.grad_accum_steps=1")

    # ----- carried state, stored as a flat dict so checkpoints keep its structure -----
    def _zero_state(self, params: Any, batch: int) -> Any:
        return self.model.apply({"params": params}, batch, method="zero_state")

    def _pack(self, state: Any) -> dict[str, jax.Array]:
        return {f"{i:03d}": leaf for i, leaf in enumerate(jax.tree.leaves(state))}

    def _unpack(self, params: Any, packed: dict[str, jax.Array]) -> Any:
        batch = next(iter(packed.values())).shape[0]
        treedef = jax.tree.structure(jax.eval_shape(lambda: self._zero_state(params, batch)))
        return jax.tree.unflatten(treedef, [packed[k] for k in sorted(packed)])

    def init_variables(self, rng: jax.Array, batch: Batch) -> Variables:
        p_rng, d_rng = jax.random.split(rng)
        v = self.model.init({"params": p_rng, "dropout": d_rng}, batch["inputs"], train=False)
        out = {"params": v["params"]}
        if self.carry_state:
            out["carry"] = self._pack(self._zero_state(v["params"], batch["inputs"].shape[0]))
        return out

    # ----- losses -----
    def per_example(self, logits_BTV: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        """Per-example mean token loss and accuracy over weighted tokens, (B,) each."""
        targets = batch["targets"].astype(jnp.int32)
        ce_BT = optax.softmax_cross_entropy_with_integer_labels(
            logits_BTV.astype(jnp.float32), targets)
        hit_BT = (jnp.argmax(logits_BTV, -1) == targets).astype(jnp.float32)
        w_BT = batch.get("weights", jnp.ones_like(ce_BT)).astype(jnp.float32)
        n_B = jnp.maximum(w_BT.sum(-1), 1.0)
        return {"loss": (ce_BT * w_BT).sum(-1) / n_B, "accuracy": (hit_BT * w_BT).sum(-1) / n_B}

    def loss(self, phase: str, params: Any, mutable: Variables, batch: Batch, rng: jax.Array):
        variables = {"params": params}
        kwargs = {"train": True, "rngs": {"dropout": rng}}
        if self.carry_state:
            state = self._unpack(params, mutable["carry"])
            if "reset" in batch:
                keep_B = 1.0 - batch["reset"].astype(jnp.float32)
                state = jax.tree.map(lambda s: s * keep_B[:, None].astype(s.dtype), state)
            logits, new_state = self.model.apply(variables, batch["inputs"], initial_state=state,
                                                 return_state=True, **kwargs)
            mutable = {**mutable, "carry": self._pack(jax.lax.stop_gradient(new_state))}
        else:
            logits = self.model.apply(variables, batch["inputs"], **kwargs)
        per = self.per_example(logits, batch)
        loss = per["loss"].mean()
        metrics = {"accuracy": per["accuracy"].mean(), "bits_per_char": loss / math.log(2.0),
                   "perplexity": jnp.exp(loss)}
        return loss, (metrics, mutable)

    def eval_metrics(self, variables: Variables, batch: Batch) -> MetricTotals:
        logits = self.model.apply({"params": variables["params"]}, batch["inputs"], train=False)
        return {k: masked_mean_pair(v, batch["_mask"])
                for k, v in self.per_example(logits, batch).items()}

    def finalize_metrics(self, totals: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
        out = super().finalize_metrics(totals)
        out["perplexity"] = float(np.exp(out["loss"]))
        out["bits_per_char"] = float(out["loss"] / math.log(2.0))
        return out

    # ----- generation -----
    def generate(self, params: Any, prompt: jax.Array, length: int, rng: jax.Array,
                 temperature: float = 1.0, top_k: int = 0, use_state: bool | None = None
                 ) -> jax.Array:
        """Continues `prompt` (N, P) by `length` tokens; returns (N, length).

        `use_state` (default: the model is recurrent) steps a carried state one token at a
        time; otherwise the whole buffer is re-read at every step (any causal model).
        """
        n, p = prompt.shape
        v = {"params": params}
        keys = jax.random.split(rng, length)
        if use_state is None:
            use_state = getattr(self.model, "recurrent", False)
        if use_state:
            logits, state = self.model.apply(v, prompt, return_state=True)

            def step(carry, key):
                last_logits, state = carry
                tok = sample_logits(key, last_logits, temperature, top_k)
                logits, state = self.model.apply(v, tok[:, None], initial_state=state,
                                                 return_state=True)
                return (logits[:, -1], state), tok

            _, toks = jax.lax.scan(step, (logits[:, -1], state), keys)
            return toks.T
        buf = jnp.concatenate([prompt, jnp.zeros((n, length), prompt.dtype)], axis=1)

        def body(t, buf):
            logits = self.model.apply(v, buf)
            last = jax.lax.dynamic_index_in_dim(logits, t - 1, axis=1, keepdims=False)
            tok = sample_logits(keys[t - p], last, temperature, top_k)
            return jax.lax.dynamic_update_slice(buf, tok[:, None].astype(buf.dtype), (0, t))

        return jax.lax.fori_loop(p, p + length, body, buf)[:, p:]

    def byte_vocabulary(self) -> bool:
        """Whether the model's tokens cover the 256 byte values that sampling prints."""
        return getattr(self.model, "vocab_size", 256) >= 256

    def sample(self, variables: Variables, sample_config: Any, workdir: str) -> list[str]:
        """Prints and returns `num_samples` continuations of `prompt` (bytes -> UTF-8 text)."""
        sc = sample_config
        prompt = sc.prompt or "\n"
        length, n, temperature, top_k = sc.length, sc.num_samples, sc.temperature, sc.top_k
        if not self.byte_vocabulary():
            raise ConfigError(f"config.model.vocab_size={self.model.vocab_size}: byte sampling "
                              f"needs >= 256")
        tokens = jnp.tile(jnp.asarray(list(prompt.encode()), jnp.int32)[None], (n, 1))
        gen = jax.jit(self.generate, static_argnums=(2, 4, 5, 6))
        out = np.asarray(gen(variables["params"], tokens, length, jax.random.key(sc.seed),
                             temperature, top_k))
        texts = [prompt + decode_bytes(row) for row in out]
        for i, text in enumerate(texts):
            print(f"----- sample {i} (temperature={temperature}, top_k={top_k}) -----")
            print(text)
        return texts

    def host_report(self, variables: Variables, batch: dict[str, Any], step: int, workdir: str,
                    writer: Any, final: bool) -> None:
        """At the end of a run, writes a short sample to `samples.txt` (byte vocabularies)."""
        length = self.config.task.report_sample_length
        if not final or length <= 0 or not self.byte_vocabulary():
            return
        prompt = decode_bytes(np.asarray(batch["inputs"])[0, :32])
        sc = ml_collections.ConfigDict(self.config.sample.to_dict())
        sc.update(prompt=prompt, length=length, num_samples=1)
        texts = self.sample(variables, sc, workdir)
        with open(os.path.join(workdir, "samples.txt"), "a", encoding="utf-8") as f:
            f.write(f"===== step {step} =====\n{texts[0]}\n")
