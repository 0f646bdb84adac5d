"""`InputWait`: the share of the loop's time spent in `next(batches)`, and its one warning."""

from __future__ import annotations

import logging
import time

from dl_arch.testing import burn_cpu
from dl_arch.train.input_wait import SATURATED, SLOW_INPUT, InputWait


def _slow(seconds):
    while True:
        time.sleep(seconds)
        yield 0


def test_share_of_the_window_spent_waiting_and_one_warning_past_the_first_row(caplog):
    wait = InputWait(num_workers=3)
    batches = _slow(0.02)
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        for row in range(3):
            for _ in range(3):
                wait.next(batches)
                time.sleep(0.002)  # the loop's own work: a tenth of each wait
            share = wait.row(step=3 * (row + 1))["input_wait"]
            assert 0.75 < share < 1.0, share
            warnings = [r.getMessage() for r in caplog.records]
            # the first row's window also holds the loop's start: no warning from it alone
            assert len(warnings) == (0 if row == 0 else 1), warnings
    assert "up to step 6" in warnings[0] and "config.dataset.num_workers (now 3)" in warnings[0]


def test_a_loop_busy_with_its_own_work_waits_little_and_is_not_warned(caplog):
    wait = InputWait(num_workers=0)
    batches = iter(range(100))
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        for row in range(3):
            for _ in range(3):
                wait.next(batches)
                time.sleep(0.01)
            assert wait.row(step=3 * (row + 1))["input_wait"] < SLOW_INPUT / 10
    assert not caplog.records


def test_input_busy_is_the_input_clock_over_the_window():
    clock = {"seconds": 5.0}  # the prefetcher's CPU seconds before the loop starts
    wait = InputWait(num_workers=0, busy_seconds=lambda: clock["seconds"])
    time.sleep(0.05)
    clock["seconds"] += 0.02
    busy = wait.row(step=1)["input_busy"]
    assert 0.02 / 0.5 < busy <= 0.02 / 0.05, busy  # 20 ms of CPU over at least 50 ms
    time.sleep(0.05)
    assert wait.row(step=2)["input_busy"] == 0.0  # nothing made since the last row
    assert InputWait(num_workers=0).row(step=1)["input_busy"] == 0.0  # no clock: 0


def _warning_with_host_cpu(monkeypatch, caplog, cores_busy: float, cores: int) -> str:
    """The slow-input warning of a run whose host kept `cores_busy` of `cores` busy."""
    wait = InputWait(num_workers=2, cores=cores)
    monkeypatch.setattr(wait.host, "cores_busy", lambda: cores_busy)
    batches = _slow(0.02)
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        for row in range(2):
            wait.next(batches)
            assert wait.row(step=row + 1)["host_cpu"] == cores_busy
    (warning,) = [r.getMessage() for r in caplog.records]
    caplog.clear()
    return warning


def test_slow_input_on_a_busy_host_is_told_that_more_workers_would_not_help(monkeypatch,
                                                                            caplog):
    busy = _warning_with_host_cpu(monkeypatch, caplog, SATURATED * 2, cores=2)
    assert "cores are all busy (host_cpu=1.8)" in busy and "more cores" in busy
    idle = _warning_with_host_cpu(monkeypatch, caplog, 0.5, cores=2)
    assert "all busy" not in idle and "more config.dataset.num_workers (now 2)" in idle


def test_host_cpu_counts_the_loops_own_work():
    wait = InputWait(num_workers=0)
    burn_cpu(0.2)  # the loop busy on the CPU
    assert 0.3 < wait.row(step=1)["host_cpu"] <= wait.cores + 0.1
