"""Many generators' draws at once (`LaneDraws` on PCG64 and Philox lanes) are numpy's own."""

import numpy as np
import pytest

from dl_arch.data import philox_lanes
from dl_arch.data.augment import preprocess_batch
from dl_arch.data.lane_draws import LaneDraws
from dl_arch.data.loader import BatchRngs, PositionRngs
from dl_arch.data.sources.pcg64_lanes import PCG_MULT, Pcg64Lanes
from dl_arch.data.sources.seeding import ExampleGenerators
from dl_arch.data.sources.shapes import Shapes

_MASK128 = (1 << 128) - 1


def _script(draws, rngs, seed_rng):
    """The same sequence of draws through `LaneDraws` and through each numpy generator:
    (lane values, numpy values) per call. The integers read 32-bit halves, an odd number
    between uniform draws, so numpy's buffered half carries across calls."""
    r = 1.0 + seed_rng.random((len(draws.position), 1)) * 5
    calls = [
        (lambda: draws.uniform(0.0, 1.0, 3), lambda g, j: g.uniform(0.0, 1.0, 3)),
        (lambda: draws.integers(6), lambda g, j: [g.integers(6)]),
        (lambda: draws.uniform(r, 16 - r, 2), lambda g, j: g.uniform(r[j, 0], 16 - r[j, 0], 2)),
        (lambda: draws.integers(9, size=3), lambda g, j: g.integers(0, 9, size=3)),
        (lambda: draws.integers(7), lambda g, j: [g.integers(7)]),
        (lambda: draws.random(2), lambda g, j: g.random(2)),
        (lambda: draws.integers(1, size=2), lambda g, j: g.integers(1, size=2)),
        (lambda: draws.integers(2**32), lambda g, j: [g.integers(2**32)]),
        (lambda: draws.integers(2**31 - 1), lambda g, j: [g.integers(2**31 - 1)]),
        (lambda: draws.random(), lambda g, j: [g.random()]),
    ]
    ours = [call() for call, _ in calls]
    theirs = [[np.asarray(ref(g, j)) for j, g in enumerate(rngs)] for _, ref in calls]
    return ours, theirs


def _assert_script_equal(ours, theirs, exact):
    for call, (got, want) in enumerate(zip(ours, theirs)):
        for j, value in enumerate(want):
            if exact[j]:
                np.testing.assert_array_equal(got[j], value, err_msg=f"call {call} lane {j}")


def test_pcg64_lane_draws_equal_generator_calls():
    """uniform (scalar and per-lane bounds), integers (1, small, 2^31 - 1, 2^32, several
    at once, with numpy's buffered 32-bit halves across calls) and random."""
    indices = np.arange(600)
    lanes = ExampleGenerators(4, 9, indices).lanes
    draws = LaneDraws(lanes.raw, len(indices), expected=2)  # grows its table as it reads
    rngs = [np.random.default_rng([4, 9, i]) for i in indices.tolist()]
    ours, theirs = _script(draws, rngs, np.random.default_rng(0))
    assert draws.exact.all()  # no draw here rejects more often than 1 in 2^29
    _assert_script_equal(ours, theirs, draws.exact)
    for j, g in enumerate(rngs):  # every lane read exactly as many outputs as numpy
        if draws.exact[j]:
            after = np.random.default_rng([4, 9, int(indices[j])]).bit_generator
            after.advance(int(draws.position[j]))
            assert after.state["state"] == g.bit_generator.state["state"]


def test_peeked_tries_read_with_skip_equal_sequential_draws():
    indices = np.arange(200)
    draws = LaneDraws(ExampleGenerators(1, 1, indices).lanes.raw, len(indices))
    draws.integers(5)  # a buffered half stays for the next integers call
    tries = draws.peek_uniform(0.5, 2.0, 12)
    taken = np.random.default_rng(3).integers(0, 13, len(indices))
    draws.skip(taken)
    after = draws.integers(6)[:, 0]
    for j, i in enumerate(indices.tolist()):
        g = np.random.default_rng([1, 1, i])
        g.integers(5)
        np.testing.assert_array_equal(tries[j, :taken[j]], g.uniform(0.5, 2.0, taken[j]))
        assert after[j] == g.integers(6)


def _lanes_outputting(outputs: list[int]) -> Pcg64Lanes:
    """Lanes with increment 1 whose next output is each of `outputs`."""
    inverse = pow(PCG_MULT, -1, 1 << 128)
    return Pcg64Lanes.from_ints([((o - 1) * inverse) & _MASK128 for o in outputs],
                                [1] * len(outputs))


def test_bounded_integers_in_lemires_rejection_zone_are_marked_inexact():
    """integers(6) rejects a 32-bit value v when (6 v) mod 2^32 < (2^32 - 6) mod 6 = 4, and
    numpy then reads the buffered high half: such lanes say `exact` False, the rest match."""
    lows = [0, 1, 0xAAAAAAAB, 0x2AAAAAAB, 5, 0xFFFFFFFF]  # 6 v mod 2^32: 0, 6, 2, 2, 30, -6
    outputs = [(0x12345678 << 32) | low for low in lows]
    draws = LaneDraws(_lanes_outputting(outputs).raw, len(outputs))
    values = draws.integers(6)[:, 0]
    for j, generator in enumerate(_lanes_outputting(outputs).generators()):
        value = generator.integers(6)
        rejected = generator.bit_generator.state["has_uint32"] == 0  # read both halves
        assert draws.exact[j] == (not rejected), f"lane {j}"
        if not rejected:
            assert values[j] == value
    assert draws.exact.tolist() == [False, True, False, False, True, True]


