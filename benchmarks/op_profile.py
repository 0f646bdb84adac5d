"""Where a benchmark row's step spends its time, op by op (XLA's CPU ops from a profiler trace).

    python -m benchmarks.op_profile lstm gpt resnet18 lenet5 mobilenet_v2 mlp_xor mlp_shapes [--quick]
        [--top 8]
        [--steps 5]

Runs the row's jitted step (built as the row builds it) under `jax.profiler.trace` with XLA's
per-op trace events on (`--xla_cpu_enable_xprof_traceme`, added to XLA_FLAGS here, before JAX
starts), sums each op's time over the profiled steps and prints the most expensive ops with
their share of the step. An op is named as XLA's HLO names it (`convolution.3`, `fusion.12`,
`dot.5`); `--hlo` prints each top op's HLO text so a fusion can be read. CPU only.
It keeps JAX's asynchronous CPU dispatch, under which the trace names the ops (dispatched
synchronously, as `keep_freed_memory` does for the loop and `benchmarks.run`, most of a step
shows as the executable's own time). Its heap is kept as theirs, with one arena, so the
dispatch thread's buffers are reused rather than mapped and faulted afresh each step
(`host_memory.keep_freed_heap`): MobileNetV2's b32 step read 422-427 ms with it and 538-707
without, against 342 in `benchmarks.run` (docs/results/cpu_zen4_2026-12-05).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true").strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from dl_arch.train.host_memory import keep_freed_heap  # noqa: E402

keep_freed_heap(one_arena=True)  # before JAX starts its threads

# Trace events that wrap a whole program or its dispatch, not one op of it.
_WRAPPERS = re.compile(r"^(PjitFunction|Thunk|TfrtCpu|PjRt|Execute|ExecuteHelper|"
                       r"jit_|ThreadpoolListener|XlaModule|\$)", re.IGNORECASE)


def _row_lstm(quick: bool) -> tuple[Callable[[], Any], Any]:
    from benchmarks.bench_rnn import _ours

    b, t, d, h = (16, 64, 32, 64) if quick else (32, 256, 128, 256)
    x = jax.random.normal(jax.random.key(0), (b, t, d))
    grad, params, _ = _ours("lstm", x, h)
    return (lambda: grad(params, x)), grad.lower(params, x)


def _row_gpt(quick: bool) -> tuple[Callable[[], Any], Any]:
    from benchmarks.bench_transformer import _gpt, _jax_train_step

    d, layers, heads, vocab = (128, 2, 4, 256) if quick else (256, 4, 4, 256)
    b, t = (8, 128) if quick else (16, 256)
    tokens = jax.random.randint(jax.random.key(0), (b, t + 1), 0, vocab)
    step, state, _ = _jax_train_step(_gpt(d, layers, heads, vocab, t), tokens)
    holder = {"state": state}
    lowered = step.lower(state)

    def run():
        holder["state"], loss = step(holder["state"])
        return loss

    return run, lowered


def _cnn_row(name: str, batch: int, hw: int, channels: int, **fields: Any
             ) -> tuple[Callable[[], Any], Any]:
    from benchmarks.bench_cnn import our_sgd_step
    from dl_arch.registry import MODELS

    rng = np.random.default_rng(0)
    images = jax.numpy.asarray(rng.standard_normal((batch, hw, hw, channels), np.float32))
    labels = jax.numpy.asarray(rng.integers(0, 10, batch).astype(np.int32))
    run, step, holder = our_sgd_step(MODELS.get(name)(num_classes=10, stem="small", **fields),
                                     images, labels)
    return run, step.lower(holder["state"], images, labels)


def _row_loop_step(spec: str) -> tuple[Callable[[], Any], Any]:
    """The loop's own jitted step (metric window included) of config `spec`, on its first
    batch: what `benchmarks.bench_loop` times as the bare step."""
    from benchmarks.loop_step import loop_stepper
    from dl_arch.testing import load_config
    from dl_arch.train.trainer import Trainer

    trainer = Trainer(load_config(spec))
    run, held = loop_stepper(trainer, trainer.first_batch())
    return run, held["step"].lower(held["state"], held["batch"], held["window"])


ROWS: dict[str, Callable[[bool], tuple[Callable[[], Any], Any]]] = {
    "mlp_xor": lambda quick: _row_loop_step("configs/mlp_xor.py"),
    "mlp_shapes": lambda quick: _row_loop_step("configs/mlp_shapes.py"),
    "lstm": _row_lstm,
    "gpt": _row_gpt,
    "resnet18": lambda quick: _cnn_row("resnet18", 32 if quick else 128, 32, 3),
    "lenet5": lambda quick: _cnn_row("lenet5", 128, 28, 1),
    "mobilenet_v2": lambda quick: _cnn_row("mobilenet_v2", 32, 32, 3, dropout_rate=0.0),
}


def op_times(run: Callable[[], Any], steps: int) -> tuple[dict[str, float], float]:
    """({op name: self seconds per step}, unprofiled wall seconds per step) over `steps`
    calls of `run` (after two untimed ones, so compiles and first-call costs stay out).
    An op's self time excludes the ops nested in it (a `while` loop's body ops)."""
    for _ in range(2):
        jax.block_until_ready(run())
    t0 = time.perf_counter()
    for _ in range(steps):
        jax.block_until_ready(run())
    wall = (time.perf_counter() - t0) / steps
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(steps):
                jax.block_until_ready(run())
        (path,) = glob.glob(os.path.join(logdir, "**", "perfetto_trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    by_thread: dict[Any, list[dict]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e and not _WRAPPERS.match(e.get("name", "")):
            by_thread[(e.get("pid"), e.get("tid"))].append(e)
    totals: dict[str, float] = collections.defaultdict(float)
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[list] = []  # [end time, name, self time]
        for e in thread_events:
            while stack and stack[-1][0] <= e["ts"]:
                _, name, self_us = stack.pop()
                totals[name] += self_us * 1e-6 / steps
            if stack:
                stack[-1][2] -= e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], e["dur"]])
        for _, name, self_us in stack:
            totals[name] += self_us * 1e-6 / steps
    return dict(totals), wall


def hlo_of(hlo_text: str, op: str) -> str:
    """The line of a compiled program's HLO text that defines `op`."""
    lines = [ln.strip() for ln in hlo_text.splitlines() if re.search(rf"\b{re.escape(op)} = ", ln)]
    return lines[0][:400] if lines else "(not found in the compiled HLO)"


