"""SIGTERM as a request to stop cleanly: the loop saves at the next step boundary and exits.

Several processes agree on the step at which they stop (`stop_requested`), so every host
writes its part of the same checkpoint.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import numpy as np

log = logging.getLogger("dl_arch")


class Preempted:
    """Set by SIGTERM; the loop saves at the next step boundary and exits cleanly."""

    def __init__(self) -> None:
        self.flag = False
        self._previous = None

    def __enter__(self) -> Preempted:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: saving a checkpoint at the next step boundary")
        self.flag = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def any_process(flag: bool, step: int, every: int) -> bool:
    """Multi-host: all processes agree to stop at the same step (checked every `every`)."""
    if step % every:
        return False
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def stop_requested(preempted: Preempted, pcount: int) -> bool:
    """Whether SIGTERM arrived (on any process), checked at a point every process reaches."""
    return preempted.flag if pcount == 1 else any_process(preempted.flag, 0, 1)
