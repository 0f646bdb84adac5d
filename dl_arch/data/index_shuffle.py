"""grain's `index_shuffle` for a whole array of indices at once, in numpy.

`grain.experimental.index_shuffle(i, max_index, seed, rounds)` places index `i` in a
permutation of [0, max_index]: a Simon-style Feistel cipher on blocks of B bits (B the
even bit length of `max_index`, at least 16), keyed by `std::seed_seq{seed}`, repeated
("cycle walking") until the result is <= max_index. It is one C++ call per index, about
5 µs from Python; a training batch needs one per example. `index_shuffle` here runs the
same cipher on uint64 arrays, equal to grain's index for index (tested against it).

A range of up to 2^16 indices still takes 16-bit blocks, so each index walks 2^16 / range
passes on average (8 for 8,192 examples, 60 for 1,100) and a whole range costs 2^16 cipher
evaluations in many shrinking passes. Asked for most of a range of up to 2^15 (a shuffled
epoch of a small dataset), `index_shuffle` instead enciphers every block value once and
walks by pointer doubling on that table: 16 squarings at most, 2-16x faster; past 2^15 the
walks are short and the passes win (docs/results/benchmarks.md, "Small datasets' shuffles").
"""

from __future__ import annotations

import functools
import math

import grain.experimental
import numpy as np

_MIN_BLOCK_BITS = 16  # grain's smallest cipher block
_MASK32 = 0xFFFFFFFF
_MAX_WALK = 64  # expected cipher passes per index above which grain's own call is faster
_TABLE_RANGE = 1 << 15  # ranges up to this are walked on their block's cipher table when
# most of them is asked (2+ passes an index on average in the 16-bit block)


@functools.lru_cache(maxsize=64)
def round_keys(seed: int, rounds: int) -> tuple[int, ...]:
    """`std::seed_seq{seed}.generate(rounds words)`, the algorithm the C++ standard fixes
    ([rand.util.seedseq]), as uint32 ints."""
    n, s, entropy = rounds, 1, [seed & _MASK32]
    out = [0x8B8B8B8B] * n
    t = 11 if n >= 623 else 7 if n >= 68 else 5 if n >= 39 else 3 if n >= 7 else (n - 1) // 2
    p = (n - t) // 2
    q = p + t
    m = max(s + 1, n)

    def tangle(x: int) -> int:
        return x ^ (x >> 27)

    for k in range(m):
        r1 = (1664525 * tangle(out[k % n] ^ out[(k + p) % n] ^ out[(k - 1) % n])) & _MASK32
        r2 = (r1 + (s if k == 0 else (k % n + entropy[k - 1] if k <= s else k % n))) & _MASK32
        out[(k + p) % n] = (out[(k + p) % n] + r1) & _MASK32
        out[(k + q) % n] = (out[(k + q) % n] + r2) & _MASK32
        out[k % n] = r2
    for k in range(m, m + n):
        r3 = (1566083941 * tangle((out[k % n] + out[(k + p) % n] + out[(k - 1) % n]) & _MASK32)
              ) & _MASK32
        r4 = (r3 - k % n) & _MASK32
        out[(k + p) % n] ^= r3
        out[(k + q) % n] ^= r4
        out[k % n] = r4
    return tuple(out)


def block_bits(max_index: int) -> int:
    """grain's block size for `max_index`: ceil(log2(max_index)) made even, at least 16."""
    bits = math.ceil(math.log2(max_index))
    return max(bits + bits % 2, _MIN_BLOCK_BITS)


_NATIVE = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}  # words that need no mask


def _encrypt(left: np.ndarray, right: np.ndarray, keys: tuple[int, ...], word: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """The cipher's rounds on the (left, right) word halves of every block; words of 8, 16,
    32 or 64 bits in their own unsigned dtype (shifts wrap), others masked in uint64."""
    dtype = _NATIVE.get(word, np.uint64)
    mask = None if word in _NATIVE else dtype((1 << word) - 1)
    shifts = {r: (dtype(r), dtype(word - r)) for r in (1, 2, 8)}

    def rotl(x: np.ndarray, r: int) -> np.ndarray:
        up, down = shifts[r]
        y = (x << up) | (x >> down)
        return y if mask is None else y & mask

    for k1, k2 in zip(keys[0::2], keys[1::2]):
        left = left ^ ((rotl(right, 1) & rotl(right, 8)) ^ rotl(right, 2)) ^ dtype(k1 % (1 << word))
        right = right ^ ((rotl(left, 1) & rotl(left, 8)) ^ rotl(left, 2)) ^ dtype(k2 % (1 << word))
    return left, right


def _encipher(block: np.ndarray, keys: tuple[int, ...], word: int) -> np.ndarray:
    """The cipher of every block value (`2 * word` bits used, in `block`'s integer dtype):
    its word halves through the rounds, joined again."""
    kind = block.dtype.type
    mask = kind((1 << word) - 1)  # grain's word bitsets drop any higher bit
    dtype = _NATIVE.get(word, np.uint64)
    left, right = _encrypt(((block >> kind(word)) & mask).astype(dtype),
                           (block & mask).astype(dtype), keys, word)
    return (left.astype(block.dtype) << kind(word)) | right.astype(block.dtype)


def index_shuffle(index: np.ndarray, max_index: int, seed: int, rounds: int = 4) -> np.ndarray:
    """`grain.experimental.index_shuffle(i, max_index, seed, rounds)` for every `i` of
    `index` (int64 array, each in [0, max_index]); one seed for all."""
    index = np.asarray(index, np.int64)
    if max_index == 0:
        return np.zeros_like(index)
    word = block_bits(int(max_index)) // 2
    keys = round_keys(int(seed) & _MASK32, int(rounds))
    if max_index < _TABLE_RANGE and 2 * index.size > max_index + 1:
        return _walked_by_table(index, int(max_index), keys, word)
    if (1 << 2 * word) > _MAX_WALK * (max_index + 1):
        # a tiny range walks thousands of passes per index: grain's C++ call is faster
        return np.array([grain.experimental.index_shuffle(
            i, max_index=int(max_index), seed=int(seed), rounds=int(rounds))
            for i in index.tolist()], np.int64).reshape(index.shape)
    value = index.astype(np.uint64)
    todo = np.arange(len(value))
    while len(todo):  # cycle walking: encrypt again until inside [0, max_index]
        block = _encipher(value[todo], keys, word)
        value[todo] = block
        todo = todo[block > np.uint64(max_index)]
    return value.astype(np.int64)


def _walked_by_table(index: np.ndarray, max_index: int, keys: tuple[int, ...], word: int
                     ) -> np.ndarray:
    """`index_shuffle` of `index` from the cipher of every value of the block at once. A walk
    from value y stops at y if y <= max_index, else steps to its cipher; that step applied
    2^k times is k squarings of its table, so every index's walk ends within 2 * word of
    them, however long it is."""
    value = np.arange(1 << 2 * word, dtype=np.int32)  # int32 tables: faster gathers
    cipher = _encipher(value, keys, word)
    walk = np.where(value <= max_index, value, cipher)  # one step of every walk
    first = cipher[index]
    while walk[first].max() > max_index:
        walk = walk[walk]
    return walk[first].astype(np.int64)
