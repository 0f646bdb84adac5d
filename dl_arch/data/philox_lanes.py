"""numpy's Philox4x64-10 for many counters at once: the augmentation generators of a batch.

grain's `random_map(seed)` hands the example at stream position p a Philox generator keyed
by the seed with counter [0, 0, 0, p] (`loader.PositionRngs`). Its outputs are the Philox
blocks of counters [1, 0, 0, p], [2, 0, 0, p], ..., four 64-bit words each, so a whole
batch's outputs are ten rounds of uint64 array arithmetic instead of one generator set up
per example. Checked against numpy once a process (`matches_numpy`) and in
tests/test_lane_draws.py.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from dl_arch.data.lane_draws import LaneDraws
from dl_arch.data.sources.pcg64_lanes import mul_hi

_U = np.uint64
_MASK64 = (1 << 64) - 1
# Philox4x64's round multipliers and key increments (numpy/random/src/philox/philox.h)
_M0, _M1 = _U(0xD2E7470EE14C6C93), _U(0xCA5A826395121157)
_W0, _W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B
_ROUNDS = 10
log = logging.getLogger("dl_arch")


_MULTIPLIERS = np.array([_M0, _M1], _U)[:, None, None]


@functools.cache
def _round_keys(seed: int) -> tuple[np.ndarray, ...]:
    """The key (k0, k1) of each of the ten rounds for `np.random.Philox(seed)`'s key, as
    uint64 [2, 1, 1]."""
    k0, k1 = (int(k) for k in np.random.Philox(seed).state["state"]["key"])
    return tuple(np.array([(k0 + r * _W0) & _MASK64, (k1 + r * _W1) & _MASK64],
                          _U)[:, None, None] for r in range(_ROUNDS))


def philox_blocks(seed: int, positions: np.ndarray, blocks: int) -> np.ndarray:
    """The first `4 * blocks` outputs of the generator at each stream position (uint64
    [N, 4 * blocks]): block b is Philox4x64-10 of counter [b + 1, 0, 0, position]."""
    n = len(positions)
    # the counter words as [2, N, blocks] pairs: (v0, v2) are multiplied, (v1, v3) xor-ed in
    multiplied = np.zeros((2, n, blocks), _U)
    multiplied[0] = np.arange(1, blocks + 1, dtype=_U)
    mixed = np.zeros((2, n, blocks), _U)
    mixed[1] = np.asarray(positions, _U)[:, None]
    with np.errstate(over="ignore"):
        for keys in _round_keys(seed):
            hi, lo = mul_hi(multiplied, _MULTIPLIERS), multiplied * _MULTIPLIERS
            # round: (v0, v1, v2, v3) <- (hi(v2 M1) ^ v1 ^ k0, lo(v2 M1), hi(v0 M0) ^ v3 ^ k1,
            # lo(v0 M0)): the new (v0, v2) and (v1, v3) pairs
            multiplied, mixed = hi[::-1] ^ mixed ^ keys, lo[::-1]
    return np.stack([multiplied[0], mixed[0], multiplied[1], mixed[1]], axis=2).reshape(
        n, 4 * blocks)


def position_draws(seed: int, positions: np.ndarray) -> LaneDraws | None:
    """Draws of the generators `PositionRngs(seed)` gives `positions`, all at once; None
    where numpy's Philox is not reproduced (the caller then draws one at a time)."""
    if not matches_numpy():
        return None
    positions = np.asarray(positions, np.int64)
    return LaneDraws(lambda count: philox_blocks(seed, positions, -(-count // 4)),
                     len(positions), expected=4)


@functools.cache
def matches_numpy() -> bool:
    """Whether `philox_blocks` gives the installed numpy's Philox outputs, checked once a
    process on 64 positions of one seed; if not, augmentations draw one example at a time
    (slower, same data) and a warning says so."""
    positions = np.arange(64) * 1_000_003
    ours = philox_blocks(20261203, positions, 2)
    bit_generator = np.random.Philox(20261203)
    state = bit_generator.state
    same = True
    for position, row in zip(positions.tolist(), ours):
        state["state"]["counter"] = np.array([0, 0, 0, position], np.uint64)
        state["buffer_pos"] = 4
        bit_generator.state = state
        same &= np.array_equal(bit_generator.random_raw(8), row)
    if not same:
        log.warning("numpy %s's Philox differs from dl_arch.data.philox_lanes: "
                    "augmentations draw one example at a time (slower, same data)",
                    np.__version__)
    return bool(same)
