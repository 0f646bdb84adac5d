"""Autoregressive generation for every language model: logit filtering and the decoding loops.

- `filter_logits` / `next_token`: temperature (0: greedy), top-k and top-p (nucleus) sampling.
- `generate_stateful`: recurrent models step their own state, one token per call.
- `generate_cached`: attention decoders (a `decode` field, as `GPT` has) prefill the prompt in
  one call, then decode one token per step on the KV cache.
- `generate_uncached`: any causal model, re-reading the whole fixed-size buffer at every step
  (O(T^2) per token): the reference the two incremental loops must match.
- `generate` picks one of them; `sample_tokens` runs it under jit on one prompt;
  `print_samples` is the byte-level text sampler of `launch.py --sample` (`config.sample`,
  `SAMPLE_FIELDS`), or, given the run's tokenizer (a checkpoint's own, `config.dataset.tokenizer`),
  encodes the prompt and decodes the samples with it (`encode_prompt`, `decode_sample`); the
  `text_samples` evaluator writes `samples.txt` with the same fields.

Every loop draws the token of step i with key i of `jax.random.split(rng, length)`, so one seed
gives the same tokens whichever loop runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.tokenizers import Tokenizer
from dl_arch.train.compile_options import model_jit

# `config.sample` of `launch.py --sample` (and, with other defaults, of `config.text_samples`)
SAMPLE_FIELDS: Fields = {
    "prompt": Field("\n", "text the samples continue ('' stands for a newline, or for the "
                          "begin token of a checkpoint's tokenizer)"),
    "length": Field(300, "tokens generated per sample", low=1),
    "num_samples": Field(1, "samples generated", low=1),
    "temperature": Field(0.8, "softmax temperature (0: greedy)", low=0.0),
    "top_k": Field(0, "sample among the k most likely tokens (0: all)", low=0),
    "top_p": Field(1.0, "nucleus sampling: the smallest set of tokens of this total "
                        "probability (1: all)", low=0.0, high=1.0, low_open=True),
    "seed": Field(0, "seed of the sampling noise"),
}

# (params, prompt (B, P), length, rng, temperature, top_k, top_p=...) -> tokens (B, length)
Generator = Callable[..., jax.Array]


def filter_logits(logits_BV: jax.Array, temperature: float, top_k: int = 0, top_p: float = 1.0
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


def next_token(rng: jax.Array, logits_BV: jax.Array, temperature: float, top_k: int = 0,
               top_p: float = 1.0) -> jax.Array:
    """Token ids (B,): greedy when temperature <= 0, else a draw from the filtered logits."""
    if temperature <= 0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    return jax.random.categorical(rng, filter_logits(logits_BV, temperature, top_k, top_p),
                                  axis=-1).astype(jnp.int32)


def generate_stateful(model: Any, params: Any, prompt_BP: jax.Array, length: int,
                      rng: jax.Array, temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0) -> jax.Array:
    """Continues `prompt` (B, P) by `length` tokens stepping a recurrent model's state."""
    v = {"params": params}
    logits, state = model.apply(v, prompt_BP, return_state=True)

    def step(carry, key):
        last_BV, state = carry
        tok_B = next_token(key, last_BV, temperature, top_k, top_p)
        logits, state = model.apply(v, tok_B[:, None], initial_state=state, return_state=True)
        return (logits[:, -1], state), tok_B

    _, toks_LB = jax.lax.scan(step, (logits[:, -1], state), jax.random.split(rng, length))
    return toks_LB.T


def init_cache(model: Any, *inputs: jax.Array) -> Any:
    """An empty KV cache of a decode=True model, shaped as `model.init(key, *inputs)` makes it."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))["cache"]
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
    cache = init_cache(dec, jnp.ones((b, total), jnp.int32))
    logits, upd = dec.apply({"params": params, "cache": cache}, prompt_BP, mutable=["cache"])

    def step(carry, key):
        cache, last_BV = carry
        tok_B = next_token(key, last_BV, temperature, top_k, top_p)
        logits, upd = dec.apply({"params": params, "cache": cache}, tok_B[:, None],
                                mutable=["cache"])
        return (upd["cache"], logits[:, -1]), tok_B

    _, toks_LB = jax.lax.scan(step, (upd["cache"], logits[:, -1]), jax.random.split(rng, length))
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


def incremental_decoder(model: Any) -> Generator | None:
    """The loop that steps `model`'s own state (recurrent state or KV cache), if it has one."""
    if getattr(model, "recurrent", False):
        return generate_stateful
    if hasattr(model, "decode"):
        return generate_cached
    return None


