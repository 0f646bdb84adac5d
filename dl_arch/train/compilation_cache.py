"""JAX's persistent compilation cache, so a second start of the same program compiles from disk.

XLA's compile of a train step takes seconds on a CPU and often longer than a short run's
training; the cache keys each program by its HLO, devices, flags and jax version, so a rerun,
a resumed run or a sweep's next seed loads the executable instead of compiling it again.
"""

from __future__ import annotations

import os

import jax

ENV = "JAX_COMPILATION_CACHE_DIR"
DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "dl_arch", "jax_compilation_cache")
MIN_COMPILE_SECS = 0.3  # leaves out the many tiny programs (eager ops, small helpers)


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns the cache on at `path`, else `$JAX_COMPILATION_CACHE_DIR`, else ~/.cache/dl_arch.

    `JAX_COMPILATION_CACHE_DIR=` (empty) turns it off. Returns the directory in use, or None.
    Child processes (a sweep's `--parallel` trials) inherit the choice through the variable.
    """
    path = path if path is not None else os.environ.get(ENV, DEFAULT_DIR)
    if not path:
        return None
    os.environ[ENV] = path
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
