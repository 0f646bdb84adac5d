"""A/B (stop 58): steps whose temporaries pass 1 GiB, under stop 56's bounded glibc settings
(mmap and trim thresholds of 1 GiB) and under the landed ones (no block mapped on its own,
no trimming). One setting per process, since glibc's settings hold for a whole process:

    PYTHONPATH=. python docs/results/cpu_zen5_2026-12-05/no_mmap_ab.py bounded|landed TARGET...

TARGET as in keep_in_memory_ab.py (`model:batch`, `dcgan:SIZE`), or `gpt:T` (the GPT
sequence-length row of benchmarks/bench_transformer.py: B4 d128 L2) or `gpt:T:B:d:L`
(`gpt:256:16:256:4` is the GPT train-step row). Prints ms a step for five steps after
three warm-up steps, the page faults a step (in MiB of 4 KiB pages) and the peak RSS.
"""

import ctypes
import ctypes.util
import os
import resource
import sys
import time

from dl_arch.train import host_memory

mode = sys.argv[1]
assert host_memory.keep_freed_memory()  # synchronous dispatch, as in both
if mode == "bounded":  # stop 56's settings, restored over the landed ones
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    M_MMAP_THRESHOLD, DEFAULT_MMAP_MAX = -3, 65536
    assert libc.mallopt(host_memory.M_MMAP_MAX, DEFAULT_MMAP_MAX)
    assert libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    assert libc.mallopt(host_memory.M_TRIM_THRESHOLD, 1 << 30)

import jax  # noqa: E402

from benchmarks.harness import block  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from keep_in_memory_ab import build  # noqa: E402


def build_any(target):
    if not target.startswith("gpt:"):
        return build(target)
    from benchmarks.bench_transformer import _gpt, _jax_train_step

    t, b, d, layers = ([int(n) for n in target.split(":")[1:]] + [4, 128, 2])[:4]
    tokens = jax.random.randint(jax.random.key(0), (b, t + 1), 0, 256)
    step, state, _ = _jax_train_step(_gpt(d, layers, 4, 256, t), tokens)
    holder = {"state": state}

    def run():
        holder["state"], loss = step(holder["state"])
        return loss

    return run


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


for target in sys.argv[2:]:
    run = build_any(target)
    for _ in range(3):
        block(run())
    before, times = faults(), []
    for _ in range(5):
        t0 = time.perf_counter()
        block(run())
        times.append(round((time.perf_counter() - t0) * 1e3))
    per_step = (faults() - before) / 5 * resource.getpagesize() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{mode} {target}: ms a step {times}, faults a step {per_step:.0f} MiB, "
          f"peak RSS {peak} MiB", flush=True)
