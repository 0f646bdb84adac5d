"""GPU diagnosis of the loop (issue 22): does the norms' lax.cond hold the host each step, where
does the loop's main thread go, what does the device timeline show; plus ResNet-18's kernels and
the padded-attention rows. Scratch: prints as it goes; `--quick` for a CPU dry run.

Ran on the lent H200 as scratch_gpu/diag.py (log: loop_diag.log); from the repository
root: `PYTHONPATH=. python3 docs/results/gpu_diagnosis_2026-12-04/loop_diag.py [--quick]`.
Since the run its section runner moved into `run_sections` (shared with
embedding_diag.py) and the command-buffer subprocess finds this file through PYTHONPATH.
A record of how the figures were taken, not maintained code.
"""
import cProfile
import glob
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import jax
import jax.numpy as jnp

from benchmarks.bench_loop import _config, loop_run
from benchmarks.loop_step import loop_stepper
from dl_arch.train import step as step_mod
from dl_arch.train.trainer import Trainer

QUICK = "--quick" in sys.argv
ONLY = next((a.split("=")[1] for a in sys.argv if a.startswith("--only=")), "")
T0 = time.perf_counter()
ORIG = step_mod._norms


def say(*a):
    print(f"[{time.perf_counter() - T0:6.1f}s]", *a, flush=True)


def never(wanted, *trees):
    return tuple(jnp.zeros((), jnp.float32) for _ in trees)


def always(wanted, *trees):
    return ORIG(True, *trees)


VARIANTS = {"cond": ORIG, "never": never, "always": always}


def bare_and_calls(config, n):
    trainer = Trainer(config)
    run, _ = loop_stepper(trainer, trainer.first_batch())
    jax.block_until_ready(run())
    jax.block_until_ready(run())
    t0 = time.perf_counter()
    for _ in range(n):
        last = run()
    jax.block_until_ready(last)
    rate = n / (time.perf_counter() - t0)
    drained, back = [], []
    for _ in range(min(n, 100)):
        jax.block_until_ready(last)
        c0 = time.perf_counter()
        last = run()
        drained.append(time.perf_counter() - c0)
    for _ in range(min(n, 100)):
        c0 = time.perf_counter()
        last = run()
        back.append(time.perf_counter() - c0)
    jax.block_until_ready(last)
    return rate, statistics.median(drained), statistics.median(back), run


def xplane(d):
    from jax.profiler import ProfileData
    return ProfileData.from_file(glob.glob(d + "/**/*.xplane.pb", recursive=True)[0])


def timeline(d, label, skip_frac=0.3, top=12):
    """Per device line: events, busy ms, span ms; XLA Modules' gaps; top ops by time."""
    pd = xplane(d)
    for plane in pd.planes:
        if not plane.name.startswith("/device:"):
            continue
        for line in plane.lines:
            evs = sorted((e.start_ns, e.duration_ns, e.name) for e in line.events)
            if not evs:
                continue
            evs = evs[int(len(evs) * skip_frac):] if line.name == "XLA Modules" else evs
            busy = sum(e[1] for e in evs)
            span = evs[-1][0] + evs[-1][1] - evs[0][0]
            say(f"{label} {plane.name} | {line.name}: {len(evs)} events busy={busy / 1e6:.2f} ms "
                f"span={span / 1e6:.2f} ms ({busy / max(span, 1):.0%})")
            if line.name == "XLA Modules" and len(evs) > 2:
                gaps = [b[0] - (a[0] + a[1]) for a, b in zip(evs, evs[1:])]
                durs = [e[1] for e in evs]
                say(f"   modules: median dur={statistics.median(durs) / 1e6:.3f} ms median gap="
                    f"{statistics.median(gaps) / 1e6:.3f} ms max gap={max(gaps) / 1e6:.3f} ms; "
                    f"names {sorted(set(e[2][:40] for e in evs))[:4]}")
            if line.name in ("XLA Ops",) or line.name.startswith("Stream"):
                tot = defaultdict(float)
                cnt = defaultdict(int)
                for _, dur, name in evs:
                    tot[name] += dur
                    cnt[name] += 1
                for name, t in sorted(tot.items(), key=lambda kv: -kv[1])[:top]:
                    say(f"     {t / busy:6.1%} {t / 1e6:9.3f} ms x{cnt[name]:<4d} {name[:110]}")


def profiled(fn, label, **kw):
    d = tempfile.mkdtemp()
    opts = jax.profiler.ProfileOptions()
    opts.python_tracer_level = 0
    with jax.profiler.trace(d, profiler_options=opts):
        out = fn()
    try:
        timeline(d, label, **kw)
    except Exception as e:  # noqa: BLE001
        say(f"{label}: timeline failed: {type(e).__name__}: {e}")
    return out


