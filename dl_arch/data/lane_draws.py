"""numpy `Generator` draws for many generators at once, from their raw 64-bit outputs.

A procedural example or an augmentation draws a few numbers from its own generator, and
calling each generator from Python costs more than the draws. `LaneDraws` holds the output
streams of N generators (lanes) and replays numpy's draw functions on all of them at once:
each lane keeps its own read position and the buffered 32-bit half that numpy's bounded
integers use, and a rejection loop reads all its tries at once (`peek`) before each lane
moves past its accepted one (`skip`). The values are numpy's own arithmetic on the same outputs
(tested against `np.random.Generator` in tests/test_lane_draws.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_U = np.uint64
_LOW32 = _U(0xFFFFFFFF)
_DOUBLE = 1.0 / 9007199254740992.0  # 2^-53


def raw_uniform(raw: np.ndarray, low, high) -> np.ndarray:
    """`Generator.uniform(low, high)` from raw outputs: numpy's next_double is the top 53
    bits over 2^53, then low + (high - low) * it (random() is uniform(0, 1), the same bits)."""
    return low + (high - low) * ((raw >> _U(11)).astype(np.float64) * _DOUBLE)


class LaneDraws:
    """Draws of N generators whose first k outputs are `outputs(k)` (uint64 [N, k]).

    `position` counts each lane's outputs read; `exact` is False for lanes whose bounded
    integer fell in Lemire's rejection zone (about n / 2^32 of draws): their values here are
    not numpy's, and the caller redraws those lanes with numpy itself.
    """

    def __init__(self, outputs: Callable[[int], np.ndarray], count: int, expected: int = 8):
        self._outputs = outputs
        self._table = outputs(expected)
        self._rows = np.arange(count)
        self.position = np.zeros(count, np.intp)
        self.exact = np.ones(count, bool)
        self._half = np.zeros(count, _U)  # the high 32 bits of an output next_uint32 read
        self._has_half = np.zeros(count, bool)

    def peek(self, count: int) -> np.ndarray:
        """Each lane's next `count` outputs, not yet read (uint64 [N, count]): a rejection
        loop's tries at once, read with `skip` once each lane's accepted try is known."""
        need = int(self.position.max(initial=0)) + count
        if need > self._table.shape[1]:  # more outputs than expected: compute further
            self._table = self._outputs(max(need, 2 * self._table.shape[1]))
        return self._table[self._rows[:, None], self.position[:, None] + np.arange(count)]

    def skip(self, count: np.ndarray) -> None:
        """Reads `count` (int [N]) outputs of each lane."""
        self.position += count

    def next_uint64(self, active: np.ndarray | None = None) -> np.ndarray:
        """Each lane's next output (uint64 [N]); with `active`, only those lanes read it
        (the others get an unspecified value)."""
        out = self.peek(1)[:, 0]
        self.skip(1 if active is None else active)
        return out

    def peek_uniform(self, low, high, count: int) -> np.ndarray:
        """`uniform(low, high)` of each lane's next `count` outputs, not yet read (float64
        [N, count]; low and high: scalars or [N, 1])."""
        return raw_uniform(self.peek(count), low, high)

    def next_uint32(self) -> np.ndarray:
        """numpy's next_uint32: the low half of a new output, or the high half that the
        previous call left buffered (uint64 [N] holding 32-bit values)."""
        output = self.next_uint64(~self._has_half)
        out = np.where(self._has_half, self._half, output & _LOW32)
        self._half = np.where(self._has_half, self._half, output >> _U(32))
        self._has_half = ~self._has_half
        return out

    def random(self, size: int = 1) -> np.ndarray:
        """`Generator.random(size)` of every lane: float64 [N, size]."""
        return self.uniform(0.0, 1.0, size)

    def uniform(self, low, high, size: int = 1) -> np.ndarray:
        """`Generator.uniform(low, high, size)` of every lane (low and high: scalars or
        [N, 1]): float64 [N, size]."""
        return raw_uniform(np.stack([self.next_uint64() for _ in range(size)], axis=1),
                           low, high)

    def integers(self, high: int, size: int = 1) -> np.ndarray:
        """`Generator.integers(high, size=size)` (int64, in [0, high)) of every lane:
        numpy's Lemire method on 32-bit halves, int64 [N, size]."""
        if not 1 <= high <= 1 << 32:
            raise ValueError(f"integers: high={high} outside the 32-bit range (1..2^32)")
        if high == 1:  # a range of one value reads nothing
            return np.zeros((len(self._rows), size), np.int64)
        columns = []
        for _ in range(size):
            value = self.next_uint32()
            if high == 1 << 32:
                columns.append(value.astype(np.int64))
                continue
            product = value * _U(high)
            threshold = ((1 << 32) - high) % high  # numpy: (UINT32_MAX - rng) % rng_excl
            self.exact &= (product & _LOW32) >= _U(threshold)
            columns.append((product >> _U(32)).astype(np.int64))
        return np.stack(columns, axis=1)
