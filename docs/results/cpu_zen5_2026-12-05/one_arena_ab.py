"""A/B: old (32 MiB / 128 MiB thresholds, per-thread arenas) vs new keep_freed_memory."""
import ctypes
import sys

if __name__ == "__main__":
    mode = sys.argv[1]
    from dl_arch.train import host_memory
    if mode == "old":
        libc = ctypes.CDLL("libc.so.6")
        assert libc.mallopt(-3, 32 << 20) and libc.mallopt(-1, 128 << 20)
        host_memory._done = True  # run.main's call does nothing more
    from benchmarks import run
    print("mode", mode, flush=True)
    run.main(sys.argv[2:])