def profile_calls(run, count, label, top):
    """The device timeline of `count` back-to-back calls of `run`."""
    def calls():
        for _ in range(count):
            last = run()
        return jax.block_until_ready(last)
    return profiled(calls, label, skip_frac=0.0, top=top)


def loop_section():
    cases = [("configs/gpt_text.py", 0), ("configs/lenet5_shapes.py", 8)]
    steps = {"configs/gpt_text.py": 40 if QUICK else 800,
             "configs/lenet5_shapes.py": 40 if QUICK else 2000}
    for spec, workers in cases:
        n = steps[spec]
        short = spec.split("/")[-1][:-3]
        for name, fn in VARIANTS.items():
            step_mod._norms = fn
            config = _config(spec, n, workers)
            config.log_every_steps = 10 if QUICK else 50
            rate, drained, back, run = bare_and_calls(config, n)
            if name == "cond":  # the device timeline of bare calls
                profile_calls(run, 20, f"{short} bare cond", top=6)
            if name == "always":
                say(f"{short:14s} {name:6s} bare={rate:7.0f}/s call drained={drained * 1e3:6.3f} "
                    f"ms back-to-back={back * 1e3:6.3f} ms")
                continue
            loop, wait, busy = loop_run(config)[:3]
            say(f"{short:14s} {name:6s} bare={rate:7.0f}/s call drained={drained * 1e3:6.3f} ms "
                f"back-to-back={back * 1e3:6.3f} ms loop={loop:7.0f}/s loop/bare={loop / rate:.2f}"
                f" wait={wait:.0%} busy={busy:.0%}")
        step_mod._norms = ORIG
        config = _config(spec, n, workers)
        config.log_every_steps = 10 if QUICK else 50
        prof = cProfile.Profile()
        prof.enable()
        loop_run(config)
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(16)
        print("\n".join(s.getvalue().splitlines()[:36]), flush=True)
        config = _config(spec, n // 2, workers)
        config.log_every_steps = 10 if QUICK else 50
        profiled(lambda config=config: loop_run(config), f"{short} loop cond", top=6)


def resnet_section():
    from benchmarks.bench_device import _resnet_step
    run, flops, batch = _resnet_step(QUICK, jnp.bfloat16)
    for _ in range(3):
        jax.block_until_ready(run())
    t0 = time.perf_counter()
    for _ in range(10):
        last = run()
    jax.block_until_ready(last)
    s = (time.perf_counter() - t0) / 10
    say(f"resnet bf16 step {s * 1e3:.2f} ms flops {flops:.3e} -> {flops / s / 1e12:.1f} TFLOP/s")

    profile_calls(run, 5, "resnet18 bf16", top=25)


def attention_section():
    from benchmarks.bench_device import attention_rows
    for padded in (True,):
        for row in attention_rows(QUICK, padded=padded):
            say(row.line())


def cmdbuf_section():
    """gpt_text's bare step and drained call with conditionals in CUDA graphs."""
    import subprocess
    flags = os.environ.get("XLA_FLAGS", "")
    for value in ("FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,CONDITIONAL,WHILE",):
        env = dict(os.environ, XLA_FLAGS=f"{flags} --xla_gpu_enable_command_buffer={value}")
        here = os.path.dirname(os.path.abspath(__file__))  # this file, importable there
        env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
        code = ("import sys; sys.argv=['x']+%r; import loop_diag as d; "
                "c=d._config('configs/gpt_text.py', 40 if d.QUICK else 800, 0); "
                "r,dr,bb,_=d.bare_and_calls(c, 40 if d.QUICK else 800); "
                "d.say(f'cmdbuf gpt_text bare={r:.0f}/s call drained={dr*1e3:.3f} ms "
                "back={bb*1e3:.3f} ms')" % (["--quick"] if QUICK else []))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=120)
        say(f"command buffers {value}: rc={p.returncode}")
        print(p.stdout[-1500:], p.stderr[-1500:], flush=True)


def run_sections(sections: dict) -> None:
    """Each section in order (those named by --only=a,b if given), a failure printed and
    the next one run: one device call must not lose the rest to one error."""
    for key, fn in sections.items():
        if ONLY and key not in ONLY.split(","):
            continue
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            say(f"section {key} failed: {e}")
    say("done")


if __name__ == "__main__":
    say("backend", jax.default_backend(), jax.__version__, jax.devices()[0].device_kind)
    run_sections({"loop": loop_section, "attention": attention_section,
                  "resnet": resnet_section, "cmdbuf": cmdbuf_section})
