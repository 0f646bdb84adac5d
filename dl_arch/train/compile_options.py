"""XLA options of the programs a run compiles, chosen per backend (CPU only; none elsewhere).

- A program that runs once (the init) compiles at LLVM's lowest optimisation level: a
  U-Net's init (a threefry hash per parameter) compiles in 2 s instead of 9, runs in 20 ms.
- Every program that runs a model (train and eval steps, a task's inference, evaluators)
  keeps YNNPACK, jaxlib's CPU library, for dots and reductions but gives convolutions to
  XLA's own kernels: with YNNPACK's the CNN configs' train steps ran 1.03-1.9x slower
  (docs/results/benchmarks.md, "Convolutions without YNNPACK"); programs without
  convolutions compile as they did. Compile them with `model_jit`. The option is left out
  where this jaxlib does not know it or XLA_FLAGS already sets it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax

RUN_ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 0}
# jaxlib's default set is individual dots, reductions and individual convolutions
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
MODEL_CPU_OPTIONS = {
    YNN_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def run_once_compiler_options() -> dict[str, Any] | None:
    """XLA options for a program that runs once (the init): cheap codegen on CPU, else none."""
    return RUN_ONCE_CPU_OPTIONS if jax.default_backend() == "cpu" else None


@functools.cache
def _model_options() -> tuple[tuple[str, Any], ...]:
    if jax.default_backend() != "cpu" or YNN_OPTION in os.environ.get("XLA_FLAGS", ""):
        return ()
    try:  # a jaxlib that does not know the option or its values refuses the compile
        jax.jit(lambda x: x + 1).lower(0.0).compile(compiler_options=MODEL_CPU_OPTIONS)
    except jax.errors.JaxRuntimeError:
        return ()
    return tuple(MODEL_CPU_OPTIONS.items())


def model_compiler_options(extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """XLA options for a program that runs a model on this backend, with `extra` over them
    (None when there are none, as `jax.jit` takes it)."""
    options = {**dict(_model_options()), **(extra or {})}
    return options or None


def model_jit(fn: Callable, *, compiler_options: dict[str, Any] | None = None,
              **jit_kwargs: Any) -> Callable:
    """`jax.jit(fn, **jit_kwargs)` with `model_compiler_options(compiler_options)`."""
    return jax.jit(fn, compiler_options=model_compiler_options(compiler_options), **jit_kwargs)
