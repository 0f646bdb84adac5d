"""`BatchIterator`: small batches read in blocks and handed out one by one are the batches
read one at a time; state, resume and the stream's end are unchanged."""

from __future__ import annotations

import chex
import pytest

from dl_arch.data import batch_iterator
from dl_arch.data.loader import LoadStreamBatch
from dl_arch.data.pipeline import _train_batches, train_dataset
from dl_arch.testing import load_config

# reads of 1, 3 or 5 batches (as chunks of steps make them), the singles crossing blocks of
# 16, the 5 starting in one block and ending past it
READS = [1] * 5 + [3] + [1] * 14 + [3] + [1] * 5 + [5] + [1] * 3
# chunks of 16 steps with 2 left before a log row, and a chunk that ends inside a block
CHUNKS = [16, 2, 16, 3]


def _dataset(name: str, **fields):
    dataset = load_config("configs/mlp_shapes.py:smoke").dataset
    dataset.update(name=name, num_workers=0, **fields)
    return dataset


def _one_at_a_time(dataset, batch: int, monkeypatch) -> list:
    """The stream's first 40 batches, each read alone (no blocks)."""
    with monkeypatch.context() as patch:
        patch.setattr(batch_iterator, "BLOCK_BYTES", 0)
        it = iter(train_dataset(dataset, 3, batch, lambda ex, rng, train: ex))
        return [next(it) for _ in range(40)]


def _counting_blocks(monkeypatch) -> list[int]:
    """The `count` of every `LoadStreamBatch.many` call from here on."""
    counts: list[int] = []
    many = LoadStreamBatch.many
    monkeypatch.setattr(LoadStreamBatch, "many",
                        lambda self, first, count: (counts.append(count), many(self, first,
                                                                               count))[1])
    return counts


@pytest.mark.parametrize("name,batch,reads,blocks", [
    ("xor", 8, READS, [16, 16, 16]), ("shapes", 32, READS, [3, 3, 5]),
    ("xor", 8, CHUNKS, [16, 16, 16])])
def test_reads_equal_one_batch_at_a_time_and_only_small_batches_take_blocks(
        name, batch, reads, blocks, monkeypatch):
    dataset = _dataset(name, image_size=32)
    expected = _one_at_a_time(dataset, batch, monkeypatch)
    counts = _counting_blocks(monkeypatch)
    it = iter(train_dataset(dataset, 3, batch, lambda ex, rng, train: ex))
    position = 0
    for count in reads:
        got = it.read(count)
        if count == 1:
            chex.assert_trees_all_equal(got, expected[position])
        else:
            for j in range(count):
                chex.assert_trees_all_equal({k: v[j] for k, v in got.items()},
                                            expected[position + j])
        position += count
        assert it.get_state() == {"next_index": position}
    # the first read is alone (its size decides); the xor batches (8 points, under
    # BLOCK_BYTES) then come 16 to a read, and a longer read takes what the last block holds
    # and starts a new block for the rest (2 of the 5; of the chunks, 2 of the second 16),
    # whose rest the next reads take; the 32 RGB images of shapes come one at a time
    assert counts == blocks


def test_restored_state_inside_a_block_continues_with_the_next_batch(monkeypatch):
    dataset = _dataset("xor")
    expected = _one_at_a_time(dataset, 8, monkeypatch)
    it = iter(train_dataset(dataset, 3, 8, lambda ex, rng, train: ex))
    for _ in range(7):  # into the first block
        next(it)
    resumed = iter(train_dataset(dataset, 3, 8, lambda ex, rng, train: ex))
    resumed.set_state(it.get_state())
    for position in range(7, 30):
        chex.assert_trees_all_equal(next(resumed), expected[position], next(it))


def test_a_block_stops_at_the_end_of_a_finite_stream(monkeypatch):
    # a stream of 5 batches of 8 points, read in blocks of up to 16
    _, load, _ = _train_batches(_dataset("xor"), 3, 8, lambda ex, rng, train: ex, 0, 1)
    it = batch_iterator.BatchIterator(load, length=5)
    counts = _counting_blocks(monkeypatch)
    assert len([next(it) for _ in range(5)]) == 5
    with pytest.raises(StopIteration):
        next(it)
    assert counts == [4]  # the first batch alone, then the four left
