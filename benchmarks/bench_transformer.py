"""Transformer benchmarks, ours and a reference side by side in one process.

    python -m benchmarks.run --only transformer [--quick]
    python -m benchmarks.bench_transformer [--quick]

Rows: a GPT train step (embedding, pre-LN causal blocks, tied head, Adam) vs the same
model in PyTorch (`nn.TransformerEncoderLayer(norm_first=True)`), with MFU against the
measured matmul peak; attention forward+backward through `jax.nn.dot_product_attention`
(ours) vs a naive einsum/softmax version vs Flax's `nn.MultiHeadDotProductAttention`;
sampling tokens/s with the KV cache vs re-reading the whole buffer per token; and step time
and temporary memory of a GPT train step as the sequence length doubles.
"""

from __future__ import annotations

from collections.abc import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import Row, compare, mfu_text
from benchmarks.phases import NO_LOSS, phase_text
from dl_arch.models.layers.attention import MultiHeadAttention
from dl_arch.models.transformer import GPT
from dl_arch.tasks.generation import generate_cached, generate_uncached
from dl_arch.train.flops import step_flops


def _gpt(d: int, layers: int, heads: int, vocab: int, max_len: int) -> GPT:
    return GPT(vocab_size=vocab, emb_dim=d, num_layers=layers, num_heads=heads, mlp_dim=4 * d,
               max_len=max_len, dropout_rate=0.0, attention_impl="auto")  # as configs/gpt_*


def _jax_train_step(model: GPT, tokens: jax.Array):
    """(jitted step, state, loss_fn) for one Adam step of next-token cross-entropy;
    `loss_fn(params)` is the step's loss."""
    params = model.init(jax.random.key(0), tokens[:, :-1])["params"]
    opt = optax.adam(1e-4)

    def loss_fn(p):
        logits = model.apply({"params": p}, tokens[:, :-1], train=True)  # no dropout: rate 0
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    def step(state):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return jax.jit(step, donate_argnums=0), (params, opt.init(params)), loss_fn


def _torch_gpt(d: int, layers: int, heads: int, vocab: int, max_len: int):
    import torch

    class TorchGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = torch.nn.Embedding(vocab, d)
            self.pos = torch.nn.Embedding(max_len, d)
            layer = torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0,
                                                     activation="gelu", batch_first=True,
                                                     norm_first=True)
            self.blocks = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = torch.nn.LayerNorm(d)

        def forward(self, x):
            t = x.shape[1]
            h = self.tok(x) + self.pos(torch.arange(t))[None]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(t)
            h = self.norm(self.blocks(h, mask=mask, is_causal=True))
            return h @ self.tok.weight.T

    return TorchGPT()


def gpt_train_rows(quick: bool) -> Iterable[Row]:
    import torch

    d, layers, heads, vocab = (128, 2, 4, 256) if quick else (256, 4, 4, 256)
    b, t = (8, 128) if quick else (16, 256)
    model = _gpt(d, layers, heads, vocab, t)
    tokens = jax.random.randint(jax.random.key(0), (b, t + 1), 0, vocab)
    step, state, loss_fn = _jax_train_step(model, tokens)
    flops = step_flops(step, state)
    holder = {"state": state}

    def ours():
        holder["state"], loss = step(holder["state"])
        return loss

    tm = _torch_gpt(d, layers, heads, vocab, t)
    topt = torch.optim.Adam(tm.parameters(), 1e-4)
    tt = torch.tensor(np.asarray(tokens), dtype=torch.long)

    def ref():
        topt.zero_grad(set_to_none=True)
        logits = tm(tt[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), tt[:, 1:].reshape(-1))
        loss.backward()
        topt.step()
        return loss.detach()

    row = compare(f"gpt train step d={d} L={layers} B={b} T={t}", ours, ref, "torch",
                  quick=quick, extra=lambda s: f"tokens/s={b * t / s:,.0f} "
                  + mfu_text(flops, s, quick))
    row.extra += " " + phase_text(loss_fn, lambda: (holder["state"][0],), ours, quick)
    yield row


