"""Per-example generators `np.random.default_rng([seed, salt, i])` for a whole batch of `i`.

`default_rng` with a list hashes it through a `SeedSequence` and seeds a `PCG64` from it:
about 12 µs per example in Python, more than most procedural examples cost to draw. Here
the SeedSequence hash runs once for the whole batch in uint32 numpy arithmetic and each
PCG64 gets its state set directly, which yields exactly the same generators (tested against
`default_rng` itself). Words that do not fit in 32 bits fall back to `default_rng`.
`raw_then_normal`, `raw_uniform` and `raw_coin` let a source read each generator once and
turn its raw outputs into its `uniform` / `integers(2)` draws for the whole batch at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

# numpy's SeedSequence constants (numpy/random/bit_generator.pyx)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4  # SeedSequence's default pool size, in uint32 words
# PCG64's 128-bit LCG multiplier (numpy/random/src/pcg64/pcg64.h)
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_MASK128 = (1 << 128) - 1


def _shift_xor(x: np.ndarray) -> np.ndarray:
    return x ^ (x >> np.uint32(16))


def _pool(entropy_NW: np.ndarray) -> np.ndarray:
    """The 4-word mixed pool of `SeedSequence(entropy)` for every row of uint32 words."""
    n, words = entropy_NW.shape
    const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal const
        value = value ^ np.uint32(const)
        const = (const * _MULT_A) & 0xFFFFFFFF
        return _shift_xor(value * np.uint32(const))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _shift_xor(np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y)

    zero = np.zeros(n, np.uint32)
    pool = [hashmix(entropy_NW[:, i] if i < words else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, words):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy_NW[:, src]))
    return np.stack(pool, axis=1)


def _state_words(pool_N4: np.ndarray) -> np.ndarray:
    """`SeedSequence.generate_state(4, np.uint64)` of every pool: uint64 [N, 4]."""
    const = _INIT_B
    out = np.empty((len(pool_N4), 8), np.uint32)
    for i in range(8):
        value = pool_N4[:, i % _POOL] ^ np.uint32(const)
        const = (const * _MULT_B) & 0xFFFFFFFF
        out[:, i] = _shift_xor(value * np.uint32(const))
    return out.astype("<u4").view("<u8").astype(np.uint64)


def pcg64_states(entropy_NW: np.ndarray) -> list[tuple[int, int]]:
    """(state, inc) of `PCG64(SeedSequence(row))` for every row of uint32 entropy words."""
    with np.errstate(over="ignore"):
        words = _state_words(_pool(entropy_NW.astype(np.uint32))).tolist()
    out = []
    for w0, w1, w2, w3 in words:
        # pcg_setseq_128_srandom_r: state 0, step, += seed, step
        inc = (((w2 << 64) | w3) << 1 | 1) & _MASK128
        state = ((inc + ((w0 << 64) | w1)) * _PCG_MULT + inc) & _MASK128
        out.append((state, inc))
    return out


def example_generators(seed: int, salt: int, indices: Sequence[int]
                       ) -> Iterator[np.random.Generator]:
    """`np.random.default_rng([seed, salt, i])` for each `i` of `indices`, in order.

    One Generator object is re-seeded for each index: use each before asking for the next.
    """
    values = np.asarray(indices, np.int64)
    if len(values) and not (0 <= min(seed, salt, int(values.min()))
                            and max(seed, salt, int(values.max())) < 2**32):
        for i in values.tolist():  # words of several uint32s: the slow, exact path
            yield np.random.default_rng([seed, salt, i])
        return
    entropy = np.empty((len(values), 3), np.uint32)
    entropy[:, 0], entropy[:, 1], entropy[:, 2] = seed, salt, values
    bit_generator = np.random.PCG64(0)
    generator = np.random.Generator(bit_generator)
    for state, inc in pcg64_states(entropy):
        bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                               "has_uint32": 0, "uinteger": 0}
        yield generator


# numpy's Generator.uniform(low, high) is low + (high - low) * d, with d the top 53 bits of
# one raw 64-bit output over 2**53; integers(2) is the top bit of the low 32 bits of one raw
# output. Reading the raw outputs of a whole batch and doing this arithmetic once gives the
# same numbers as the per-example calls (tested against them in tests/test_pipeline_batches.py).
_DOUBLE = 1.0 / 9007199254740992.0


def raw_then_normal(rngs: Iterable[np.random.Generator], count: int, raw_draws: int,
                    scale: float, normals: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw uint64 [count, raw_draws], normal(0, scale) [count, normals]): each of `count`
    generators read for its raw outputs, then for its Gaussian draws, in that order."""
    raw = np.empty((count, raw_draws), np.uint64)
    normal = np.empty((count, normals))
    for j, rng in enumerate(rngs):
        raw[j] = rng.bit_generator.random_raw(raw_draws)
        normal[j] = rng.normal(0.0, scale, size=normals)
    return raw, normal


def raw_uniform(raw: np.ndarray, low: float, high: float) -> np.ndarray:
    """Generator.uniform(low, high) from raw outputs."""
    return low + (high - low) * ((raw >> np.uint64(11)).astype(np.float64) * _DOUBLE)


def raw_coin(raw: np.ndarray) -> np.ndarray:
    """Generator.integers(2) (0 or 1, as uint64) from raw outputs."""
    return (raw & np.uint64(0xFFFFFFFF)) >> np.uint64(31)
