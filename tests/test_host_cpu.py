"""`HostCpu`: this process's and its children's CPU time, against the OS's own accounts."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from dl_arch.testing import burn_cpu
from dl_arch.train.host_cpu import HostCpu, available_cores, child_pids, process_seconds

linux_proc = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc")

# a child that burns `sys.argv[1]` CPU seconds, says so, then waits for its stdin to close
_BURN = ("import sys, time\n"
         "while time.process_time() < float(sys.argv[1]):\n"
         "    pass\n"
         "print('burnt', flush=True)\n"
         "sys.stdin.read()\n")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_own_cpu_matches_getrusage_and_sleep_is_idle():
    host = HostCpu(children=False)  # this process alone, as getrusage(RUSAGE_SELF) counts
    time.sleep(0.2)
    assert host.cores_busy() < 0.2  # a sleeping process keeps no core busy
    before, start = _own_seconds(), host.seconds()
    burn_cpu(0.3)
    spent, reference = host.seconds() - start, _own_seconds() - before
    assert spent >= 0.3 and abs(spent - reference) < 0.02, (spent, reference)


@linux_proc
def test_a_childs_cpu_is_counted_while_it_lives_as_the_os_counts_it_when_it_ends():
    """The child's reading against the OS's account once it is waited for; the sum over
    children against that reading (other children of this process, such as an earlier
    test's workers, may add to the sum, never take from it)."""
    host = HostCpu(relist_s=0.0)  # lists the children at every reading
    others, before = host.children_seconds(), os.times()
    child = subprocess.Popen([sys.executable, "-c", _BURN, "0.4"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "burnt\n"
        assert child.pid in child_pids()
        summed = host.children_seconds()
        seen = process_seconds(child.pid)
    finally:
        child.stdin.close()
        child.wait()
    after = os.times()
    # the OS's account of the waited-for child: its whole life, of which we read all but
    # the exit
    reference = (after.children_user - before.children_user
                 + after.children_system - before.children_system)
    # /proc counts in clock ticks (10 ms): two ticks of slack
    assert 0.38 <= seen <= reference + 0.02 and reference - seen < 0.1, (seen, reference)
    assert summed - others >= seen - 0.02, (summed, others, seen)
    assert host.children_seconds() >= summed  # an ended child keeps its last reading
    assert process_seconds(child.pid) is None


def test_available_cores_is_the_affinity():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert available_cores() == (expected or os.cpu_count())


@linux_proc
def test_children_are_listed_at_most_every_relist_s_and_not_at_all_when_off():
    """Readings from before a child started, with no relisting since, miss its CPU. (The
    test process may have other children, an earlier test's, mostly idle: hence the
    differences.)"""
    early = HostCpu(relist_s=3600.0)  # lists the children now, before this one starts
    others = early.children_seconds()
    child = subprocess.Popen([sys.executable, "-c", _BURN, "0.3"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "burnt\n"
        assert early.children_seconds() - others < 0.15  # not listed again within the hour
        assert HostCpu(children=False).children_seconds() == 0.0
        listed = HostCpu(relist_s=3600.0)  # listed at its start, with the child
        assert listed.children_seconds() - others >= process_seconds(child.pid) - 0.02
    finally:
        child.stdin.close()
        child.wait()
