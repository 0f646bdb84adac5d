"""Compile times of a config's programs under XLA options, side by side in one process (a
probe, not a `benchmarks.run` row: it compares option sets, not us against a reference).

    python -m benchmarks.compile_times configs/unet_shapes.py:smoke
    python -m benchmarks.compile_times configs/detector_shapes.py:smoke \
        --options='{"xla_cpu_use_fusion_emitters": false}'

Prints the init program's compile and run time at the default options and at the run-once
options the Trainer uses (`run_once_compiler_options`), then the train step's lower and
compile time and the run time of 20 steps after a first, untimed one, at the default options
and at `--options`. Run it with JAX_COMPILATION_CACHE_DIR= (empty): JAX reads that variable,
and a program loaded from the cache is not a compile.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from typing import Any

import jax

from dl_arch.testing import load_config
from dl_arch.train.compile_options import run_once_compiler_options
from dl_arch.train.trainer import Trainer


def _timed_compile(fn: Any, args: tuple, options: dict | None) -> tuple[float, float, Any]:
    """(lower seconds, compile seconds, compiled) of `jax.jit(fn)` on `args`."""
    start = time.perf_counter()
    lowered = jax.jit(fn, compiler_options=options).lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    return lowered_at - start, time.perf_counter() - lowered_at, compiled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a config spec, e.g. configs/unet_shapes.py:smoke")
    parser.add_argument("--options", default="{}", help="XLA compile options as JSON")
    args = parser.parse_args(argv)
    trainer = Trainer(load_config(args.config))
    batch = trainer.first_batch()
    init = functools.partial(trainer._init, batch)
    for label, options in (("default", None), ("run-once", run_once_compiler_options())):
        _, compile_s, compiled = _timed_compile(init, (), options)
        start = time.perf_counter()
        jax.block_until_ready(compiled())
        print(f"init  {label:9s} compile {compile_s:6.2f} s  run {time.perf_counter() - start:5.2f} s")
    state = trainer.init_state(batch)
    for label, options in (("default", None), ("--options", json.loads(args.options) or None)):
        lower_s, compile_s, step = _timed_compile(trainer.step_fn(), (state, batch), options)
        s, metrics = step(state, batch)  # the first call pays one-off costs: not timed
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(20):
            s, metrics = step(s, batch)
        jax.block_until_ready(metrics)
        print(f"step  {label:9s} lower {lower_s:5.2f} s  compile {compile_s:6.2f} s  "
              f"20 steps {time.perf_counter() - start:5.2f} s")


if __name__ == "__main__":
    main()
