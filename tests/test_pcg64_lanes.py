"""Many PCG64 generators as uint64 arrays give exactly numpy's SeedSequence, outputs and normals."""

import numpy as np
import pytest

from dl_arch.data.sources import pcg64_lanes
from dl_arch.data.sources.pcg64_lanes import PCG_MULT, Pcg64Lanes, ziggurat_tables
from dl_arch.data.sources.seeding import ExampleGenerators, raw_then_normal, seed_words

_MASK128 = (1 << 128) - 1


@pytest.mark.parametrize("words", [1, 3, 4, 6])
def test_seed_words_equal_seed_sequence(words):
    entropy = np.random.default_rng(words).integers(0, 2**32, (200, words), dtype=np.uint64)
    expected = np.stack([np.random.SeedSequence(row.tolist()).generate_state(4, np.uint64)
                         for row in entropy])
    np.testing.assert_array_equal(seed_words(entropy.astype(np.uint32)), expected)


def _reference(seed: int, salt: int, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt, i])


def test_lanes_raw_outputs_equal_random_raw():
    indices = np.concatenate([np.arange(300), [2**31 - 2, 2**32 - 1]])
    lanes = ExampleGenerators(5, 2**32 - 1, indices).lanes
    expected = np.stack([_reference(5, 2**32 - 1, i).bit_generator.random_raw(7)
                         for i in indices.tolist()])
    np.testing.assert_array_equal(lanes.raw(7), expected)


@pytest.mark.parametrize("raw_draws,loc,scale,normals", [(3, 0.0, 0.05, 2), (0, 1.5, 2.0, 4)])
def test_lanes_raw_then_normal_equal_numpy(raw_draws, loc, scale, normals):
    indices = np.arange(4000)
    raw, normal = ExampleGenerators(3, 77, indices).lanes.raw_then_normal(
        raw_draws, loc, scale, normals)
    slow = 0
    for j, i in enumerate(indices.tolist()):
        rng = _reference(3, 77, i)
        np.testing.assert_array_equal(raw[j], rng.bit_generator.random_raw(raw_draws))
        np.testing.assert_array_equal(normal[j], rng.normal(loc, scale, size=normals))
        fixed = _reference(3, 77, i).bit_generator
        fixed.advance(raw_draws + normals)
        slow += rng.bit_generator.state != fixed.state  # drew past the ziggurat's fast path
    assert slow > 20  # the slow path (numpy finishes those lanes) is exercised


def _lanes_outputting(outputs: list[int]) -> Pcg64Lanes:
    """Lanes with increment 1 whose next output is each of `outputs` (a state with high half
    0 outputs its low half unrotated)."""
    inverse = pow(PCG_MULT, -1, 1 << 128)
    return Pcg64Lanes.from_ints([((o - 1) * inverse) & _MASK128 for o in outputs],
                                [1] * len(outputs))


def test_normals_at_the_ziggurat_boundaries_equal_numpy():
    """Every layer, both signs, magnitudes at and beside its acceptance bound ki (layer 0 is
    the tail, layer 1 always leaves the fast path)."""
    ki, _ = ziggurat_tables()
    assert ki[1] == 0 and 0 < ki[0] < 2**52
    outputs = []
    for layer in range(256):
        bound = int(ki[layer])
        for magnitude in {0, 1, max(bound - 1, 0), min(bound, 2**52 - 1), 2**52 - 1}:
            for sign in (0, 1):
                outputs.append((magnitude << 9) | (sign << 8) | layer)
    lanes = _lanes_outputting(outputs)
    _, normal = lanes.raw_then_normal(0, 0.0, 1.0, 1)
    for j, generator in enumerate(lanes.generators()):
        state = generator.bit_generator.state
        assert generator.bit_generator.random_raw() == outputs[j]
        generator.bit_generator.state = state
        np.testing.assert_array_equal(normal[j], generator.normal(0.0, 1.0, size=1),
                                      err_msg=f"output {outputs[j]:#x}")


def test_lanes_are_used_only_where_they_match_numpy(monkeypatch):
    """The installed numpy passes the once-a-process check; a numpy that did not would get
    the same numbers from one generator at a time (the check is forced to fail here)."""
    assert pcg64_lanes.matches_numpy()
    indices = np.arange(200)
    fast = raw_then_normal(ExampleGenerators(1, 2, indices), 200, 3, 0.1, 2)
    called = []
    monkeypatch.setattr(Pcg64Lanes, "raw_then_normal", lambda *a: called.append(a))
    monkeypatch.setattr("dl_arch.data.sources.seeding.matches_numpy", lambda: False)
    slow = raw_then_normal(ExampleGenerators(1, 2, indices), 200, 3, 0.1, 2)
    assert not called
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lanes_advanced_by_their_own_steps_equal_numpy_advance():
    indices = np.arange(50)
    lanes = ExampleGenerators(8, 1, indices).lanes
    steps = np.random.default_rng(0).integers(0, 40, len(indices))
    for j, generator in enumerate(lanes.advanced(steps).generators()):
        expected = _reference(8, 1, j).bit_generator
        expected.advance(int(steps[j]))
        assert generator.bit_generator.state["state"] == expected.state["state"]
