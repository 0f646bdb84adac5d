"""GPU, second call: the embedding gradient (scatter vs one-hot vs sorted segment sum), the
ResNet max-pool (select-and-scatter vs taps), gpt_text's step with the one-hot gradient,
GPT-2-small's kernels, and who waits in the gpt_text loop's main thread.

Ran on the lent H200 as scratch_gpu/diag2.py (log: embedding_diag.log); from the repository
root: `PYTHONPATH=. python3 docs/results/gpu_diagnosis_2026-12-04/embedding_diag.py [--quick]`.
In that run the gpt_text section toggled `embed_mod.ONE_HOT_MAX_ROWS` of a first version of
dl_arch/models/layers/embed.py (a one-hot matmul gradient for tables up to 4,096 rows off
CPU), so the log's gpt_text rows are that version's; this run showed the float32 scatter
faster, which replaced it, and the section now times the landed `lookup` against plain
`jnp.take`. The section runner is loop_diag.py's. A record of how the figures were taken,
not maintained code.
"""
import cProfile
import io
import pstats
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from loop_diag import QUICK, _config, bare_and_calls, loop_run, profile_calls, run_sections, say

import dl_arch.models.layers.embed as embed_mod


def timeit(fn, *args, n=20):
    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            out = fn(*args)
        jax.block_until_ready(out)
        best.append((time.perf_counter() - t0) / n)
    return min(best)


def emb_section():
    shapes = ([(256, 16, 64)] if QUICK else
              [(4096, 256, 128), (4096, 1024, 512), (16384, 1024, 768), (16384, 4096, 768),
               (16384, 8192, 768), (16384, 32768, 768), (16384, 50304, 768)])
    for n, v, d in shapes:
        for dist in ("zipf", "uniform"):
            logits = (-jnp.log1p(jnp.arange(v, dtype=jnp.float32)) if dist == "zipf"
                      else jnp.zeros(v))
            ids = jax.random.categorical(jax.random.key(0), logits, shape=(n,))
            g = jax.random.normal(jax.random.key(1), (n, d), jnp.bfloat16)
            scatter = jax.jit(lambda g, i: jnp.zeros((v, d), jnp.float32).at[i].add(
                g.astype(jnp.float32)))
            scatter_bf = jax.jit(lambda g, i: jnp.zeros((v, d), jnp.bfloat16).at[i].add(g))
            onehot = jax.jit(lambda g, i: jnp.einsum(
                "nv,nd->vd", jax.nn.one_hot(i, v, dtype=g.dtype), g,
                preferred_element_type=jnp.float32))

            def _sorted(g, i):
                order = jnp.argsort(i)
                return jax.ops.segment_sum(g[order].astype(jnp.float32), i[order], v,
                                           indices_are_sorted=True)
            srt = jax.jit(_sorted)
            t = {k: timeit(f, g, ids) for k, f in (("scatter_f32", scatter),
                                                   ("scatter_bf16", scatter_bf),
                                                   ("onehot", onehot), ("sorted", srt))}
            say(f"emb grad N={n} V={v} D={d} {dist:7s} " +
                " ".join(f"{k}={s * 1e3:.3f}ms" for k, s in t.items()))


def pool_section():
    from dl_arch.models.cnn.taps import max_pool_by_taps
    shape = (8, 32, 32, 16) if QUICK else (256, 112, 112, 64)
    x = jax.random.normal(jax.random.key(0), shape, jnp.bfloat16)
    pads = ((1, 1), (1, 1))
    fns = {"select_and_scatter": lambda x: nn.max_pool(x, (3, 3), (2, 2), padding=pads),
           "taps": lambda x: max_pool_by_taps(x, 3, 2, pads)}
    res = {}
    for k, f in fns.items():
        g = jax.jit(jax.grad(lambda x, f=f: jnp.sum(f(x).astype(jnp.float32) ** 2)))
        res[k] = g
        say(f"maxpool 3x3s2 fwd+bwd {shape} bf16 {k}: {timeit(g, x) * 1e3:.3f} ms")
    import numpy as np
    a, b = (np.asarray(res[k](x).astype(jnp.float32)) for k in fns)
    say(f"   max|diff| {np.abs(a - b).max():.3g}")
    # the whole ResNet-18 step with the taps pool
    import dl_arch.models.cnn.resnet as resnet
    from benchmarks.bench_device import _resnet_step
    orig = resnet.max_pool
    for name, pool in (("xla", orig),
                       ("taps", lambda x, w, s, padding=0: max_pool_by_taps(
                           x, w, s, ((padding, padding), (padding, padding))))):
        resnet.max_pool = pool
        run, flops, batch = _resnet_step(QUICK, jnp.bfloat16)
        s = timeit(run, n=10)
        say(f"resnet18 bf16 step pool={name}: {s * 1e3:.2f} ms, {flops / s / 1e12:.1f} TFLOP/s")
    resnet.max_pool = orig


def gpt_text_section():
    """gpt_text's bare step (and loop) with XLA's bfloat16 gradient of the token table, then
    with the landed `lookup` (float32 sum)."""
    landed = embed_mod.lookup
    for name, fn in (("jnp.take", lambda t, i: jnp.take(t, i, axis=0)), ("lookup", landed)):
        embed_mod.lookup = fn  # what `Embed` calls
        config = _config("configs/gpt_text.py", 40 if QUICK else 400, 0)
        config.log_every_steps = 10 if QUICK else 50
        rate, drained, back, run = bare_and_calls(config, 40 if QUICK else 400)
        say(f"gpt_text {name}: bare={rate:.0f}/s call drained={drained * 1e3:.3f}"
            f" ms back={back * 1e3:.3f} ms")
        if fn is landed:
            profile_calls(run, 20, "gpt_text lookup", top=8)
            loop, wait, busy = loop_run(config)[:3]
            say(f"   loop={loop:.0f}/s loop/bare={loop / rate:.2f} wait={wait:.0%}")
    embed_mod.lookup = landed


def gpt2_section():
    from benchmarks.bench_device import _gpt_step
    run, flops, tokens = _gpt_step(QUICK, "auto")
    s = timeit(run, n=5)
    say(f"gpt2-small bf16 step {s * 1e3:.2f} ms {flops / s / 1e12:.1f} TFLOP/s")

    profile_calls(run, 3, "gpt2-small", top=20)


def loop_callers_section():
    config = _config("configs/gpt_text.py", 40 if QUICK else 600, 0)
    prof = cProfile.Profile()
    prof.enable()
    loop_run(config)
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s).sort_stats("tottime")
    st.print_callers("threading.py.*wait|stages.py.*__call__|_thread.lock")
    print(s.getvalue()[-5000:], flush=True)


if __name__ == "__main__":
    say("backend", jax.default_backend(), jax.__version__)
    run_sections({"emb": emb_section, "gpt_text": gpt_text_section, "pool": pool_section,
                  "gpt2": gpt2_section, "callers": loop_callers_section})
