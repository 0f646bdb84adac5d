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

Tokens are bytes, or the ids of the tokenizer `config.dataset.tokenizer` names (`hf:<folder>`:
the tokenizer saved with an imported checkpoint, checked against `config.model.vocab_size` and
`config.init_from` by `dl_arch.data.tokenizers.run_tokenizer`); the source tokenises the text
with it, and sampling encodes the prompt and decodes the samples with it.

`sample()` (`launch.py --sample`) generates from `config.sample.prompt` with temperature,
top-k and top-p (`dl_arch.tasks.generation`): recurrent models step their state, attention
decoders their KV cache, other models re-read the whole buffer each step. The
`text_samples` evaluator (listed by default) writes such samples to samples.txt.

`causal_lm` is `language_model` for attention decoders: the same loss (`next_token_losses`)
and metrics, a model with a KV cache required, shorter default samples and tokens/s printed.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.tokenizers import run_tokenizer
from dl_arch.registry import register_task
from dl_arch.tasks import generation
from dl_arch.tasks.base import Batch, MetricTotals, Task, Variables, build_model, masked_mean_pair


def next_token_losses(logits_BTV: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Per-example mean token cross-entropy and accuracy over weighted tokens, (B,) each."""
    targets = batch["targets"].astype(jnp.int32)
    ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV.astype(jnp.float32), targets)
    hit_BT = (jnp.argmax(logits_BTV, -1) == targets).astype(jnp.float32)
    w_BT = (batch["weights"] if "weights" in batch else jnp.ones_like(ce_BT)).astype(jnp.float32)
    n_B = jnp.maximum(w_BT.sum(-1), 1.0)
    return {"loss": (ce_BT * w_BT).sum(-1) / n_B, "accuracy": (hit_BT * w_BT).sum(-1) / n_B}


@register_task("language_model")
class LanguageModel(Task):
    """Cross-entropy over next tokens; optional state carried across batches."""

    fields = {
        "carry_state": Field(False, "truncated BPTT: each batch row starts from the state its "
                                    "previous batch ended in (recurrent models)"),
    }
    evaluators = ("text_samples",)  # samples.txt at the end (byte vocabularies)
    dataset_fields: Fields = {}  # token batches: the default preprocess reads no field
    sections = {"sample": generation.SAMPLE_FIELDS}
    report_speed = False  # sample(): time a second run and print tokens/s

    def __init__(self, config: Any):
        super().__init__(config)
        self.model = build_model(config.model, config)
        self.tokenizer = run_tokenizer(config)  # None: byte tokens
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
        """`next_token_losses`: per-example token loss and accuracy, (B,) each."""
        return next_token_losses(logits_BTV, batch)

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

    # ----- generation (`dl_arch.tasks.generation`) -----
    def generate(self, params: Any, prompt: jax.Array, length: int, rng: jax.Array,
                 temperature: float = 1.0, top_k: int = 0, incremental: bool | None = None,
                 top_p: float = 1.0) -> jax.Array:
        """Continues `prompt` (N, P) by `length` tokens; returns (N, length).

        `incremental` (default: whenever the model can) steps its recurrent state or KV cache
        one token at a time; otherwise the whole buffer is re-read at every step.
        """
        return generation.generate(self.model, params, prompt, length, rng, temperature, top_k,
                                   top_p, incremental)

    def byte_vocabulary(self) -> bool:
        """Whether the tokens are bytes and the model covers the 256 values sampling prints."""
        return self.tokenizer is None and getattr(self.model, "vocab_size", 256) >= 256

    def encode_text(self, text: str) -> np.ndarray:
        """A prompt as this run's tokens (bytes or the tokenizer's ids), (P,) int32."""
        return np.asarray(generation.encode_prompt(text, self.tokenizer), np.int32)

    def decode_tokens(self, tokens: Any) -> str:
        """Tokens as text: bytes, or through the run's tokenizer."""
        if self.tokenizer is None:
            return generation.decode_bytes(tokens)
        return self.tokenizer.decode(np.asarray(tokens).tolist())

    def sample(self, variables: Variables, sample_config: Any, workdir: str) -> list[str]:
        """Prints and returns `num_samples` continuations of `prompt`, as text (bytes, or
        through the run's tokenizer)."""
        if self.tokenizer is None and not self.byte_vocabulary():
            raise ConfigError(f"config.model.vocab_size={self.model.vocab_size}: byte sampling "
                              f"needs >= 256")
        return generation.print_samples(self.generate, variables["params"], sample_config,
                                        report_speed=self.report_speed, tokenizer=self.tokenizer)


@register_task("causal_lm")
class CausalLM(LanguageModel):
    """`language_model` for attention decoders: KV-cached generation, tokens/s printed."""

    sections = {"sample": {
        **generation.SAMPLE_FIELDS,
        "length": Field(200, "tokens generated per sample", low=1),
    }}
    report_speed = True

    def __init__(self, config: Any):
        super().__init__(config)
        if not hasattr(self.model, "decode"):
            raise ConfigError(f"config.task.name='causal_lm' needs a model with a KV cache "
                              f"(e.g. gpt_nano); '{config.model.name}' has none: use "
                              "task 'language_model'")
