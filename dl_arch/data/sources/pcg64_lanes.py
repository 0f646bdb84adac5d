"""numpy's PCG64 and its `normal` for many generators at once, as uint64 array arithmetic.

A procedural batch has one generator per example, and calling each one from Python costs
more than the draws. Here each generator is a lane of four uint64 arrays (its 128-bit state
and increment) and the k-th output of every lane is computed in one pass (the LCG's jump
ahead, `s_k = M^k s_0 + (M^(k-1) + ... + 1) inc`), so a batch costs a fixed number of numpy
operations however many examples it has. Outputs and normals are exactly numpy's (tested
against `np.random.Generator`): the normals take the ziggurat's fast path, whose tables are
read from the installed numpy once, and the few lanes that hit its slow path are finished
by numpy itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# PCG64's 128-bit LCG multiplier (numpy/random/src/pcg64/pcg64.h)
PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
_U = np.uint64
_LOW32 = _U(0xFFFFFFFF)
log = logging.getLogger("dl_arch")


def _split(value: int) -> tuple[np.uint64, np.uint64]:
    return _U(value >> 64), _U(value & _MASK64)


def mul_hi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The high 64 bits of the 128-bit products a * b (uint64, from 32-bit halves)."""
    a0, a1, b0, b1 = a & _LOW32, a >> _U(32), b & _LOW32, b >> _U(32)
    p00, p01, p10 = a0 * b0, a0 * b1, a1 * b0
    middle = (p00 >> _U(32)) + (p01 & _LOW32) + (p10 & _LOW32)
    return a1 * b1 + (p01 >> _U(32)) + (p10 >> _U(32)) + (middle >> _U(32))


def _mul128(a_hi, a_lo, b_hi, b_lo) -> tuple[np.ndarray, np.ndarray]:
    """(a * b) mod 2^128 of 128-bit numbers held as (high, low) uint64 halves."""
    return mul_hi(a_lo, b_lo) + a_hi * b_lo + a_lo * b_hi, a_lo * b_lo


def _add128(a_hi, a_lo, b_hi, b_lo) -> tuple[np.ndarray, np.ndarray]:
    """(a + b) mod 2^128 of (high, low) halves."""
    lo = a_lo + b_lo
    return a_hi + b_hi + (lo < a_lo).astype(_U), lo


