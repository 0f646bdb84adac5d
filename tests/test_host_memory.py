"""`keep_freed_memory`: a freed block of a step's size stays with the process."""

import subprocess
import sys

import pytest

from dl_arch.train import host_memory

# In a fresh interpreter: malloc a 20 MiB block, write it, free it, and print how much of
# it the process still holds (MiB of resident memory before the free minus after).
_PROBE = """
import ctypes, ctypes.util, sys
from dl_arch.train import host_memory
if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
n = 20 << 20
block = libc.malloc(n)
ctypes.memset(block, 1, n)
held = rss()
libc.free(block)
print(round(rss() - held + n / 2**20))
"""


def _kept_mib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_step_sized_block_stays_with_the_process():
    assert _kept_mib("default") < 5  # glibc maps a fresh 20 MiB block and unmaps it on free
    assert _kept_mib("keep") >= 19  # from the heap, and the heap keeps it
    assert host_memory.keep_freed_memory() and host_memory.keep_freed_memory()  # idempotent
