"""The numpy `index_shuffle` equals grain's C++ one index for index, over block sizes with and
without a native dtype, cycle walking, the largest seed and both round counts."""

import grain.experimental
import numpy as np
import pytest

from dl_arch.data.index_shuffle import _walked_by_table, block_bits, index_shuffle, round_keys


@pytest.mark.parametrize("max_index", [1, 2, 6, 19, 999, 65535, 65536, 65537, 2**20,
                                       2**31 - 2, 2**40 + 3, 2**62 + 5])
@pytest.mark.parametrize("seed", [0, 5, 123456789, 2**32 - 1])
@pytest.mark.parametrize("rounds", [4, 8])
def test_equals_grain(max_index, seed, rounds):
    rng = np.random.default_rng(max_index % 1000)
    index = np.unique(np.r_[np.arange(min(max_index + 1, 200)),
                            rng.integers(0, min(max_index + 1, 2**62), 100), max_index])
    expected = [grain.experimental.index_shuffle(int(i), max_index=max_index, seed=seed,
                                                 rounds=rounds) for i in index]
    np.testing.assert_array_equal(index_shuffle(index, max_index, seed, rounds), expected)


def _grain(index, max_index: int, seed: int, rounds: int) -> list[int]:
    return [grain.experimental.index_shuffle(int(i), max_index=max_index, seed=seed,
                                             rounds=rounds) for i in index]


@pytest.mark.parametrize("max_index", [1, 6, 999, 8191, 20000, 32767])
@pytest.mark.parametrize("seed", [0, 2**32 - 1])
@pytest.mark.parametrize("rounds", [4, 8])
def test_a_whole_small_range_walked_by_table_equals_grain(max_index, seed, rounds):
    """Most of a range of 16-bit blocks (a shuffled epoch) walks by pointer doubling on the
    block's cipher table; index for index it is grain's, the whole range and a part of it."""
    index = np.arange(max_index + 1)
    np.testing.assert_array_equal(index_shuffle(index, max_index, seed, rounds),
                                  _grain(index, max_index, seed, rounds))
    part = np.random.default_rng(max_index).choice(max_index + 1, min(max_index + 1, 50),
                                                    replace=False)
    keys = round_keys(seed, rounds)
    np.testing.assert_array_equal(_walked_by_table(part, max_index, keys, 8),
                                  _grain(part, max_index, seed, rounds))


def test_a_permutation_of_the_range():
    out = index_shuffle(np.arange(5000), 4999, seed=7)
    np.testing.assert_array_equal(np.sort(out), np.arange(5000))
    assert not np.array_equal(out, np.arange(5000))


def test_block_size_and_keys():
    """The block is even and at least 16 bits; the keys are std::seed_seq's (the words that
    `std::seed_seq{s}.generate` writes into 4 uint32s, printed by g++ 12 / libstdc++)."""
    assert [block_bits(m) for m in (2, 65535, 2**17, 2**17 + 1, 2**31 - 2)] == [16, 16, 18, 18, 32]
    assert round_keys(0, 4) == (2963817213, 69796629, 1973464570, 532167439)
    assert round_keys(5, 4) == (2245491460, 1031600070, 716532090, 3792855389)
