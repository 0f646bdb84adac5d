"""Host memory that a step frees stays with the process, so the next step reuses it.

XLA:CPU allocates each step's temporary buffers with the C library's `malloc` and frees them
when the step ends. glibc maps a large block fresh from the kernel (and gives the top of
its heap back) when the block passes its mmap and trim thresholds, which it moves as the
process runs: a step whose temporaries sit near those thresholds then pays for page faults
and zeroed pages every step, or not, by chance of the process's history. LeNet-5's loop
step on `shapes` (about 10 MiB of temporaries) took 5.1-6.5 ms in six processes against
2.7-3.9 ms with the thresholds fixed (docs/results/benchmarks.md). Fixed here: no block is
mapped on its own (`M_MMAP_MAX` 0: every one comes from the heap) and the heap is never
trimmed, so a process keeps the most memory it has held. Bounded thresholds (1 GiB each,
until stop 58) still mapped a step's temporaries afresh every step once they passed 1 GiB:
MobileNetV2's b128 step faulted in 3 GiB a step and ran 1.7-2.6 s instead of 1.0 s.

glibc gives each thread an arena of its own, whose heaps hold at most 64 MiB: a larger block
allocated on another thread is mapped afresh whatever the settings. XLA:CPU allocates a
step's buffers on the thread that runs it, a thread of its own under asynchronous dispatch,
so CPU steps are dispatched synchronously here: a 103 MB output was written in 4.5 ms
instead of 25 ms. JAX reads that option when it makes its CPU client, so call this before
JAX's first computation, as `launch.py` and `benchmarks.run` do (figures: benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import jax

# glibc's mallopt parameters (malloc.h) and the values set here
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = -1  # mallopt(3): a trim threshold of -1 turns trimming off
NO_MMAP = 0  # at most this many blocks mapped on their own: none

_done = False


def keep_freed_memory() -> bool:
    """Makes glibc serve every block from the heap and never trim it, for this process, and
    dispatches CPU steps on the calling thread (once; later calls do nothing); whether they
    are set. Elsewhere than Linux with glibc there is no `mallopt` and nothing changes."""
    global _done
    if _done:
        return True
    _done = keep_freed_heap()
    if _done:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return _done


def keep_freed_heap(one_arena: bool = False) -> bool:
    """The heap part of `keep_freed_memory` alone, for a process that keeps JAX's
    asynchronous dispatch (`benchmarks.op_profile`: its trace names the ops only then).
    `one_arena`: threads allocate from the main heap too (glibc's `M_ARENA_MAX` 1), so the
    dispatch thread's step buffers are reused as well; set it before JAX starts its threads.
    Whether it was set (False without glibc's `mallopt`)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = bool(mallopt(M_MMAP_MAX, NO_MMAP) and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    return kept and (not one_arena or bool(mallopt(M_ARENA_MAX, 1)))
