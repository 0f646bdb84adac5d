"""Where the loop's host time goes, every thread at once (issue 22), and the detector's
bfloat16 step on the device. Scratch: prints as it goes; `--quick` for a CPU dry run.

From the repository root: `PYTHONPATH=. python3 docs/results/gpu_diagnosis_2026-12-04/host_diag.py
[--quick] [--only=host,detector]`. cProfile sees only the thread that enables it; this
samples every thread's Python stack (`sys._current_frames`) each millisecond during a whole
loop run and prints, per thread, the functions found most often anywhere on its stack (the
share of samples a function was running or waiting under) and the innermost frames. Ran on
the lent H200 in stop 51 (logs in stop51/: host_diag.log, launch.log, detector.log; the
launch section's third variant and the detector section were cut by their timeouts). A
record of how figures were taken, not maintained code.
"""
import os
import sys
import threading
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from loop_diag import QUICK, _config, bare_and_calls, loop_run, profile_calls, run_sections, say  # noqa: E402,E501


def _where(frame) -> str:
    code = frame.f_code
    return f"{code.co_name} {os.path.basename(code.co_filename)}:{frame.f_lineno}"


def _func(frame) -> str:
    code = frame.f_code
    return f"{code.co_name} {os.path.basename(code.co_filename)}"


class Sampler:
    """Every thread's stack, every `period` seconds, in a daemon thread."""

    def __init__(self, period: float = 1e-3):
        self.period, self.stop = period, threading.Event()
        self.samples = Counter()  # thread name -> samples
        self.inclusive = defaultdict(Counter)  # thread -> function -> samples with it on stack
        self.leaf = defaultdict(Counter)  # thread -> innermost frame -> samples
        self.thread = threading.Thread(target=self._run, daemon=True, name="sampler")

    def _run(self):
        me = threading.get_ident()
        while not self.stop.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                name = names.get(ident, str(ident))
                self.samples[name] += 1
                self.leaf[name][_where(frame)] += 1
                seen = set()
                while frame is not None:
                    seen.add(_func(frame))
                    frame = frame.f_back
                for f in seen:
                    self.inclusive[name][f] += 1
            time.sleep(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def report(self, top: int = 18):
        for name, n in self.samples.most_common(9):
            say(f"thread {name}: {n} samples")
            for f, c in self.inclusive[name].most_common(top):
                print(f"      incl {c / n:6.1%} {f}", flush=True)
            for f, c in self.leaf[name].most_common(8):
                print(f"      leaf {c / n:6.1%} {f}", flush=True)


def host_section():
    cases = [("configs/lenet5_shapes.py", 8, 1, 40 if QUICK else 4000),
             ("configs/lenet5_shapes.py", 8, 10, 40 if QUICK else 4000),
             ("configs/gpt_text.py", 0, 1, 40 if QUICK else 1500)]
    for spec, workers, per_call, steps in cases:
        config = _config(spec, steps, workers, per_call)
        config.log_every_steps = 10 if QUICK else 50
        with Sampler() as sampler:
            loop, wait, busy = loop_run(config)[:3]
        say(f"{spec} workers={workers} steps_per_call={per_call}: loop={loop:.0f}/s "
            f"wait={wait:.0%} busy={busy:.0%}")
        sampler.report()


def detector_section():
    """detector_shapes' bare loop step in bfloat16: rate and its top kernels (do the
    narrow scatter-adds of the FPN resize and max-pool gradients matter?)."""
    config = _config("configs/detector_shapes.py", 40 if QUICK else 300, 0)
    config.dtype = "bfloat16"
    config.log_every_steps = 10 if QUICK else 50
    rate, drained, back, run = bare_and_calls(config, 40 if QUICK else 300)
    say(f"detector_shapes bf16 bare={rate:.0f}/s call drained={drained * 1e3:.3f} ms "
        f"back={back * 1e3:.3f} ms")
    profile_calls(run, 20, "detector_shapes bf16", top=12)


def gpt_rates_section():
    """gpt_text's bare step (one a call) and its loop at five steps a call."""
    n = 10 if QUICK else 400
    rate, drained, back, _ = bare_and_calls(_config("configs/gpt_text.py", n, 0), n)
    config = _config("configs/gpt_text.py", 20 if QUICK else 1000, 0, 5)
    config.log_every_steps = 10 if QUICK else 50
    loop, wait, _ = loop_run(config)[:3]
    say(f"gpt_text bare={rate:.0f}/s call drained={drained * 1e3:.3f} ms back={back * 1e3:.3f} "
        f"ms; loop at 5 steps a call={loop:.0f}/s ({loop / rate:.2f}x bare) wait={wait:.0%}")


COMMAND_BUFFERS = ("default", "", "FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,CONDITIONAL,WHILE")


def launch_section():
    """gpt_rates under XLA's default CUDA graphs, none, and graphs holding control flow
    (each in a subprocess: XLA_FLAGS are read once)."""
    import subprocess
    for value in COMMAND_BUFFERS:
        env = dict(os.environ)
        if value != "default":
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_gpu_enable_command_buffer={value}"
        argv = [sys.executable, os.path.abspath(__file__), "--only=gpt_rates"]
        p = subprocess.run(argv + (["--quick"] if QUICK else []), env=env, capture_output=True,
                           text=True, timeout=90)
        say(f"command buffers {value!r}: rc={p.returncode}")
        print("\n".join(line for line in p.stdout.splitlines() if "gpt_text" in line)[-1500:],
              p.stderr[-600:] if p.returncode else "", flush=True)


if __name__ == "__main__":
    say("backend", jax.default_backend(), jax.__version__, jnp.zeros(1).dtype)
    run_sections({"host": host_section, "launch": launch_section, "gpt_rates": gpt_rates_section,
                  "detector": detector_section})
