"""Steps run as chunks: `config.steps_per_call` optimiser steps in one compiled call.

A small model's step costs less than the host's work to launch it (dispatch, placing the
batch); a chunk of k steps is one call of a `lax.scan` over k stacked batches, so that work
is paid once per chunk. Chunks never cross a step where the host acts (logging, evaluation,
a checkpoint, the last step): where k more steps would, the steps up to it run as one
shorter chunk. A run compiles the one-step and k-step programs, and one for each shorter
length it meets, at its first use: none where k divides every interval, never more than
k - 2. Where a chunk ends is a function of the step and the config alone, so a resumed run
continues with the chunks an uninterrupted run has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import ml_collections

from dl_arch.data.batching import stack_examples
from dl_arch.data.prefetch import closes_wrapped


def next_action(step: int, config: ml_collections.ConfigDict) -> int:
    """The first step after `step` where the host reads metrics, evaluates or saves."""
    every = (config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
    return min(min((step // n + 1) * n for n in every), config.num_train_steps)


def chunk_end(step: int, config: ml_collections.ConfigDict) -> int:
    """The last step of the call that starts after `step`: k steps on, or the next step
    where the host acts if that comes first."""
    return min(step + int(config.steps_per_call), next_action(step, config))


def chunking_note(config: ml_collections.ConfigDict) -> str | None:
    """What caps `config.steps_per_call`, if anything does: an interval shorter than it."""
    fields = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps")
    short = [f"config.{f}={config[f]}" for f in fields if config[f] < config.steps_per_call]
    if not short:
        return None
    return (f"config.steps_per_call={config.steps_per_call} is more than {', '.join(short)}: "
            f"a call runs at most {min(config[f] for f in fields)} steps, since chunks end "
            f"where the host acts")


def chunk_lengths(start: int, config: ml_collections.ConfigDict) -> Iterator[int]:
    """Lengths of the chunks from `start` to the end of the run."""
    step = start
    while step < config.num_train_steps:
        end = chunk_end(step, config)
        yield end - step
        step = end


class ChunkedBatches(grain.DatasetIterator):
    """`(length, batch)` per chunk: a lone batch for a chunk of one step, else `length`
    batches stacked along a new leading axis. Its state is the wrapped iterator's after the
    chunk's last batch, so checkpoints hold the same position whatever `steps_per_call`."""

    def __init__(self, iterator: Any, lengths: Iterator[int]):
        super().__init__(iterator if isinstance(iterator, grain.DatasetIterator) else ())
        self._iterator, self._lengths = iterator, lengths
        self._close_wrapped = closes_wrapped(iterator)

    def __next__(self) -> tuple[int, Any]:
        length = next(self._lengths)
        if length > 1 and hasattr(self._iterator, "read"):  # all of them in one read
            return length, self._iterator.read(length)
        batches = [next(self._iterator) for _ in range(length)]
        return length, batches[0] if length == 1 else stack_examples(batches)

    def get_state(self) -> Any:
        return self._iterator.get_state()

    def set_state(self, state: Any) -> None:
        raise NotImplementedError("restore the wrapped iterator, then wrap it from that step")

    def close(self) -> None:
        if not self._closed:
            super().close()
            if self._close_wrapped:
                self._iterator.close()
