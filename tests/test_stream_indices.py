"""`StreamIndices` gives, batch by batch, the indices grain's shuffle/repeat/slice/batch chain
gives: one process or several, shuffled or not, finite (repeated) or endless, across epochs."""

import grain
import numpy as np
import pytest

from dl_arch.data.sources.procedural import INFINITE
from dl_arch.data.stream_indices import StreamIndices


def grain_reference_chain(length, shuffle, seed, repeat, process_index, process_count,
                          batch_size):
    """The grain chain `StreamIndices` stands for (element b: batch b's indices)."""
    ds = grain.MapDataset.range(length)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if repeat:
        ds = ds.repeat(None)
    return ds[process_index::process_count].batch(batch_size, drop_remainder=True)


@pytest.mark.parametrize("length,shuffle,repeat", [
    (20, True, True), (20, False, True), (7, True, True), (1, True, True),
    (INFINITE, True, False), (INFINITE, False, False)])
@pytest.mark.parametrize("process_index,process_count", [(0, 1), (1, 3)])
def test_batches_equal_grains_chain(length, shuffle, repeat, process_index, process_count):
    args = (length, shuffle, 5, repeat, process_index, process_count, 3)
    ours, chain = StreamIndices(*args), grain_reference_chain(*args)
    assert len(ours) == len(chain)
    # the first batches (several epochs of the small splits) and some far into the stream
    for b in [*range(12), 10**6 + 7, len(chain) - 1]:
        np.testing.assert_array_equal(ours(b), np.asarray(chain[b]), err_msg=f"batch {b}")


def test_past_the_end_of_an_endless_split_wraps_as_grain_does():
    """Batch numbers beyond the stream's length (2**31 examples) wrap into the next epoch."""
    args = (INFINITE, True, 3, False, 1, 2, 4)
    ours, chain = StreamIndices(*args), grain_reference_chain(*args)
    for b in (len(chain), len(chain) + 1, 2 * len(chain) + 5):
        np.testing.assert_array_equal(ours(b), np.asarray(chain[b]))


def test_past_the_end_of_a_repeated_split_wraps_as_grain_does():
    """Positions past 2**63 (batch numbers no run reaches) still give grain's indices."""
    args = (20, True, 5, True, 1, 3, 3)
    ours, chain = StreamIndices(*args), grain_reference_chain(*args)
    for b in (len(chain), len(chain) + 1):
        np.testing.assert_array_equal(ours(b), np.asarray(chain[b]))


def test_every_epoch_is_a_permutation_reshuffled_per_epoch():
    ours = StreamIndices(12, True, 0, True, 0, 1, 4)
    epochs = [np.concatenate([ours(b) for b in range(3 * e, 3 * e + 3)]) for e in range(3)]
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(12))
    assert not np.array_equal(epochs[0], epochs[1])
