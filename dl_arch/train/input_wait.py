"""What the input costs the loop: each train row's `train/input_wait` and `train/input_busy`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("dl_arch")

SLOW_INPUT = 0.5  # an input wait past which the run says, once, that its input is too slow


class InputWait:
    """Two shares of the loop's wall time between train rows:
    - `input_wait`, its time in `next(batches)` (near 0: the input keeps up; near 1: the
      device waits for its input). Past the first row, whose window also holds the loop's
      start, a share over `SLOW_INPUT` is said once, with what would help;
    - `input_busy`, the CPU time the input thread spent making batches (`busy_seconds`, the
      prefetcher's clock; grain's worker processes not counted): the host CPU the input takes
      even when no batch is late, which a step on the same cores loses, and near 1 a reader
      thread about to fall behind. A read's CPU time counts when the read ends, so a row
      can hold part of one begun in the row before (a share a little over 1).
    """

    def __init__(self, num_workers: int, busy_seconds: Callable[[], float] = lambda: 0.0):
        self.num_workers, self._busy_seconds = num_workers, busy_seconds
        self.waited, self.since, self.busy = 0.0, time.perf_counter(), busy_seconds()
        self.rows, self.warned = 0, False

    def next(self, batches: Iterator[Any]) -> Any:
        """`next(batches)`, its wait counted."""
        asked = time.perf_counter()
        item = next(batches)
        self.waited += time.perf_counter() - asked
        return item

    def row(self, step: int) -> dict[str, float]:
        """{"input_wait", "input_busy"}: the shares since the last row (or the start); starts
        the next window."""
        now, busy = time.perf_counter(), self._busy_seconds()
        elapsed = max(now - self.since, 1e-9)
        share = self.waited / elapsed
        shares = {"input_wait": share, "input_busy": (busy - self.busy) / elapsed}
        self.waited, self.since, self.busy, self.rows = 0.0, now, busy, self.rows + 1
        if share > SLOW_INPUT and self.rows > 1 and not self.warned:
            self.warned = True
            log.warning("the loop waited for its next batch %.0f%% of the time up to step %d: "
                        "the input is slower than the step; more config.dataset.num_workers "
                        "(now %d), a cached split or a lighter preprocessing would help",
                        100 * share, step, self.num_workers)
        return shares
