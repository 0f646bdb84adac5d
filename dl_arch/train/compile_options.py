"""XLA options of the programs a run compiles, chosen per backend (CPU only; none elsewhere).

- A program that runs once (the init) compiles at LLVM's lowest optimisation level: a
  U-Net's init (a threefry hash per parameter) compiles in 2 s instead of 9, runs in 20 ms.
- Train and eval steps keep YNNPACK, jaxlib's CPU library, for dots and reductions but give
  convolutions to XLA's own kernels: with YNNPACK's the CNN configs' train steps ran
  1.07-1.45x slower (docs/results/benchmarks.md, "Convolutions without YNNPACK"). The
  option is left out where this jaxlib does not know it or XLA_FLAGS already sets it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax

RUN_ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 0}
# jaxlib's default set is individual dots, reductions and individual convolutions
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
STEP_CPU_OPTIONS = {
    YNN_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def run_once_compiler_options() -> dict[str, Any] | None:
    """XLA options for a program that runs once (the init): cheap codegen on CPU, else none."""
    return RUN_ONCE_CPU_OPTIONS if jax.default_backend() == "cpu" else None


@functools.cache
def _step_options() -> tuple[tuple[str, Any], ...]:
    if jax.default_backend() != "cpu" or YNN_OPTION in os.environ.get("XLA_FLAGS", ""):
        return ()
    try:  # a jaxlib that does not know the option or its values refuses the compile
        jax.jit(lambda x: x + 1).lower(0.0).compile(compiler_options=STEP_CPU_OPTIONS)
    except jax.errors.JaxRuntimeError:
        return ()
    return tuple(STEP_CPU_OPTIONS.items())


def step_compiler_options(extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """XLA options for a train or eval step on this backend, with `extra` over them (None
    when there are none, as `jax.jit` takes it)."""
    options = {**dict(_step_options()), **(extra or {})}
    return options or None
