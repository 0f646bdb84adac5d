"""A/B: old (32/128 MiB thresholds) vs sync (1 GiB thresholds + synchronous CPU dispatch)."""
import ctypes
import sys

if __name__ == "__main__":
    mode = sys.argv[1]
    from dl_arch.train import host_memory
    libc = ctypes.CDLL("libc.so.6")
    size = (32 << 20, 128 << 20) if mode == "old" else (1 << 30, 1 << 30)
    assert libc.mallopt(-3, size[0]) and libc.mallopt(-1, size[1])
    host_memory._done = True
    import jax
    if mode == "sync":
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    from benchmarks import run
    print("mode", mode, flush=True)
    run.main(sys.argv[2:])
