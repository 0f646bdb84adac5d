"""`keep_freed_memory`: a freed block of a step's size stays with the process, and a jitted
CPU step's large buffers are reused rather than mapped (and page-faulted) afresh each call."""

import os
import resource
import subprocess
import sys

import pytest

from dl_arch.train import host_memory

# In a fresh interpreter: malloc a block of argv[2] MiB (on a thread of its own if argv[3]
# is "thread"), write it, free it, and print how much of it the process still holds (MiB of
# resident memory before the free minus after).
_PROBE = """
import ctypes, ctypes.util, sys, threading
from dl_arch.train import host_memory
if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
if sys.argv[1] == "one_arena":
    assert host_memory.keep_freed_heap(one_arena=True)
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
n = int(sys.argv[2]) << 20
kept = []
def probe():
    libc.free(libc.malloc(64))  # the thread's first allocation picks its arena
    block = libc.malloc(n)
    ctypes.memset(block, 1, n)
    held = rss()
    libc.free(block)
    kept.append(round(rss() - held + n / 2**20))
if sys.argv[3] == "thread":
    worker = threading.Thread(target=probe)
    worker.start()
    worker.join()
else:
    probe()
print(kept[0])
"""


def _kept_mib(mode: str, mib: int, where: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, str(mib), where],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize("mib", [20, 100, 1200])  # 1200: past the 1 GiB thresholds of stop 56
def test_a_freed_step_sized_block_stays_with_the_process(mib):
    assert _kept_mib("default", mib, "main") < 5  # glibc maps it afresh, unmaps it on free
    assert _kept_mib("keep", mib, "main") >= mib - 1  # from the heap, and the heap keeps it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_thread_of_its_own_maps_a_block_past_its_arena_afresh():
    """Why CPU steps are dispatched on the calling thread: a thread's arena maps a block over
    64 MiB whatever the thresholds."""
    assert _kept_mib("keep", 100, "thread") < 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_with_one_arena_a_threads_block_comes_from_the_kept_heap():
    """What `benchmarks.op_profile` needs under asynchronous dispatch, where a thread of
    XLA's allocates each step's buffers."""
    assert _kept_mib("one_arena", 100, "thread") >= 99


# In a fresh interpreter: the page faults of each of 10 calls of a jitted step whose output
# is 100 MiB, after two warm-up calls.
_STEP_FAULTS = """
import resource, sys
from dl_arch.train import host_memory
if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
import jax, jax.numpy as jnp
double = jax.jit(lambda x: x * 2)
x = jnp.ones((25 << 20,), jnp.float32)
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    double(x).block_until_ready()
counts = []
for _ in range(10):
    before = faults()
    double(x).block_until_ready()
    counts.append(faults() - before)
print(*counts)
"""


def _step_faults(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", _STEP_FAULTS, mode], capture_output=True,
                         text=True, check=True)
    return [int(n) for n in out.stdout.splitlines()[-1].split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_jitted_steps_large_output_reuses_its_pages():
    # Most calls reuse the freed output's pages; now and then one still maps it afresh
    # (0-3 calls in 5 on this machine), so this asserts that calls do reuse them.
    pages = (100 << 20) // resource.getpagesize()
    assert min(_step_faults("keep")) < pages // 50
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    if not (os.path.exists(thp) and "[always]" in open(thp).read()):
        assert min(_step_faults("default")) > pages // 2  # each call faults its output in


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_is_idempotent():
    assert host_memory.keep_freed_memory() and host_memory.keep_freed_memory()
