"""A/B of how a run keeps its freed host memory, through `benchmarks.run`.

    python docs/results/cpu_zen5_2026-12-05/buffer_reuse_ab.py MODE [benchmarks.run args]

MODE: old (stop 53: thresholds 32 / 128 MiB, asynchronous dispatch), arena (thresholds
1 GiB and every thread in glibc's main arena; lost) or sync (thresholds 1 GiB and
synchronous CPU dispatch: what `keep_freed_memory` did from stop 56 to stop 58, which
replaced the thresholds by no mapped blocks and no trimming; see no_mmap_ab.py). Set before
JAX's first computation; `run.main`'s own call then does nothing.
"""

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # malloc.h

if __name__ == "__main__":
    mode = sys.argv[1]
    from dl_arch.train import host_memory

    libc = ctypes.CDLL("libc.so.6")
    mmap, trim = (32 << 20, 128 << 20) if mode == "old" else (1 << 30, 1 << 30)
    assert libc.mallopt(M_MMAP_THRESHOLD, mmap)
    assert libc.mallopt(M_TRIM_THRESHOLD, trim)
    if mode == "arena":
        assert libc.mallopt(M_ARENA_MAX, 1)
    host_memory._done = True
    import jax

    if mode == "sync":
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    from benchmarks import run

    print("mode", mode, flush=True)
    run.main(sys.argv[2:])
