"""The accelerator checks (issue 22, item 5): bfloat16 MFU of the GPT and ResNet-18 train
steps, cuDNN's fused attention against XLA's, and how much of the loop's time the device
waits for its input.

    python -m benchmarks.run --only device            # on a GPU or TPU: the sizes below
    python -m benchmarks.run --only device --quick    # tiny sizes, any backend (the tests)
    python -m benchmarks.run --only device --sections loop,embedding   # some of the rows

Rows, each timed in one process:
- the backend, its devices and the library versions (the numbers depend on them);
- the measured matmul peak (bfloat16 on an accelerator), the MFU denominator;
- a GPT-2-small train step (d 768, 12 layers, B16 T1024, Adam) in bfloat16 with
  `attention_impl="auto"` against the same step with XLA's attention;
- a ResNet-18 train step (ImageNet stem, 224x224, batch 256, SGD) in bfloat16 against
  float32;
- the embedding table's gradient in bfloat16 (`dl_arch.models.layers.embed.lookup`, summed in
  float32) against XLA's gradient of `jnp.take` (summed in bfloat16) for Zipf-distributed
  ids at `gpt_text`'s and GPT-2's sizes;
- self-attention forward and backward in bfloat16 (B8 T2048, 12 heads of 64), causal and
  under a padding mask: the layer's "auto" against "cudnn", "xla" and "naive" (a kernel this
  backend lacks is named, not timed), and the output's largest difference from XLA's;
- the whole loop (`train_and_evaluate`) against its bare step (one step a call) for
  `lenet5_shapes` (grain workers 0 and 8) and `gpt_text` in the backend's default dtype,
  one step a call and several (`steps_per_call`): the share of the loop's
  time spent waiting for the next batch (its `train/input_wait`), the device's idle
  share it implies, about 1 - loop/bare, and how long one call of the step holds the host
  (on a GPU the host's time to launch the step's kernels: 2.4-3.2 ms for `gpt_text`'s; near
  the step's time, the host cannot run ahead of the device).
Without --quick on a CPU the rows are skipped: their sizes are accelerator sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Row, compare, mfu_text, peak_matmul_flops
from dl_arch.train.flops import jaxpr_flops

# (config, grain worker processes, optimiser steps per call)
LOOP_CONFIGS = (("configs/lenet5_shapes.py", 0, 1), ("configs/lenet5_shapes.py", 8, 1),
                ("configs/lenet5_shapes.py", 8, 10), ("configs/gpt_text.py", 0, 1),
                ("configs/gpt_text.py", 0, 5))


def _info(name: str, text: str) -> Row:
    return Row(name, 0.0, extra=text)


def _stepper(jitted: Callable, state: Any, *args: Any) -> tuple[Callable[[], Any], float]:
    """(run one step on the held state, the step's matmul and convolution FLOPs, counted
    from its jaxpr: XLA's cost analysis misses cuBLAS and cuDNN calls on a GPU)."""
    traced = jitted.trace(state, *args)  # one trace for the count and the program
    flops = jaxpr_flops(traced.jaxpr)
    compiled = traced.lower().compile()
    holder = {"state": state}

    def run():
        holder["state"], loss = compiled(holder["state"], *args)
        return loss

    return run, flops


def environment_row() -> Row:
    """The backend, its devices and the versions the figures depend on."""
    import flax
    import optax

    devices = jax.devices()
    return _info("environment", f"backend={jax.default_backend()} devices={len(devices)}x"
                                f"{devices[0].device_kind} jax={jax.__version__} "
                                f"flax={flax.__version__} optax={optax.__version__}")


def _gpt_step(quick: bool, attention: str) -> tuple[Callable[[], Any], float, int]:
    """(run one bfloat16 GPT train step, its FLOPs, tokens a step) with this attention."""
    from benchmarks.bench_transformer import _jax_train_step
    from dl_arch.models.transformer import GPT

    d, layers, heads, vocab, b, t = ((64, 1, 4, 256, 4, 64) if quick
                                     else (768, 12, 12, 50304, 16, 1024))
    model = GPT(vocab_size=vocab, emb_dim=d, num_layers=layers, num_heads=heads,
                mlp_dim=4 * d, max_len=t, dropout_rate=0.0, attention_impl=attention,
                dtype=jnp.bfloat16)
    tokens = zipf_ids(jax.random.key(0), vocab, (b, t + 1))  # text's skew, not uniform ids
    step, state, _ = _jax_train_step(model, tokens)
    return *_stepper(step, state), b * t


def gpt_rows(quick: bool) -> Iterable[Row]:
    ours, flops, tokens = _gpt_step(quick, "auto")
    xla, _, _ = _gpt_step(quick, "xla")
    yield compare(f"gpt bf16 train step ({tokens} tokens), attention auto", ours, xla,
                  "attention xla", quick,
                  extra=lambda s: f"tokens/s={tokens / s:,.0f} TFLOP/s={flops / s / 1e12:.1f} "
                                  + mfu_text(flops, s, quick))


def zipf_ids(key: jax.Array, vocab: int, shape: tuple[int, ...]) -> jax.Array:
    """Ids with probability 1/(rank + 1), as words in text: many tokens share a few rows,
    which is what makes a scatter-add gradient slow on a GPU (uniform ids hide it)."""
    return jax.random.categorical(key, -jnp.log1p(jnp.arange(vocab, dtype=jnp.float32)),
                                  shape=shape)


def embedding_gradients(tokens: int, vocab: int, dim: int
                        ) -> tuple[tuple[Callable, Callable], tuple[jax.Array, ...]]:
    """((ours, `jnp.take`'s) jitted table gradients in bfloat16, their arguments: table, Zipf
    ids, cotangent). Ids and cotangent are arguments, not constants closed over: XLA folded
    the whole constant gradient at compile time once (4096 ids into 256x128)."""
    from dl_arch.models.layers.embed import lookup

    ids = zipf_ids(jax.random.key(0), vocab, (tokens,))
    table = jax.random.normal(jax.random.key(1), (vocab, dim), jnp.bfloat16)
    dy = jax.random.normal(jax.random.key(2), (tokens, dim), jnp.bfloat16)
    ours, take = (jax.jit(jax.grad(lambda t, i, d, f=f: jnp.sum((f(t, i) * d).astype(jnp.float32))))
                  for f in (lookup, lambda t, i: jnp.take(t, i, axis=0)))
    return (ours, take), (table, ids, dy)


def embedding_rows(quick: bool) -> Iterable[Row]:
    """Our lookup's table gradient (float32 sum) against `jnp.take`'s, both in bfloat16."""
    sizes = ((256, 64, 16),) if quick else ((4096, 256, 128), (16384, 50304, 768))
    for tokens, vocab, dim in sizes:
        (ours, take), args = embedding_gradients(tokens, vocab, dim)
        yield compare(f"embedding gradient bf16 {tokens} Zipf ids into {vocab}x{dim}",
                      lambda: ours(*args), lambda: take(*args), "jnp.take", quick)


def _resnet_step(quick: bool, dtype: Any) -> tuple[Callable[[], Any], float, int]:
    """(run one ResNet-18 SGD train step in `dtype`, its FLOPs, images a step); --quick: one
    block a stage (a ResNet-10: half the compile) on 32x32 images."""
    import optax

    from benchmarks.bench_cnn import make_train_step
    from dl_arch.registry import MODELS

    batch, side, stem = (8, 32, "small") if quick else (256, 224, "imagenet")
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((batch, side, side, 3), np.float32))
    labels = jnp.asarray(rng.integers(0, 1000, batch).astype(np.int32))
    model = MODELS.get("resnet18")(num_classes=1000, stem=stem, dtype=dtype,
                                   stage_sizes=(1, 1, 1, 1) if quick else (2, 2, 2, 2))
    variables = jax.jit(lambda: model.init(jax.random.key(0), images))()
    tx = optax.sgd(0.01, momentum=0.9)
    state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    return *_stepper(make_train_step(model, tx), state, images, labels), batch