def test_lanes_mark_exactly_the_draws_numpy_rejects():
    """integers(2^31 + 5) rejects about half of all 32-bit values: each lane is exact iff
    numpy accepted its first value (then it holds the high half buffered)."""
    indices = np.arange(400)
    draws = LaneDraws(ExampleGenerators(2, 2, indices).lanes.raw, len(indices))
    values = draws.integers(2**31 + 5)[:, 0]
    for j, i in enumerate(indices.tolist()):
        g = np.random.default_rng([2, 2, i])
        value = g.integers(2**31 + 5)
        one_output = np.random.default_rng([2, 2, i]).bit_generator
        one_output.advance(1)
        accepted = (g.bit_generator.state["has_uint32"] == 1  # read one half of one output
                    and g.bit_generator.state["state"] == one_output.state["state"])
        assert draws.exact[j] == accepted
        assert not accepted or values[j] == value
    assert 0.3 < draws.exact.mean() < 0.7


@pytest.mark.parametrize("seed", [0, 5, 2**40 + 3])
def test_philox_blocks_are_numpys_philox_at_each_position(seed):
    positions = np.array([0, 1, 63, 10**6, 2**40, 2**63 + 7], np.uint64)
    ours = philox_lanes.philox_blocks(seed, positions, 3)
    bit_generator = np.random.Philox(seed)
    for position, row in zip(positions.tolist(), ours):
        state = bit_generator.state
        state["state"]["counter"] = np.array([0, 0, 0, position], np.uint64)
        state["buffer_pos"] = 4
        bit_generator.state = state
        np.testing.assert_array_equal(row, bit_generator.random_raw(12))


def test_batch_rngs_lanes_replay_position_rngs():
    rngs = BatchRngs(11, 64 * 1000)
    draws = rngs.lanes(300)
    reference = PositionRngs(11)
    crops, flips, coins = draws.integers(9, size=2), draws.random()[:, 0], draws.integers(2)
    for j in range(300):
        g = reference(64 * 1000 + j)
        np.testing.assert_array_equal(crops[j], g.integers(0, 9, size=2))
        assert flips[j] == g.random() and coins[j, 0] == g.integers(2)
    assert draws.exact.all()


def _augment_config():
    import ml_collections

    return ml_collections.ConfigDict(dict(augment=("flip_lr", "random_crop", "flip_lr"),
                                          crop_padding=3, resize_to=0, crop_fraction=0.875,
                                          normalize_mean=(), normalize_std=()))


def test_augmentation_draws_fall_back_to_numpy_where_lanes_cannot(monkeypatch):
    """A numpy whose Philox the lanes do not reproduce, or a lane Lemire would redraw, gets
    the example's draws from its own generator: the same batch as the per-example draws."""
    images = np.random.default_rng(0).random((50, 12, 12, 2)).astype(np.float32)
    reference = PositionRngs(7)
    expected = preprocess_batch({"image": images}, lambda j: reference(100 + j),
                                _augment_config(), True)["image"]
    fast = preprocess_batch({"image": images}, BatchRngs(7, 100), _augment_config(), True)
    np.testing.assert_array_equal(fast["image"], expected)

    integers = LaneDraws.integers

    def rejecting(self, high, size=1):  # lanes 3 and 40 "hit" the zone
        out = integers(self, high, size)
        self.exact[[3, 40]] = False
        out[[3, 40]] = -99
        return out

    monkeypatch.setattr(LaneDraws, "integers", rejecting)
    redrawn = preprocess_batch({"image": images}, BatchRngs(7, 100), _augment_config(), True)
    np.testing.assert_array_equal(redrawn["image"], expected)
    monkeypatch.setattr(philox_lanes, "matches_numpy", lambda: False)
    assert BatchRngs(7, 100).lanes(50) is None
    slow = preprocess_batch({"image": images}, BatchRngs(7, 100), _augment_config(), True)
    np.testing.assert_array_equal(slow["image"], expected)


@pytest.mark.parametrize("kw", [
    dict(channels=1, num_objects=4, min_size=0.6, max_size=0.9),  # placements run out
    dict(channels=3, num_objects=2, palette="light_on_dark", num_classes=1),
])
def test_shapes_lanes_equal_one_generator_at_a_time(kw, monkeypatch):
    """Large shapes exhaust the ten placement tries and one-channel colours the twenty
    colour tries in some of 500 examples; lanes that Lemire would redraw go through numpy."""
    fields = dict(image_size=12, num_classes=8, num_objects=1, max_objects=4, channels=3,
                  noise=0.1, min_size=0.35, max_size=0.8, palette="random") | kw
    source = Shapes(**fields, length=10**6, seed=3, split="train")
    indices = np.arange(500)
    seed, salt = source._seed, source._salt
    per_example = source.make_batch(
        [np.random.default_rng([seed, salt, i]) for i in indices.tolist()], indices)
    integers = LaneDraws.integers

    def rejecting(self, high, size=1):
        out = integers(self, high, size)
        self.exact[[0, 17]] = False
        return out

    for patch in (False, True):
        if patch:
            monkeypatch.setattr(LaneDraws, "integers", rejecting)
        batch = source.make_batch(ExampleGenerators(seed, salt, indices), indices)
        for key, value in per_example.items():
            np.testing.assert_array_equal(batch[key], value, err_msg=key)
