"""Runs one run of an experiment in this process: the child of `run_experiment(parallel>1)`.

    python -m dl_arch.experiments.run_trial --experiment=experiments/x.py:smoke \
        --workdir=/tmp/sweep --index=3 [--parent_pid=1234]

The child rebuilds the grid from the experiment file itself (no pickled configs), so what
it trains is exactly what the parent's report describes. With `--parent_pid` it dies with
that parent (SIGKILLed or not): a killed sweep never leaves runs training in the background.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time


def die_with_parent(parent_pid: int, poll_s: float = 1.0, prctl: bool = True) -> str:
    """Makes this process die when `parent_pid` does; returns how ('prctl' or 'watchdog').

    On Linux the kernel sends SIGKILL at the parent's exit (PR_SET_PDEATHSIG); elsewhere
    (or with `prctl=False`) a daemon thread polls `os.getppid()`. A parent that died
    before this call is caught too.
    """
    how = "watchdog"
    if prctl and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if how == "watchdog":
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(poll_s)
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    return how


def main(argv: list[str] | None = None) -> None:
    """Parses the flags and trains run `--index` of the experiment."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment", required=True, help="experiments/<name>.py[:options]")
    parser.add_argument("--workdir", required=True, help="the sweep's directory")
    parser.add_argument("--index", type=int, required=True, help="run number (trial x seed)")
    parser.add_argument("--parent_pid", type=int, default=0,
                        help="die when this process (the sweep) exits; 0: live on")
    args = parser.parse_args(argv)
    from dl_arch.train.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX makes its CPU client (host_memory)
    if args.parent_pid:
        die_with_parent(args.parent_pid)  # before the slow imports below
    from dl_arch.experiments.runner import execute_run
    from dl_arch.experiments.runs import expand_runs, select_runs
    from dl_arch.experiments.study import load_experiment
    from dl_arch.train.compilation_cache import enable_compilation_cache

    enable_compilation_cache()  # the sweep's directory, passed down in the environment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    exp = load_experiment(args.experiment)
    (run,) = select_runs(expand_runs(exp, args.workdir), args.index)
    execute_run(exp, run)


if __name__ == "__main__":
    main()
