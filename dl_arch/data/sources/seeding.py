"""Per-example generators `np.random.default_rng([seed, salt, i])` for a whole batch of `i`.

`default_rng` with a list hashes it through a `SeedSequence` and seeds a `PCG64` from it:
about 12 µs per example in Python, more than most procedural examples cost to draw. Here
the SeedSequence hash runs once for the whole batch in uint32 numpy arithmetic and each
PCG64 gets its state set directly, which yields exactly the same generators (tested against
`default_rng` itself). Words that do not fit in 32 bits fall back to `default_rng`.
`raw_then_normal` and `raw_coin` (with `lane_draws.raw_uniform`) let a source draw every
generator's raw outputs and normals at once (`pcg64_lanes`) and turn them into its `uniform` /
`integers(2)` draws with array arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from dl_arch.data.sources.pcg64_lanes import Pcg64Lanes, matches_numpy

# numpy's SeedSequence constants (numpy/random/bit_generator.pyx)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4  # SeedSequence's default pool size, in uint32 words


def _shift_xor(x: np.ndarray) -> np.ndarray:
    return x ^ (x >> np.uint32(16))


def _constants(init: int, mult: int, count: int) -> np.ndarray:
    """The hash constant before each of `count` uses, and after it: uint32 [2, count]."""
    out = [init]
    for _ in range(count):
        out.append((out[-1] * mult) & 0xFFFFFFFF)
    return np.array([out[:-1], out[1:]], np.uint32)


def _pool(entropy_NW: np.ndarray) -> np.ndarray:
    """The 4-word mixed pool of `SeedSequence(entropy)` for every row of uint32 words.

    SeedSequence hashes one word at a time, each hash with the next constant; the hashes of
    one source word into the other three pool words are independent, so each group runs as
    one [N, k] operation with its k constants."""
    n, words = entropy_NW.shape
    consts = _constants(_INIT_A, _MULT_A, _POOL + _POOL * (_POOL - 1) + max(words - _POOL, 0)
                        * _POOL)
    used = 0

    def hashmix(value: np.ndarray, k: int) -> np.ndarray:
        nonlocal used
        before, after = consts[:, used:used + k]
        used += k
        return _shift_xor((value ^ before) * after)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _shift_xor(np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y)

    first = np.zeros((n, _POOL), np.uint32)
    first[:, :min(words, _POOL)] = entropy_NW[:, :_POOL]
    pool = hashmix(first, _POOL)
    for src in range(_POOL):
        others = [dst for dst in range(_POOL) if dst != src]
        pool[:, others] = mix(pool[:, others], hashmix(pool[:, src:src + 1], _POOL - 1))
    for src in range(_POOL, words):
        pool = mix(pool, hashmix(entropy_NW[:, src:src + 1], _POOL))
    return pool


def seed_words(entropy_NW: np.ndarray) -> np.ndarray:
    """`SeedSequence(row).generate_state(4, np.uint64)` for every row of uint32 entropy
    words: uint64 [N, 4], the words `PCG64` seeds itself from."""
    with np.errstate(over="ignore"):
        pool_N4 = _pool(entropy_NW.astype(np.uint32))
        before, after = _constants(_INIT_B, _MULT_B, 2 * _POOL)
        out = _shift_xor((np.tile(pool_N4, 2) ^ before) * after)  # word i from pool[i % 4]
    return np.ascontiguousarray(out).astype("<u4").view("<u8").astype(np.uint64)


class ExampleGenerators:
    """`np.random.default_rng([seed, salt, i])` for each `i` of `indices`, in order.

    Iterating yields them as Generators: one object re-seeded for each index, so use each
    before asking for the next. `lanes` holds them all as `Pcg64Lanes` for a source that
    draws the whole batch at once (None where a word exceeds 32 bits: then only iteration,
    through `default_rng` itself, is exact).
    """

    def __init__(self, seed: int, salt: int, indices: Sequence[int]):
        self._seed, self._salt = seed, salt
        self._indices = np.asarray(indices, np.int64)
        self.lanes: Pcg64Lanes | None = None
        if not len(self._indices) or (
                0 <= min(seed, salt, int(self._indices.min()))
                and max(seed, salt, int(self._indices.max())) < 2**32):
            entropy = np.empty((len(self._indices), 3), np.uint32)
            entropy[:, 0], entropy[:, 1], entropy[:, 2] = seed, salt, self._indices
            self.lanes = Pcg64Lanes.from_seed_words(seed_words(entropy))

    def __iter__(self) -> Iterator[np.random.Generator]:
        if self.lanes is None:  # words of several uint32s: the slow, exact path
            for i in self._indices.tolist():
                yield np.random.default_rng([self._seed, self._salt, i])
            return
        yield from self.lanes.generators()


def lanes_of(rngs: Iterable[np.random.Generator]) -> Pcg64Lanes | None:
    """The lanes of `rngs` when they are `ExampleGenerators` whose lanes reproduce the
    installed numpy (`matches_numpy`), else None: then draw one generator at a time."""
    if isinstance(rngs, ExampleGenerators) and rngs.lanes is not None and matches_numpy():
        return rngs.lanes
    return None


# numpy's Generator.integers(2) is the top bit of the low 32 bits of one raw output; its
# uniform(low, high) is `lane_draws.raw_uniform`. Reading the raw outputs of a whole batch
# and doing this arithmetic once gives the same numbers as the per-example calls (tested
# against them in tests/test_pipeline_batches.py).


def raw_then_normal(rngs: Iterable[np.random.Generator], count: int, raw_draws: int,
                    scale: float, normals: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw uint64 [count, raw_draws], normal(0, scale) [count, normals]): each of `count`
    generators read for its raw outputs, then for its Gaussian draws, in that order; all
    generators at once when `rngs` are `ExampleGenerators` with lanes (and the lanes
    reproduce the installed numpy)."""
    lanes = lanes_of(rngs)
    if lanes is not None:
        return lanes.raw_then_normal(raw_draws, 0.0, scale, normals)
    raw = np.empty((count, raw_draws), np.uint64)
    normal = np.empty((count, normals))
    for j, rng in enumerate(rngs):
        raw[j] = rng.bit_generator.random_raw(raw_draws)
        normal[j] = rng.normal(0.0, scale, size=normals)
    return raw, normal


def raw_coin(raw: np.ndarray) -> np.ndarray:
    """Generator.integers(2) (0 or 1, as uint64) from raw outputs."""
    return (raw & np.uint64(0xFFFFFFFF)) >> np.uint64(31)
