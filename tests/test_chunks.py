"""Chunks of steps in one call (`config.steps_per_call`): where they end, the batches they
stack, and a run that equals the one-step-per-call run row for row."""

import json
import os
import subprocess
import sys
import textwrap

import grain
import ml_collections
import numpy as np
import pytest

from dl_arch.data.prefetch import Prefetcher
from dl_arch.testing import load_config
from dl_arch.train.chunks import ChunkedBatches, chunk_lengths, chunking_note, next_action
from dl_arch.train.loop import TIMING_METRICS, train_and_evaluate


def acts_at(step, config):
    """Whether the loop reads metrics, evaluates or saves after `step` (written out here,
    independently of `next_action`)."""
    return (step % config.log_every_steps == 0 or step % config.eval_every_steps == 0
            or step % config.checkpoint_every_steps == 0 or step == config.num_train_steps)


def _schedule(k, steps=100, log=10, evaluate=25, save=30):
    return ml_collections.ConfigDict(dict(
        steps_per_call=k, num_train_steps=steps, log_every_steps=log,
        eval_every_steps=evaluate, checkpoint_every_steps=save))


@pytest.mark.parametrize("k", [1, 3, 8, 16, 200])
def test_chunks_cover_the_run_and_end_at_every_step_where_the_host_acts(k):
    config = _schedule(k)
    lengths = list(chunk_lengths(0, config))
    ends = np.cumsum(lengths)
    assert ends[-1] == 100 and max(lengths) <= k
    acting = [s for s in range(1, 101) if acts_at(s, config)]
    assert set(acting) <= set(ends.tolist())  # logging, eval, checkpoints, the end
    # a chunk shorter than k ends where the host acts, and no chunk passes such a step
    starts = np.concatenate([[0], ends[:-1]])
    for start, end, length in zip(starts.tolist(), ends.tolist(), lengths, strict=True):
        assert not any(start < s < end for s in acting)
        if length < k:
            assert end in acting
    if k == 1:
        assert lengths == [1] * 100
    if k >= 10:  # 10-step logging (a 5-step gap before 25 and after it, to 30 and 40, ...)
        assert lengths[:6] == [10, 10, 5, 5, 10, 10]
    if k == 3:  # three chunks of 3, then one step up to each log step
        assert lengths[:8] == [3, 3, 3, 1, 3, 3, 3, 1]
    if k == 8:  # a chunk of 8, then the 2 steps left up to each log step
        assert lengths[:4] == [8, 2, 8, 2]
    assert all(next_action(s, config) == min(a for a in acting if a > s) for s in range(100))
    # resuming at any chunk end continues with the uninterrupted run's chunks
    for i, s in enumerate(starts.tolist()):
        assert list(chunk_lengths(s, config)) == lengths[i:]


def test_a_resume_from_another_chunking_continues_from_its_step():
    config = _schedule(8, steps=40, log=40, evaluate=40, save=40)
    assert list(chunk_lengths(5, config)) == [8, 8, 8, 8, 3]  # saved at 5 by another k


def test_chunked_batches_stack_each_chunk_and_keep_the_wrapped_state():
    ds = grain.MapDataset.range(20).map(lambda i: {"x": np.full((2, 3), i), "y": {"z": i}})
    inner = iter(ds.to_iter_dataset())
    chunks = ChunkedBatches(inner, iter([1, 3, 2]))
    length, batch = next(chunks)
    assert length == 1 and batch["x"].shape == (2, 3) and int(batch["y"]["z"]) == 0
    length, batch = next(chunks)
    assert length == 3 and batch["x"].shape == (3, 2, 3)
    np.testing.assert_array_equal(batch["y"]["z"], [1, 2, 3])
    np.testing.assert_array_equal(batch["x"][:, 0, 0], [1, 2, 3])
    assert chunks.get_state() == inner.get_state() == {"next_index": 4}
    next(chunks)
    with pytest.raises(StopIteration):
        next(chunks)


def test_wrappers_close_a_wrapped_generator_and_exit_quietly_when_left_unclosed():
    """ChunkedBatches and Prefetcher close what grain does not (a generator) on close(), and
    one left unclosed does not raise at interpreter exit, when `grain` is already None."""
    closed = []

    def numbers():
        try:
            yield from ({"x": np.int32(i)} for i in range(10))
        finally:
            closed.append(True)

    for wrap in (lambda it: ChunkedBatches(it, iter([1, 2])), Prefetcher):
        wrapper = wrap(numbers())
        next(wrapper)
        wrapper.close()
    assert closed == [True, True]
    script = textwrap.dedent("""
        from dl_arch.data.prefetch import Prefetcher
        from dl_arch.train.chunks import ChunkedBatches
        chunks = ChunkedBatches(({"x": i} for i in range(9)), iter([1, 2, 3]))
        next(chunks)
        ahead = Prefetcher(({"x": i} for i in range(9)))
        next(ahead)
        print("done")
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
                       timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "done", p.stderr
    assert "Exception ignored" not in p.stderr and "Error" not in p.stderr, p.stderr


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_METRICS}
                for line in f]


def test_a_chunked_run_logs_the_rows_of_one_step_per_call(tmp_path):
    """Chunks of 4 (and shorter ones up to logging, eval and checkpoint steps) give the
    steps, metrics and evaluations of the run that calls one step at a time, with the
    batches read together in this process or one by one from a grain worker."""
    rows = {}
    for k, workers in ((1, 0), (4, 0), (4, 1)):
        config = load_config("configs/mlp_xor.py")
        config.update(dict(num_train_steps=46, log_every_steps=10, eval_every_steps=23,
                           checkpoint_every_steps=15, progress="none", steps_per_call=k,
                           evaluators=()))
        config.dataset.num_workers = workers
        workdir = tmp_path / f"{k}_{workers}"
        summary = train_and_evaluate(config, str(workdir))
        assert summary["completed"]
        rows[k, workers] = _rows(workdir)
        steps = sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())
        assert steps[-1] == 46
    for chunked in ((4, 0), (4, 1)):
        assert [r["step"] for r in rows[chunked]] == [r["step"] for r in rows[1, 0]]
        for a, b in zip(rows[chunked], rows[1, 0], strict=True):
            assert sorted(a) == sorted(b)
            np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)],
                                       rtol=1e-6, atol=1e-7)


def test_more_steps_per_call_than_an_interval_is_said_in_one_line():
    assert chunking_note(_schedule(4)) is None and chunking_note(_schedule(1, log=1)) is None
    assert chunking_note(_schedule(12)) == (
        "config.steps_per_call=12 is more than config.log_every_steps=10: a call runs at "
        "most 10 steps, since chunks end where the host acts")
    assert set(chunk_lengths(0, _schedule(12))) == {5, 10}
