"""Progress: a tqdm bar on a terminal, periodic log lines elsewhere (files, CI, clusters)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("dl_arch")


class Progress:
    """Shows step, steps/s, ETA, loss and the last logged input wait; mode auto|bar|log|none."""

    def __init__(self, total: int, start: int, mode: str = "auto", log_every: int = 50):
        self.total, self.start, self.log_every = total, start, max(1, log_every)
        self.t0 = time.time()
        self.last_step = start
        self.input_wait: float | None = None  # the loop's train/input_wait at its last row
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def steps_per_sec(self, step: int) -> float:
        return (step - self.start) / max(time.time() - self.t0, 1e-9)

    def update(self, step: int, loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            postfix = {} if loss is None else {"loss": f"{loss:.4f}"}
            if self.input_wait is not None:
                postfix["input_wait"] = f"{self.input_wait:.0%}"
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        elif self.mode == "log" and (step % self.log_every == 0 or step == self.total):
            rate = self.steps_per_sec(step)
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            wait = "" if self.input_wait is None else f"  input wait {self.input_wait:.0%}"
            log.info("step %d/%d  %.2f steps/s  ETA %.0fs  loss %s%s", step, self.total, rate, eta,
                     "n/a" if loss is None else f"{loss:.4f}", wait)
        self.last_step = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
