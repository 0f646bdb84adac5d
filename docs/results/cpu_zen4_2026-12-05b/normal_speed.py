"""numpy's standard normals for a `lenet5_shapes` batch's noise (64 x 1024, float64): in one
call, a row at a time, in float32, and the cost of setting a PCG64's state 64 times.

    python docs/results/cpu_zen4_2026-12-05b/normal_speed.py
"""

import timeit

import numpy as np

generator = np.random.default_rng(0)
out = np.empty((64, 1024))
out32 = np.empty((64, 1024), np.float32)
STATE = {"bit_generator": "PCG64", "state": {"state": 12345, "inc": 7}, "has_uint32": 0,
         "uinteger": 0}


def one() -> None:
    generator.standard_normal(out=out)


def rows() -> None:
    for row in out:
        generator.standard_normal(out=row)


def f32() -> None:
    generator.standard_normal(out=out32, dtype=np.float32)


def setstate() -> None:
    for _ in range(len(out)):
        generator.bit_generator.state = STATE


for f in (one, rows, f32, setstate):
    print(f.__name__, min(timeit.repeat(f, number=200, repeat=5)) / 200 * 1e3, "ms")