def generate(model: Any, params: Any, prompt_BP: jax.Array, length: int, rng: jax.Array,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             incremental: bool | None = None) -> jax.Array:
    """Continues `prompt` (B, P) by `length` tokens; returns (B, length).

    `incremental` (default: whenever the model can) steps the model's recurrent state or KV
    cache one token at a time; otherwise the whole buffer is re-read at every step.
    """
    loop = incremental_decoder(model)
    if incremental and loop is None:
        raise ValueError(f"{type(model).__name__} has neither a recurrent state nor a KV "
                         "cache: generate with incremental=False")
    if incremental is False or loop is None:
        loop = generate_uncached
    return loop(model, params, prompt_BP, length, rng, temperature, top_k, top_p)


def decode_bytes(tokens: Any) -> str:
    """Byte tokens -> text (invalid UTF-8 shown as replacement characters)."""
    return bytes(int(t) % 256 for t in np.asarray(tokens).tolist()).decode("utf-8", "replace")


def sample_tokens(generator: Generator, params: Any, prompt_P: Any, sample_config: Any,
                  runs: int = 1) -> tuple[np.ndarray, float]:
    """`num_samples` continuations (N, length) of the prompt tokens (P,), and tokens/s.

    `sample_config` gives length, num_samples, temperature, top_k, top_p and seed; with
    `runs=2` the first run compiles and the second, clean one is timed.
    """
    sc = sample_config
    n, length = sc.num_samples, sc.length
    tokens = jnp.tile(jnp.asarray(prompt_P, jnp.int32)[None], (n, 1))
    gen = model_jit(lambda p, x, k: generator(p, x, length, k, sc.temperature, sc.top_k,
                                              top_p=sc.top_p))
    args = (params, tokens, jax.random.key(sc.seed))
    for _ in range(runs - 1):
        jax.block_until_ready(gen(*args))
    t0 = time.perf_counter()
    out = np.asarray(jax.block_until_ready(gen(*args)))
    return out, n * length / (time.perf_counter() - t0)


def encode_prompt(prompt: str, tokenizer: Tokenizer | None = None) -> list[int]:
    """Prompt tokens: UTF-8 bytes, or `tokenizer`'s ids; '' is a newline (bytes) or the
    tokenizer's begin token (GPT-2's <|endoftext|>, as `transformers` starts a free sample)."""
    if tokenizer is None:
        return list((prompt or "\n").encode())
    if not prompt and tokenizer.bos_id is not None:
        return [int(tokenizer.bos_id)]
    ids = tokenizer.encode(prompt or "\n")
    if not ids:
        raise ConfigError(f"config.sample.prompt={prompt!r} encodes to no token; give some text")
    return ids


def decode_sample(prompt: str, prompt_ids: list[int], tokens: Any,
                  tokenizer: Tokenizer | None = None) -> str:
    """Prompt and continuation as text. With a tokenizer the whole id sequence is decoded at
    once (a word or character split across the boundary reads right), up to the first end
    token; a begin-token prompt is not shown."""
    if tokenizer is None:
        return (prompt or "\n") + decode_bytes(tokens)
    shown = [] if not prompt and prompt_ids == [tokenizer.bos_id] else list(prompt_ids)
    return tokenizer.decode([*shown, *np.asarray(tokens).tolist()])


def print_samples(generator: Generator, params: Any, sample_config: Any,
                  report_speed: bool = False, tokenizer: Tokenizer | None = None) -> list[str]:
    """Prints and returns `num_samples` continuations of `sample_config.prompt`: bytes, or
    through `tokenizer` when the run has one.

    `report_speed` compiles once, then times a second, clean run and prints tokens/s.
    """
    sc = sample_config
    prompt_ids = encode_prompt(sc.prompt, tokenizer)
    out, speed = sample_tokens(generator, params, prompt_ids, sc, runs=2 if report_speed else 1)
    texts = [decode_sample(sc.prompt, prompt_ids, row, tokenizer) for row in out]
    for i, text in enumerate(texts):
        print(f"----- sample {i} (temperature={sc.temperature}, top_k={sc.top_k}, "
              f"top_p={sc.top_p}) -----")
        print(text)
    if report_speed:
        print(f"generated {sc.num_samples} x {sc.length} tokens: {speed:,.0f} tokens/s")
    return texts
