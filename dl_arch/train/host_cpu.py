"""The host CPU a run keeps busy, in cores: this process (every thread: the loop, the input
thread, and the step's own threads when it runs on the CPU) and its child processes (grain's
input workers).

A run whose cores are all busy gains nothing from more input workers: they take CPU from the
step or from each other. `HostCpu.cores_busy()` tells it apart from a run whose input is
merely slow. The children are read from Linux's /proc; elsewhere only this process counts.
"""

from __future__ import annotations

import glob
import os
import time

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def child_pids() -> list[int]:
    """This process's live child processes (none where /proc does not list them)."""
    pids: list[int] = []
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError:  # a thread that ended since the listing
            continue
    return pids


def process_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process `pid` so far (None: it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # fields after the command name, which is in parentheses and may hold spaces: state is
    # the first, then utime and stime are the 12th and 13th
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class HostCpu:
    """CPU seconds of this process and, with `children`, of its child processes;
    `cores_busy()` those spent since the previous call (or the start) over the wall time
    between, so 1.0 is one core kept busy. A child's CPU is read while it lives, so one that
    ends between two calls loses its last part. The children are listed again at most every
    `relist_s` seconds (listing reads a file per thread, and a run has dozens of threads); a
    child found later counts its CPU since it started then."""

    def __init__(self, children: bool = True, relist_s: float = 1.0) -> None:
        self._count_children, self._relist_s = children, relist_s
        self._children: dict[int, float] = {}  # pid -> CPU seconds at its last read
        self._pids: list[int] = []
        self._listed = -float("inf")
        self._since, self._seconds = time.perf_counter(), self.seconds()

    def children_seconds(self) -> float:
        """CPU seconds of every child seen so far, each as last read (0 without
        `children`)."""
        if not self._count_children:
            return 0.0
        if time.perf_counter() - self._listed >= self._relist_s:
            self._pids, self._listed = child_pids(), time.perf_counter()
        for pid in self._pids:
            seconds = process_seconds(pid)
            if seconds is not None:
                self._children[pid] = seconds
        return sum(self._children.values())

    def seconds(self) -> float:
        """CPU seconds of this process (all its threads) and of its children so far."""
        return time.process_time() + self.children_seconds()

    def cores_busy(self) -> float:
        now, seconds = time.perf_counter(), self.seconds()
        busy = (seconds - self._seconds) / max(now - self._since, 1e-9)
        self._since, self._seconds = now, seconds
        return busy