def report(name: str, quick: bool, top: int, steps: int, show_hlo: bool) -> str:
    """The row's top ops as text: self seconds per step and share of all ops' time."""
    run, lowered = ROWS[name](quick)
    totals, wall = op_times(run, steps)
    total = sum(totals.values())
    lines = [f"{name}: {wall * 1e3:.1f} ms per step unprofiled; ops (profiled, self time) "
             f"{total * 1e3:.1f} ms; share of the ops' sum:"]
    hlo_text = lowered.compile().as_text() if show_hlo else ""
    for op, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {op:<40} {seconds * 1e3:8.2f} ms  {seconds / total:6.1%}")
        if show_hlo:
            lines.append(f"      {hlo_of(hlo_text, op)}")
    kinds: dict[str, float] = collections.defaultdict(float)
    for op, seconds in totals.items():  # `transpose_copy_fusion.27` -> transpose_copy_fusion
        kinds[re.sub(r"\.\d+$", "", op.removeprefix("end: "))] += seconds
    lines.append("  by kind: " + ", ".join(
        f"{k} {v / total:.0%}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:6]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="+", choices=sorted(ROWS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--hlo", action="store_true")
    args = parser.parse_args()
    for name in args.rows:
        print(report(name, args.quick, args.top, args.steps, args.hlo), flush=True)


if __name__ == "__main__":
    main()
