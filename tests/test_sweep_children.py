"""A killed sweep takes its child runs with it: none keeps training in the background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes in /proc")

# Two trials that would train for minutes: the test kills the sweep long before they end.
LONG_EXPERIMENT = '''
"""Two long MLP runs on XOR, for the sweep-kill test."""
import ml_collections

def get_experiment(arg=None):
    e = ml_collections.ConfigDict()
    long = {"num_train_steps": 200000, "eval_every_steps": 200000,
            "checkpoint_every_steps": 200000, "log_every_steps": 1000}
    e.trials = [{"name": f"t{i}", "config": "configs/mlp_xor.py:smoke", "overrides": long}
                for i in range(2)]
    e.seeds = [0]
    return e
'''


def _alive(pid: int) -> bool:
    """True unless `pid` has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _processes_with(*words: str) -> list[int]:
    """Pids whose command line contains every word."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(w in cmd for w in words) and _alive(int(entry)):
            pids.append(int(entry))
    return pids


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before {what}")
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def test_sigkilled_parallel_sweep_leaves_no_child_running(tmp_path):
    exp = tmp_path / "long_sweep.py"
    exp.write_text(textwrap.dedent(LONG_EXPERIMENT))
    sweep = str(tmp_path / "sweep")
    log = open(tmp_path / "sweep.log", "w")
    parent = subprocess.Popen([sys.executable, "launch.py", f"--experiment={exp}",
                               "--parallel=2", f"--workdir={sweep}"], cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        # each child writes trial.json once it runs the trial, after arming its death signal
        trial_files = [os.path.join(sweep, t, "seed_0", "trial.json") for t in ("t0", "t1")]
        _wait_for(lambda: all(os.path.exists(f) for f in trial_files), 120,
                  "both children to start their runs", parent)
        children = _processes_with("run_trial", sweep)
        assert len(children) == 2, children
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        _wait_for(lambda: not any(_alive(pid) for pid in children), 5,
                  "the children to die with the sweep")
        assert _processes_with("run_trial", sweep) == []
    finally:
        log.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in children:  # never leave a stray run behind, whatever failed above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


WATCHED_CHILD = '''
import sys, time
from dl_arch.experiments.run_trial import die_with_parent
print(die_with_parent(int(sys.argv[1]), poll_s=0.1, prctl=False), flush=True)
time.sleep(60)
'''

MIDDLE = '''
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())],
                         stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(60)
'''


def test_watchdog_fallback_kills_the_child_when_its_parent_dies():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        REPO, os.environ.get("PYTHONPATH", "")])))
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, WATCHED_CHILD], env=env,
                              stdout=subprocess.PIPE, text=True)
    child_pid = 0
    try:
        pid, how = middle.stdout.readline().split()
        child_pid = int(pid)
        assert how == "watchdog" and _alive(child_pid)
        os.kill(middle.pid, signal.SIGKILL)
        middle.wait(10)
        _wait_for(lambda: not _alive(child_pid), 5, "the watched child to exit")
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if child_pid and _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)