def attention_rows(quick: bool) -> Iterable[Row]:
    """Causal self-attention forward+backward as training runs it: our layer with
    implementation "auto" (`train=True`) against the einsum path, XLA's fused
    `jax.nn.dot_product_attention`, Flax's `MultiHeadDotProductAttention` and PyTorch's
    `nn.MultiheadAttention` (its scaled_dot_product_attention kernel: no T x T matrix kept)."""
    b, t, d, h = (4, 256, 128, 4) if quick else (8, 512, 256, 8)
    x = jax.random.normal(jax.random.key(0), (b, t, d))
    layers = {name: MultiHeadAttention(h, implementation=name) for name in ("auto", "naive", "xla")}
    flax_mha = nn.MultiHeadDotProductAttention(h)
    p_ours = layers["auto"].init(jax.random.key(1), x)
    p_flax = flax_mha.init(jax.random.key(1), x, x)

    def fwd_bwd(f, params):
        g = jax.jit(jax.grad(lambda p, x_: jnp.sum(f(p, x_) ** 2), argnums=(0, 1)))
        return lambda: g(params, x)

    def ours_fn(name):
        return lambda p, x_: layers[name].apply(p, x_, causal=True, train=True)

    def loss_ours(p_and_x):  # the loss f_ours differentiates, w.r.t. (params, x) together
        return jnp.sum(ours_fn("auto")(*p_and_x) ** 2)

    mask = nn.make_causal_mask(jnp.ones((b, t)))
    f_ours = fwd_bwd(ours_fn("auto"), p_ours)
    refs = {"naive_einsum": fwd_bwd(ours_fn("naive"), p_ours),
            "xla_fused": fwd_bwd(ours_fn("xla"), p_ours),
            "flax_MHDPA": fwd_bwd(lambda p, x_: flax_mha.apply(p, x_, x_, mask=mask), p_flax),
            "torch_MHA": _torch_attention(b, t, d, h, np.asarray(x))}
    name = f"attention fwd+bwd causal B={b} T={t} D={d} auto"
    phases = phase_text(loss_ours, lambda: ((p_ours, x),), None, quick)  # one split serves all
    for ref_name, f_ref in refs.items():
        row = compare(f"{name} vs {ref_name.split('_')[0]}", f_ours, f_ref, ref_name, quick=quick)
        row.extra = phases
        yield row


def _torch_attention(b: int, t: int, d: int, heads: int, x: np.ndarray):
    """PyTorch's causal self-attention layer, forward and backward (input and weights)."""
    import torch

    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    xt = torch.tensor(x, requires_grad=True)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(t)

    def run():
        mha.zero_grad(set_to_none=True)
        xt.grad = None
        out, _ = mha(xt, xt, xt, attn_mask=causal, is_causal=True, need_weights=False)
        (out * out).sum().backward()
        return xt.grad

    return run


def generation_rows(quick: bool) -> Iterable[Row]:
    d, layers, heads = (128, 2, 4) if quick else (256, 4, 4)
    prompt_len, new = (16, 112) if quick else (32, 224)
    b = 4
    model = _gpt(d, layers, heads, 256, prompt_len + new)
    prompt = jax.random.randint(jax.random.key(0), (b, prompt_len), 0, 256)
    params = model.init(jax.random.key(1), prompt)["params"]
    cached = jax.jit(lambda p, x, k: generate_cached(model, p, x, new, k, 1.0, 0, 0.9))
    uncached = jax.jit(lambda p, x, k: generate_uncached(model, p, x, new, k, 1.0, 0, 0.9))
    key = jax.random.key(2)
    yield compare(f"generate {new} tokens x{b} d={d} L={layers} KV cache vs none",
                  lambda: cached(params, prompt, key), lambda: uncached(params, prompt, key),
                  "no_cache", quick=quick,
                  extra=lambda s: f"tokens/s={b * new / s:,.0f} (cached) {NO_LOSS}")


def scaling_rows(quick: bool) -> Iterable[Row]:
    d, layers, heads, b = 128, 2, 4, 4
    lengths = (128, 256, 512) if quick else (128, 256, 512, 1024, 2048)
    previous = None
    for t in lengths:
        model = _gpt(d, layers, heads, 256, t)
        tokens = jax.random.randint(jax.random.key(0), (b, t + 1), 0, 256)
        step, state, loss_fn = _jax_train_step(model, tokens)
        compiled = step.lower(state).compile()
        mem = compiled.memory_analysis()
        temp_mb = getattr(mem, "temp_size_in_bytes", 0) / 2**20 if mem is not None else 0.0
        holder = {"state": state}

        def ours(holder=holder, step=step):
            holder["state"], loss = step(holder["state"])
            return loss

        row = compare(f"gpt train step T={t} (B={b} d={d} L={layers})", ours, None, quick=quick)
        growth = "" if previous is None else f" x{row.ours_s / previous:.2f} vs T/2"
        row.extra = f"temp_mem={temp_mb:.1f}MiB{growth} " + phase_text(
            loss_fn, lambda holder=holder: (holder["state"][0],), ours, quick)
        previous = row.ours_s
        yield row


def rows(quick: bool) -> Iterable[Row]:
    yield from gpt_train_rows(quick)
    yield from attention_rows(quick)
    yield from generation_rows(quick)
    yield from scaling_rows(quick)


if __name__ == "__main__":
    from benchmarks.run import main_for

    main_for("transformer")