def _output(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """PCG64's output of a stepped state: its halves xor-ed, rotated by the top 6 bits."""
    x, rotation = hi ^ lo, hi >> _U(58)
    return (x >> rotation) | (x << ((_U(64) - rotation) & _U(63)))


def _ints(hi: np.ndarray, lo: np.ndarray) -> list[int]:
    """128-bit Python ints from (high, low) uint64 halves."""
    return [h << 64 | w for h, w in zip(hi.tolist(), lo.tolist())]


def set_pcg64_state(bit_generator: np.random.PCG64, state: int, inc: int) -> None:
    """Sets a PCG64's 128-bit state and increment, with no buffered 32-bit half."""
    bit_generator.state = {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                           "has_uint32": 0, "uinteger": 0}


@functools.cache
def _jumps(count: int) -> tuple[np.ndarray, ...]:
    """(high, low) halves of M^k and of 1 + M + ... + M^(k-1), for k = 1..count: [1, count]."""
    mult, offset, out = 1, 0, []
    for _ in range(count):
        mult, offset = (mult * PCG_MULT) & _MASK128, (offset * PCG_MULT + 1) & _MASK128
        out.append((mult >> 64, mult & _MASK64, offset >> 64, offset & _MASK64))
    return tuple(np.array(column, _U)[None] for column in zip(*out))


@dataclass(frozen=True)
class Pcg64Lanes:
    """The (state, inc) of N PCG64 generators as uint64 [N] halves; immutable."""

    state_hi: np.ndarray
    state_lo: np.ndarray
    inc_hi: np.ndarray
    inc_lo: np.ndarray

    @classmethod
    def from_ints(cls, states: list[int], incs: list[int]) -> Pcg64Lanes:
        """Lanes of 128-bit Python ints, as `PCG64.state` holds them."""
        def halves(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
            return (np.array([v >> 64 for v in values], _U),
                    np.array([v & _MASK64 for v in values], _U))

        return cls(*halves(states), *halves(incs))

    @classmethod
    def from_seed_words(cls, words_N4: np.ndarray) -> Pcg64Lanes:
        """The generators `PCG64` seeds from `SeedSequence.generate_state(4, np.uint64)`
        words: state 0, one step, add the first two words, one step (its srandom)."""
        w0, w1, w2, w3 = (words_N4[:, i].astype(_U) for i in range(4))
        inc_hi, inc_lo = (w2 << _U(1)) | (w3 >> _U(63)), (w3 << _U(1)) | _U(1)
        with np.errstate(over="ignore"):
            s_hi, s_lo = _add128(inc_hi, inc_lo, w0, w1)
            s_hi, s_lo = _mul128(s_hi, s_lo, *_split(PCG_MULT))
            s_hi, s_lo = _add128(s_hi, s_lo, inc_hi, inc_lo)
        return cls(s_hi, s_lo, inc_hi, inc_lo)

    def states(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(high, low) halves of every lane's state after each of its next `count` steps:
        uint64 [N, count]."""
        m_hi, m_lo, c_hi, c_lo = _jumps(count)
        with np.errstate(over="ignore"):
            a = _mul128(self.state_hi[:, None], self.state_lo[:, None], m_hi, m_lo)
            b = _mul128(self.inc_hi[:, None], self.inc_lo[:, None], c_hi, c_lo)
            return _add128(*a, *b)

    def advanced(self, steps: np.ndarray) -> Pcg64Lanes:
        """Every lane after its own number of steps (int [N], >= 0)."""
        steps = np.asarray(steps, np.intp)
        if not int(steps.max(initial=0)):
            return self
        # column 0: no step (M^0 = 1, no increment), then _jumps' k = 1..max
        m_hi, m_lo, c_hi, c_lo = (np.concatenate([np.array([first], _U), column[0]])[steps]
                                  for first, column in zip((0, 1, 0, 0),
                                                           _jumps(int(steps.max()))))
        with np.errstate(over="ignore"):
            a = _mul128(self.state_hi, self.state_lo, m_hi, m_lo)
            b = _mul128(self.inc_hi, self.inc_lo, c_hi, c_lo)
            return Pcg64Lanes(*_add128(*a, *b), self.inc_hi, self.inc_lo)

    def generators(self, rows: np.ndarray | None = None) -> Iterator[np.random.Generator]:
        """Each lane (of `rows`, default all) as a numpy Generator at its state: one object
        set to each lane in turn, so use it before asking for the next."""
        rows = np.arange(len(self.state_hi)) if rows is None else np.asarray(rows)
        bit_generator = np.random.PCG64(0)
        generator = np.random.Generator(bit_generator)
        for state, inc in zip(_ints(self.state_hi[rows], self.state_lo[rows]),
                              _ints(self.inc_hi[rows], self.inc_lo[rows])):
            set_pcg64_state(bit_generator, state, inc)
            yield generator

    def raw(self, count: int) -> np.ndarray:
        """`bit_generator.random_raw(count)` of every lane: uint64 [N, count]."""
        return _output(*self.states(count))

    def raw_then_normal(self, raw_draws: int, loc: float, scale: float, normals: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Each lane's `random_raw(raw_draws)` then `normal(loc, scale, normals)`:
        (uint64 [N, raw_draws], float64 [N, normals]), exactly numpy's."""
        hi, lo = self.states(raw_draws + normals)
        raw = _output(hi, lo)
        r = raw[:, raw_draws:]
        # numpy's random_standard_normal: a 256-layer ziggurat on one 64-bit output; r holds
        # the layer (8 bits), the sign (1 bit) and a 52-bit magnitude
        ki, wi = ziggurat_tables()
        layer = (r & _U(0xFF)).astype(np.intp)
        magnitude = (r >> _U(9)) & _U((1 << 52) - 1)
        x = magnitude.astype(np.float64) * wi[layer]
        x = np.where((r >> _U(8)) & _U(1), -x, x)
        normal = loc + scale * x
        slow = np.flatnonzero(~(magnitude < ki[layer]).all(axis=1))
        if len(slow):  # these lanes left the fast path and drew more outputs: numpy ends them
            after_raw = (Pcg64Lanes(hi[:, raw_draws - 1], lo[:, raw_draws - 1], self.inc_hi,
                                    self.inc_lo) if raw_draws else self)
            for j, generator in zip(slow.tolist(), after_raw.generators(slow)):
                normal[j] = generator.normal(loc, scale, size=normals)
        return raw[:, :raw_draws], normal


@functools.cache
def ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    """numpy's standard-normal ziggurat tables (ki: uint64 [256], wi: float64 [256]), read
    from the installed numpy by feeding chosen outputs to `standard_normal`: an output is
    accepted on the fast path iff its magnitude < ki[layer], and magnitude 1 returns wi[layer].
    About 0.1 s, once per process."""
    inverse = pow(PCG_MULT, -1, 1 << 128)
    bit_generator = np.random.PCG64(0)
    generator = np.random.Generator(bit_generator)

    def fast(layer: int, magnitude: int) -> tuple[bool, float]:
        # a state whose next step has high half 0 and low half `output` outputs it unrotated
        output = (magnitude << 9) | layer
        before = ((output - 1) * inverse) & _MASK128  # one step back, with inc 1
        set_pcg64_state(bit_generator, before, 1)
        x = generator.standard_normal()
        return bit_generator.state["state"]["state"] == output, x  # one output used?

    ki, wi = np.zeros(256, _U), np.zeros(256)
    for layer in range(256):
        accepted_1, wi[layer] = fast(layer, 1)
        if not accepted_1:
            ki[layer], wi[layer] = int(fast(layer, 0)[0]), 0.0  # x is 0 if it accepts 0
            continue
        low, high = 1, 1 << 52  # accepted at low; high: first rejected (2^52: none is)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fast(layer, middle)[0] else (low, middle)
        ki[layer] = high
    return ki, wi


@functools.cache
def matches_numpy() -> bool:
    """Whether lanes give the installed numpy's outputs and normals, checked once a process
    on 512 generators; if not (a numpy that changed its streams), sources keep drawing one
    generator at a time, as numpy does, and a warning says so."""
    generators = [np.random.default_rng([20261203, i]) for i in range(512)]
    raw_states = [g.bit_generator.state["state"] for g in generators]
    lanes = Pcg64Lanes.from_ints([x["state"] for x in raw_states], [x["inc"] for x in raw_states])
    raw, normal = lanes.raw_then_normal(2, 0.5, 2.0, 3)
    same = all(np.array_equal(raw[j], g.bit_generator.random_raw(2))
               and np.array_equal(normal[j], g.normal(0.5, 2.0, size=3))
               for j, g in enumerate(generators))
    if not same:
        log.warning("numpy %s draws differently from dl_arch.data.sources.pcg64_lanes: "
                    "procedural sources draw one example at a time (slower, same data)",
                    np.__version__)
    return same
