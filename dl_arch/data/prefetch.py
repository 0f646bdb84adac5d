"""Batches placed on the devices ahead of the step, by a background thread with a bounded queue.

    batches = Prefetcher(train_iter, lambda b: mesh_lib.to_step_input(b, mesh), size=2)
    batch = next(batches)          # already on the devices
    ckpt.save(step, state, batches)  # the position after the last batch *consumed*

The thread reads the next local batch from the wrapped iterator, places it (`place`) and
queues it with the wrapped iterator's state right after that read, so `get_state()` is the
state of the last batch the consumer took, never of the ones read ahead: restoring it into a
fresh iterator continues with the next unconsumed batch. It is a `grain.DatasetIterator`,
so grain's checkpoint handler saves and restores it like the iterator it wraps. Order is
kept, no batch is dropped or repeated, and an exception of the reader or of `place` is
raised by `next()` with its original traceback. `busy_seconds` is the thread's CPU time so
far (reading and placing): the host CPU the input takes, which a step on the same cores loses
even when no batch is late.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grain

_POLL_S = 0.05  # how often a blocked producer checks whether it should stop


class _End:
    """The wrapped iterator is exhausted."""


@dataclasses.dataclass
class _Failure:
    error: BaseException


class _CpuClock:
    """CPU seconds a thread has spent on its work, added by that thread, read by others."""

    def __init__(self) -> None:
        self.seconds = 0.0


def _state_of(iterator: Any, stateful: bool) -> Any:
    return copy.deepcopy(iterator.get_state()) if stateful else None


class _Channel:
    """The bounded queue from the thread to the consumer. A full channel's producer waits
    until only half of it is left, not until one slot frees: where it holds many small
    batches, the thread then wakes once per several batches instead of once per batch (each
    wake costs the consumer a system call, and both threads the interpreter lock)."""

    def __init__(self, maxsize: int):
        self._items: collections.deque[Any] = collections.deque()
        self._maxsize, self._refill_at = maxsize, maxsize // 2
        lock = threading.Lock()
        self._not_empty, self._not_full = threading.Condition(lock), threading.Condition(lock)
        self._full = False  # since it was last full, not yet down to `_refill_at` items

    def put(self, item: Any, timeout: float) -> bool:
        """Appends `item`, waiting at most `timeout` seconds for the refill; whether it did."""
        with self._not_full:
            if self._full:
                self._not_full.wait(timeout)
                if self._full:
                    return False
            self._items.append(item)
            self._full = len(self._items) >= self._maxsize
            self._not_empty.notify()
            return True

    def get(self) -> Any:
        """The oldest item, waiting for one; lets the producer refill once half is left."""
        with self._not_empty:
            while not self._items:
                self._not_empty.wait()
            item = self._items.popleft()
            if self._full and len(self._items) <= self._refill_at:
                self._full = False
                self._not_full.notify()  # once a refill; no-op if the producer is not waiting
            return item


def _put(out: _Channel, item: Any, stop: threading.Event) -> bool:
    """Queues `item` unless told to stop first; whether it was queued."""
    while not stop.is_set():
        if out.put(item, timeout=_POLL_S):
            return True
    return False


def _produce(iterator: Iterator[Any], place: Callable[[Any], Any], stateful: bool,
             stop: threading.Event, out: _Channel, clock: _CpuClock) -> None:
    """The thread: read, note the state, place, queue; until stopped, exhausted or failed.
    The CPU time of each read and placement goes to `clock` (not the waits on a full queue)."""
    try:
        while not stop.is_set():
            start = time.thread_time()
            local = next(iterator)
            state = _state_of(iterator, stateful)
            placed = place(local)
            clock.seconds += time.thread_time() - start
            if not _put(out, (placed, state), stop):
                return
        return
    except StopIteration:
        item: Any = _End()
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
        item = _Failure(e)
    _put(out, item, stop)


def closes_wrapped(iterator: Any) -> bool:
    """Whether a grain iterator wrapping `iterator` must close it itself: grain closes the
    grain iterators it was built on as its parents, not a generator, say. Decided when the
    wrapper is made, since its close may run at interpreter exit, when module globals such
    as `grain` are already None."""
    return not isinstance(iterator, grain.DatasetIterator) and hasattr(iterator, "close")


class Prefetcher(grain.DatasetIterator):
    """`size` batches of `iterator`, placed by `place`, kept ready ahead of the consumer.

    At most `size` placed batches wait in the queue (one more may be in the making); a full
    queue's thread resumes once `size // 2` are left. The thread starts on the first
    `next()` (or `start_prefetch()`), so the wrapped iterator can be restored before
    anything is read ahead. `close()` stops it; `set_state` drops what was read ahead and
    repositions the wrapped iterator.
    """

    def __init__(self, iterator: Iterator[Any], place: Callable[[Any], Any] = lambda b: b,
                 size: int = 2):
        if size < 1:
            raise ValueError(f"Prefetcher size={size}; must be >= 1")
        stateful = isinstance(iterator, grain.DatasetIterator)
        super().__init__(iterator if stateful else ())
        self._iterator, self._place, self._size = iterator, place, int(size)
        self._close_wrapped = closes_wrapped(iterator)
        self._stateful = stateful or hasattr(iterator, "get_state")
        self._state = self._read_state()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue = _Channel(self._size)
        self._failure: _Failure | None = None
        self._ended = False
        self._clock = _CpuClock()

    @property
    def iterator(self) -> Iterator[Any]:
        """The wrapped iterator (read ahead of the consumer while the thread runs)."""
        return self._iterator

    def _read_state(self) -> Any:
        return _state_of(self._iterator, self._stateful)

    def start_prefetch(self) -> None:
        """Starts reading ahead (idempotent); `next()` does it too."""
        if self._thread is None and not self._closed:
            self._stop = threading.Event()
            self._queue = _Channel(self._size)
            # the thread holds no reference to self, so an unclosed prefetcher can be collected
            self._thread = threading.Thread(
                target=_produce, name="dl_arch-prefetch", daemon=True,
                args=(self._iterator, self._place, self._stateful, self._stop, self._queue,
                      self._clock))
            self._thread.start()

    def __next__(self) -> Any:
        self._assert_not_closed()
        if self._failure is not None:
            raise self._failure.error
        if self._ended:
            raise StopIteration
        self.start_prefetch()
        item = self._queue.get()
        if isinstance(item, _End):
            self._ended = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._failure = item
            raise item.error
        batch, self._state = item
        return batch

    @property
    def busy_seconds(self) -> float:
        """CPU seconds the thread has spent reading and placing batches so far."""
        return self._clock.seconds

    def get_state(self) -> Any:
        """The wrapped iterator's state after the last batch `next()` returned."""
        return copy.deepcopy(self._state)

    def set_state(self, state: Any) -> None:
        """Drops the batches read ahead and moves the wrapped iterator to `state`."""
        self._halt()
        self._iterator.set_state(copy.deepcopy(state))
        self._state = self._read_state()
        self._failure, self._ended = None, False

    def _halt(self) -> None:
        """Stops the thread and forgets what it read ahead."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def close(self) -> None:
        """Stops the thread, then closes the wrapped iterator (idempotent)."""
        if self._closed:
            return
        self._halt()
        super().close()
        if self._close_wrapped:
            self._iterator.close()

    def __del__(self) -> None:
        if "_stop" in vars(self):  # (absent when __init__ failed)
            self._stop.set()  # lets the thread end; it holds no reference to self
