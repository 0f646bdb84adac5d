"""Autoregressive sampling on a KV cache, and `causal_lm`: the language-model task with it.

`causal_lm` is `language_model` (same loss, metrics, sources) whose `generate` prefills the
prompt in one call and then decodes one token per step on the attention KV cache (the
model needs a `decode` field, as `GPT` has), instead of re-reading the whole buffer every
step. `sample()` (`launch.py --sample`) supports greedy (temperature 0), temperature,
top-k and top-p (nucleus) sampling and reports tokens/s.

Fields of config.sample: those of `language_model` (prompt, length, num_samples,
temperature, top_k, seed) and top_p.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.registry import register_task
from dl_arch.tasks.base import Variables
from dl_arch.tasks.language_model import SAMPLE_FIELDS, LanguageModel, decode_bytes


def filter_logits(logits_BV: jax.Array, temperature: float, top_k: int, top_p: float
                  ) -> jax.Array:
    """Temperature-scaled logits with everything outside the top-k / top-p set at -inf."""
    logits_BV = logits_BV.astype(jnp.float32) / max(temperature, 1e-6)
    if top_k > 0:
        kth_B1 = jax.lax.top_k(logits_BV, min(top_k, logits_BV.shape[-1]))[0][:, -1:]
        logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
    if 0.0 < top_p < 1.0:
        sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
        probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        before_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV
        keep_BV = before_BV < top_p
        cutoff_B1 = jnp.min(jnp.where(keep_BV, sorted_BV, jnp.inf), axis=-1, keepdims=True)
        logits_BV = jnp.where(logits_BV < cutoff_B1, -jnp.inf, logits_BV)
    return logits_BV


def next_token(rng: jax.Array, logits_BV: jax.Array, temperature: float, top_k: int,
               top_p: float) -> jax.Array:
    """Greedy when temperature <= 0, else a draw from the filtered distribution."""
    if temperature <= 0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    return jax.random.categorical(rng, filter_logits(logits_BV, temperature, top_k, top_p),
                                  axis=-1).astype(jnp.int32)


def init_cache(model: Any, batch: int, max_len: int) -> Any:
    """An empty KV cache of a decode=True model for `batch` rows and `max_len` positions."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.ones((batch, max_len), jnp.int32)))["cache"]
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def generate_cached(model: Any, params: Any, prompt_BP: jax.Array, length: int, rng: jax.Array,
                    temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Continues `prompt` (B, P) by `length` tokens with a KV cache; returns (B, length)."""
    b, p = prompt_BP.shape
    total = p + length
    max_len = getattr(model, "max_len", total)
    if total > max_len:
        raise ConfigError(f"prompt ({p}) + config.sample.length ({length}) exceeds "
                          f"config.model.max_len={max_len}; shorten one of them")
    dec = model.clone(decode=True)
    cache = init_cache(dec, b, total)
    logits, upd = dec.apply({"params": params, "cache": cache}, prompt_BP, mutable=["cache"])
    keys = jax.random.split(rng, length)

    def step(carry, key):
        cache, last_BV = carry
        tok_B = next_token(key, last_BV, temperature, top_k, top_p)
        logits, upd = dec.apply({"params": params, "cache": cache}, tok_B[:, None],
                                mutable=["cache"])
        return (upd["cache"], logits[:, -1]), tok_B

    _, toks_LB = jax.lax.scan(step, (upd["cache"], logits[:, -1]), keys)
    return toks_LB.T


def generate_uncached(model: Any, params: Any, prompt_BP: jax.Array, length: int,
                      rng: jax.Array, temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0) -> jax.Array:
    """The same sampler re-reading the whole (fixed-size) buffer each step: O(T^2) per token."""
    b, p = prompt_BP.shape
    buf = jnp.concatenate([prompt_BP, jnp.zeros((b, length), prompt_BP.dtype)], axis=1)
    keys = jax.random.split(rng, length)

    def body(t, buf):
        logits = model.apply({"params": params}, buf)
        last = jax.lax.dynamic_index_in_dim(logits, t - 1, axis=1, keepdims=False)
        tok = next_token(keys[t - p], last, temperature, top_k, top_p)
        return jax.lax.dynamic_update_slice(buf, tok[:, None].astype(buf.dtype), (0, t))

    return jax.lax.fori_loop(p, p + length, body, buf)[:, p:]


@register_task("causal_lm")
class CausalLM(LanguageModel):
    """`language_model` for attention decoders: KV-cached generation with top-p, tokens/s."""

    sections = {"sample": {
        **SAMPLE_FIELDS,
        "length": Field(200, "tokens generated per sample", low=1),
        "top_p": Field(1.0, "nucleus sampling: the smallest set of tokens of this total "
                            "probability (1: all)", low=0.0, high=1.0, low_open=True),
    }}

    def __init__(self, config: Any):
        super().__init__(config)
        if not hasattr(self.model, "decode"):
            raise ConfigError(f"config.task.name='causal_lm' needs a model with a KV cache "
                              f"(e.g. gpt_nano); '{config.model.name}' has none: use "
                              "task 'language_model'")

    def generate(self, params: Any, prompt: jax.Array, length: int, rng: jax.Array,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
        return generate_cached(self.model, params, prompt, length, rng, temperature, top_k,
                               top_p)

    def sample(self, variables: Variables, sample_config: Any, workdir: str) -> list[str]:
        """Prints `num_samples` continuations of `prompt` and the generation speed."""
        sc = sample_config
        prompt = sc.prompt or "\n"
        length, n, temperature, top_k, top_p = (sc.length, sc.num_samples, sc.temperature,
                                                sc.top_k, sc.top_p)
        if not self.byte_vocabulary():
            raise ConfigError(f"config.model.vocab_size={self.model.vocab_size}: byte sampling "
                              f"needs >= 256")
        tokens = jnp.tile(jnp.asarray(list(prompt.encode()), jnp.int32)[None], (n, 1))
        gen = jax.jit(self.generate, static_argnums=(2, 4, 5, 6))
        args = (variables["params"], tokens, length, jax.random.key(sc.seed), temperature,
                top_k, top_p)
        jax.block_until_ready(gen(*args))  # compile once, then time a clean run
        t0 = time.perf_counter()
        out = np.asarray(jax.block_until_ready(gen(*args)))
        speed = n * length / (time.perf_counter() - t0)
        texts = [prompt + decode_bytes(row) for row in out]
        for i, text in enumerate(texts):
            print(f"----- sample {i} (temperature={temperature}, top_k={top_k}, "
                  f"top_p={top_p}) -----")
            print(text)
        print(f"generated {n} x {length} tokens with the KV cache: {speed:,.0f} tokens/s")
        return texts
