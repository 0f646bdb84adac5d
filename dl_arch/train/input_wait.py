"""How long the loop waits for its batches: each train row's `train/input_wait`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("dl_arch")

SLOW_INPUT = 0.5  # an input wait past which the run says, once, that its input is too slow


class InputWait:
    """The loop's time in `next(batches)` as a share of its wall time between train rows
    (near 0: the input keeps up; near 1: the device waits for its input). Past the first
    row, whose window also holds the loop's start, a share over `SLOW_INPUT` is said once,
    with what would help."""

    def __init__(self, num_workers: int):
        self.num_workers = num_workers
        self.waited, self.since = 0.0, time.perf_counter()
        self.rows, self.warned = 0, False

    def next(self, batches: Iterator[Any]) -> Any:
        """`next(batches)`, its wait counted."""
        asked = time.perf_counter()
        item = next(batches)
        self.waited += time.perf_counter() - asked
        return item

    def row(self, step: int) -> float:
        """The share since the last row (or the start); starts the next window."""
        now = time.perf_counter()
        share = self.waited / max(now - self.since, 1e-9)
        self.waited, self.since, self.rows = 0.0, now, self.rows + 1
        if share > SLOW_INPUT and self.rows > 1 and not self.warned:
            self.warned = True
            log.warning("the loop waited for its next batch %.0f%% of the time up to step %d: "
                        "the input is slower than the step; more config.dataset.num_workers "
                        "(now %d), a cached split or a lighter preprocessing would help",
                        100 * share, step, self.num_workers)
        return share