def resnet_rows(quick: bool) -> Iterable[Row]:
    ours, flops, batch = _resnet_step(quick, jnp.bfloat16)
    f32, _, _ = _resnet_step(quick, jnp.float32)
    name = "resnet10" if quick else "resnet18"
    yield compare(f"{name} bf16 train step (batch {batch})", ours, f32, "float32", quick,
                  extra=lambda s: f"images/s={batch / s:,.0f} TFLOP/s={flops / s / 1e12:.1f} "
                                  + mfu_text(flops, s, quick))


def attention_rows(quick: bool, padded: bool = False) -> Iterable[Row]:
    """The layer's "auto" against each kernel, forward and backward in bfloat16: causal
    self-attention (GPT's), or with `padded` bidirectional attention under a padding mask
    (BERT's; a quarter of the keys padded in every other sequence). A kernel this backend
    refuses is named with its error instead."""
    from dl_arch.models.layers.attention import MultiHeadAttention, auto_implementation, padding_mask

    b, t, heads, dim = (2, 64, 4, 16) if quick else (8, 2048, 12, 64)
    kind = "padding mask" if padded else "causal"
    x = jax.random.normal(jax.random.key(0), (b, t, heads * dim), jnp.bfloat16)
    valid_BT = jnp.arange(t)[None, :] < jnp.where(jnp.arange(b) % 2 == 0, t, 3 * t // 4)[:, None]
    mask = padding_mask(valid_BT) if padded else None
    layers = {name: MultiHeadAttention(heads, implementation=name, dtype=jnp.bfloat16)
              for name in ("auto", "cudnn", "xla", "naive")}
    params = jax.jit(layers["auto"].init)(jax.random.key(1), x)
    picked = auto_implementation(True, causal_self=not padded, dtype=jnp.bfloat16, masked=padded,
                                 masked_self=padded)
    yield _info(f"attention auto picks ({kind})", f"{picked} (train, self-attention, bf16)")
    runs, outputs = {}, {}
    for name, layer in layers.items():
        def apply(p, x_, layer=layer):
            return layer.apply(p, x_, mask=mask, causal=not padded, train=True)

        forward = jax.jit(apply)
        grad = jax.jit(jax.grad(lambda p, x_, apply=apply: jnp.sum(
            (apply(p, x_).astype(jnp.float32) * valid_BT[..., None]) ** 2), argnums=(0, 1)))
        try:
            outputs[name] = np.asarray(forward(params, x).astype(jnp.float32))[np.asarray(valid_BT)]
            jax.block_until_ready(grad(params, x))
        except Exception as error:  # noqa: BLE001 - a kernel this backend lacks is reported
            yield _info(f"attention {name} ({kind})", f"unavailable: {type(error).__name__}: "
                                                       f"{str(error).splitlines()[0][:120]}")
            continue
        runs[name] = lambda grad=grad: grad(params, x)
    scale = float(np.abs(outputs["xla"]).max())
    for name in ("cudnn", "xla", "naive"):
        if name in runs:  # real (unpadded) queries compared: padded ones differ by kernel
            diff = float(np.abs(outputs["auto"] - outputs[name]).max()) / scale
            yield compare(f"attention fwd+bwd bf16 B{b} T{t} {heads}x{dim} {kind}: auto vs {name}",
                          runs["auto"], runs[name], name, quick,
                          extra=lambda s, diff=diff: f"max|auto-{name}|/max|xla|={diff:.1e}")


def loop_rows(quick: bool) -> Iterable[Row]:
    """Loop against bare step in the backend's default dtype (bfloat16 on accelerators)."""
    from benchmarks.bench_loop import _config, bare_steps_per_sec, call_seconds, loop_run

    steps = 40 if quick else 1000
    configs = LOOP_CONFIGS[:1] if quick else LOOP_CONFIGS
    for spec, workers, per_call in configs:
        config = _config(spec, steps, workers, per_call)
        config.log_every_steps = 10 if quick else 50
        loop, wait, busy, host_cpu = loop_run(config)
        bare = bare_steps_per_sec(config, steps)
        call = call_seconds(config, min(steps, 200))
        yield Row(f"loop vs bare step: {spec.split('/')[-1][:-3]} workers={workers} "
                  f"steps_per_call={per_call}",
                  1.0 / loop, 1.0 / bare, "bare step",
                  extra=f"loop={loop:.0f} steps/s bare={bare:.0f} steps/s; the loop waited "
                        f"for input {wait:.0%} of its time (train/input_wait) and its input "
                        f"thread worked {busy:.0%} of it (train/input_busy), the host's "
                        f"processes kept {host_cpu:.1f} cores busy (train/host_cpu), the device "
                        f"about {max(0.0, 1.0 - loop / bare):.0%} (1 - loop/bare); one call "
                        f"of the step holds the host {call * 1e3:.2f} ms of its "
                        f"{1e3 / bare:.2f} ms (near the step's: the host cannot run ahead)")


def _attention_both(quick: bool) -> Iterable[Row]:
    yield from attention_rows(quick)
    yield from attention_rows(quick, padded=True)


# the run's parts, in order; `--sections` picks some (a lent GPU's minutes are few)
SECTIONS: dict[str, Callable[[bool], Iterable[Row]]] = {
    "gpt": gpt_rows, "resnet": resnet_rows, "embedding": embedding_rows,
    "attention": _attention_both, "loop": loop_rows}


def rows(quick: bool, sections: Iterable[str] = ()) -> Iterable[Row]:
    """The environment and peak rows, then every section (or those named in `sections`)."""
    sections = tuple(sections)
    if not set(sections) <= set(SECTIONS):
        raise ValueError(f"sections {sections}: bench_device has {tuple(SECTIONS)}")
    yield environment_row()
    if jax.default_backend() == "cpu" and not quick:
        yield _info("device rows", "skipped: accelerator sizes; --quick runs them small here")
        return
    peak = peak_matmul_flops(quick)
    yield _info(f"peak matmul ({jax.default_backend()}, measured)", f"{peak / 1e12:,.2f} TFLOP/s")
    for name, section in SECTIONS.items():
        if not sections or name in sections:
            yield from section(quick)
