"""What the input costs the loop: each train row's `train/input_wait`, `train/input_busy` and
`train/host_cpu`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from dl_arch.train.host_cpu import HostCpu, available_cores

log = logging.getLogger("dl_arch")

SLOW_INPUT = 0.5  # an input wait past which the run says, once, that its input is too slow
SATURATED = 0.9  # host_cpu over this share of the cores: the host has no CPU to spare


class InputWait:
    """Three figures of the loop's wall time between train rows:
    - `input_wait`, its time in `next(batches)` (near 0: the input keeps up; near 1: the
      device waits for its input). Past the first row, whose window also holds the loop's
      start, a share over `SLOW_INPUT` is said once, with what would help;
    - `input_busy`, the CPU time the input thread spent making batches (`busy_seconds`, the
      prefetcher's clock; grain's worker processes not counted): the host CPU the input takes
      even when no batch is late, which a step on the same cores loses, and near 1 a reader
      thread about to fall behind. A read's CPU time counts when the read ends, so a row
      can hold part of one begun in the row before (a share a little over 1);
    - `host_cpu`, the cores the host kept busy (`HostCpu`: this process, the step's threads
      included when it runs on the CPU, and grain's worker processes). Near `cores` (the
      cores this process may use) the host has no CPU to spare, so a slow input is then said
      to need less work per batch, not more workers.
    """

    def __init__(self, num_workers: int, busy_seconds: Callable[[], float] = lambda: 0.0,
                 cores: int | None = None):
        self.num_workers, self._busy_seconds = num_workers, busy_seconds
        self.cores = cores or available_cores()
        self.waited, self.since, self.busy = 0.0, time.perf_counter(), busy_seconds()
        self.host = HostCpu(children=num_workers > 0)  # only grain's workers are expected
        self.rows, self.warned = 0, False

    def next(self, batches: Iterator[Any]) -> Any:
        """`next(batches)`, its wait counted."""
        asked = time.perf_counter()
        item = next(batches)
        self.waited += time.perf_counter() - asked
        return item

    def row(self, step: int) -> dict[str, float]:
        """{"input_wait", "input_busy", "host_cpu"} since the last row (or the start); starts
        the next window."""
        now, busy = time.perf_counter(), self._busy_seconds()
        elapsed = max(now - self.since, 1e-9)
        share = self.waited / elapsed
        shares = {"input_wait": share, "input_busy": (busy - self.busy) / elapsed,
                  "host_cpu": self.host.cores_busy()}
        self.waited, self.since, self.busy, self.rows = 0.0, now, busy, self.rows + 1
        if share > SLOW_INPUT and self.rows > 1 and not self.warned:
            self.warned = True
            log.warning("the loop waited for its next batch %.0f%% of the time up to step %d: "
                        "the input is slower than the step; %s", 100 * share, step,
                        self._advice(shares["host_cpu"]))
        return shares

    def _advice(self, host_cpu: float) -> str:
        """What would help a slow input, given the cores the host kept busy."""
        if host_cpu >= SATURATED * self.cores:
            return (f"the host's {self.cores} cores are all busy (host_cpu={host_cpu:.1f}), so "
                    f"more config.dataset.num_workers (now {self.num_workers}) would take CPU "
                    f"from the step; a cached split, a lighter preprocessing or more cores "
                    f"would help")
        return (f"more config.dataset.num_workers (now {self.num_workers}), a cached split or "
                f"a lighter preprocessing would help")
