"""`bench_loop.core_bound`: the loop-to-bare ratio a host's cores allow."""

from __future__ import annotations

import pytest

from benchmarks import bench_loop
from benchmarks.bench_loop import LoopFigures, core_bound, fastest


def _loop(steps_per_sec: float, host_cpu: float) -> LoopFigures:
    return LoopFigures(steps_per_sec, input_wait=0.0, input_busy=0.0, host_cpu=host_cpu)


def test_core_bound_spreads_the_loops_cpu_a_step_over_every_core():
    # 100 steps/s on 2 busy cores: 20 ms of CPU a step, 10 ms on 2 cores, against a 5 ms
    # bare step: the cores allow half the bare rate
    assert core_bound(_loop(100.0, 2.0), bare=200.0, cores=2) == pytest.approx(0.5)
    # the same loop on 8 cores could run at the bare step's rate: the bound is 1
    assert core_bound(_loop(100.0, 2.0), bare=200.0, cores=8) == 1.0
    # a loop at the bound: 2 ms of CPU a step against a 1.2 ms bare step on 1 core
    assert core_bound(_loop(500.0, 1.0), bare=1.0 / 1.2e-3, cores=1) == pytest.approx(0.6)


def test_fastest_is_the_run_with_the_most_steps_per_sec_with_its_own_figures():
    runs = [LoopFigures(100.0, 0.1, 0.5, 1.0), LoopFigures(300.0, 0.3, 0.2, 1.8),
            LoopFigures(200.0, 0.2, 0.9, 1.2)]
    assert fastest(runs) == LoopFigures(300.0, 0.3, 0.2, 1.8)


def test_alternated_runs_set_each_way_up_before_each_of_its_runs(monkeypatch):
    """The ways take turns, round by round, each run made under its own set-up."""
    current, order = {"way": None}, []

    def fake_run(config):
        order.append(current["way"])
        return _loop(100.0 * len(order), 1.0)

    monkeypatch.setattr(bench_loop, "loop_run", fake_run)
    ways = {name: (lambda name=name: current.update(way=name)) for name in ("a", "b")}
    runs = bench_loop.alternated_runs(None, ways, rounds=3)
    assert order == ["a", "b"] * 3
    assert [f.steps_per_sec for f in runs["a"]] == [100.0, 300.0, 500.0]
    lines = bench_loop.ab_lines("title", runs, bare=400.0).splitlines()
    assert lines[0] == "title: bare step 400 steps/s"
    assert lines[1].startswith("  a 300 steps/s (0.75x bare)")
