"""The device prefetcher: order, bounds, errors, closing, and the consumed-batch state."""

import threading
import time
import traceback

import grain
import ml_collections
import numpy as np
import pytest
from etils import epath

from dl_arch.data.pipeline import train_dataset
from dl_arch.data.prefetch import Prefetcher
from dl_arch.testing import burn_cpu
from dl_arch.train import mesh as mesh_lib


def _stream(c=None, batch=4):
    c = c or ml_collections.ConfigDict({"name": "xor", "num_train_examples": 20})
    return iter(train_dataset(c, 0, batch, lambda ex, rng, train: ex))


class _Counting:
    """An iterator over 0..n-1 that counts how far it has been read."""

    def __init__(self, n):
        self.n, self.read = n, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.read >= self.n:
            raise StopIteration
        self.read += 1
        return self.read - 1


def test_every_batch_arrives_once_and_in_order():
    rng = np.random.default_rng(0)
    delays = rng.uniform(0, 0.002, 200)

    def place(i):
        time.sleep(delays[i])  # uneven placing times
        return i * 10

    got = list(Prefetcher(iter(range(200)), place, size=3))
    assert got == [i * 10 for i in range(200)]


def test_busy_seconds_count_the_cpu_of_reading_and_placing_not_sleeps_or_a_full_queue():
    def burning_place(i):
        burn_cpu(0.01)
        return i

    prefetcher = Prefetcher(iter(range(10)), burning_place, size=2)
    assert prefetcher.busy_seconds == 0.0
    assert list(prefetcher) == list(range(10))
    assert 0.1 <= prefetcher.busy_seconds < 0.2, prefetcher.busy_seconds
    sleeping = Prefetcher(iter(range(10)), lambda i: (time.sleep(0.01), i)[1], size=2)
    assert list(sleeping) == list(range(10)) and sleeping.busy_seconds < 0.02
    full = Prefetcher(iter(range(100)), size=2)
    next(full)
    time.sleep(0.2)  # the thread waits on the full queue
    assert full.busy_seconds < 0.02, full.busy_seconds
    full.close()


def test_read_ahead_is_bounded_by_the_queue_size():
    source = _Counting(100)
    prefetcher = Prefetcher(source, size=3)
    for consumed in range(1, 6):
        next(prefetcher)
        time.sleep(0.05)  # let the thread run as far as it may
        assert consumed < source.read <= consumed + 3 + 1  # the queue plus one in hand
    prefetcher.close()


def _settled(source, reads, timeout=10.0):
    """Waits until `source` has been read `reads` times (the thread then waits on a full
    queue); whether it got there."""
    deadline = time.monotonic() + timeout
    while source.read != reads and time.monotonic() < deadline:
        time.sleep(0.005)
    return source.read == reads


def test_a_full_queue_is_refilled_once_half_of_it_is_left():
    source = _Counting(100)
    prefetcher = Prefetcher(source, size=8)
    prefetcher.start_prefetch()
    assert _settled(source, 8 + 1)  # a full queue, one in hand
    assert [next(prefetcher) for _ in range(3)] == [0, 1, 2]  # 5 left: the thread waits on
    time.sleep(0.2)
    assert source.read == 9
    assert next(prefetcher) == 3  # 4 left: it resumes and fills the queue again
    assert _settled(source, 4 + 8 + 1)
    assert [next(prefetcher) for _ in range(20)] == list(range(4, 24))
    prefetcher.close()


def test_nothing_is_read_before_the_first_batch_is_asked_for():
    source = _Counting(10)
    prefetcher = Prefetcher(source, size=2)
    time.sleep(0.05)
    assert source.read == 0
    assert next(prefetcher) == 0
    prefetcher.close()


def _failing_reader():
    yield 0
    yield 1
    raise KeyError("bad record 2")


def test_reader_errors_reach_the_consumer_with_their_traceback():
    prefetcher = Prefetcher(_failing_reader(), size=2)
    assert [next(prefetcher), next(prefetcher)] == [0, 1]
    with pytest.raises(KeyError, match="bad record 2") as info:
        next(prefetcher)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "_failing_reader" in frames
    with pytest.raises(KeyError):  # and again, not a silent end
        next(prefetcher)


def test_placing_errors_reach_the_consumer():
    def place(i):
        if i == 3:
            raise ValueError("cannot place batch 3")
        return i

    prefetcher = Prefetcher(iter(range(10)), place)
    assert [next(prefetcher) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="cannot place batch 3"):
        next(prefetcher)


def test_the_end_of_a_finite_iterator_is_stop_iteration():
    prefetcher = Prefetcher(iter(range(3)), size=5)
    assert list(prefetcher) == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(prefetcher)


def test_close_stops_the_thread_even_when_the_queue_is_full():
    prefetcher = Prefetcher(iter(range(1000)), size=1)
    next(prefetcher)
    time.sleep(0.05)  # the thread now waits on the full queue
    thread = prefetcher._thread
    prefetcher.close()
    prefetcher.close()  # idempotent
    assert not thread.is_alive()
    with pytest.raises(ValueError, match="closed"):
        next(prefetcher)
    assert not [t for t in threading.enumerate() if t is thread]


def test_state_is_that_of_the_last_consumed_batch():
    plain = _stream()
    expected = [next(plain)["inputs"] for _ in range(12)]
    for n in (0, 1, 5):
        prefetcher = Prefetcher(_stream(), size=3)
        got = [next(prefetcher)["inputs"] for _ in range(n)]
        time.sleep(0.05)  # the thread has read ahead by now
        state = prefetcher.get_state()
        resumed = _stream()
        resumed.set_state(state)
        for i in range(n, 12):
            np.testing.assert_array_equal(next(resumed)["inputs"], expected[i])
        for i in range(n):
            np.testing.assert_array_equal(got[i], expected[i])
        prefetcher.close()


def test_set_state_drops_the_read_ahead_and_repositions():
    plain = _stream()
    expected = [next(plain)["inputs"] for _ in range(8)]
    prefetcher = Prefetcher(_stream(), size=2)
    for _ in range(2):
        next(prefetcher)
    state = prefetcher.get_state()
    for _ in range(4):
        next(prefetcher)
    prefetcher.set_state(state)
    for i in range(2, 8):
        np.testing.assert_array_equal(next(prefetcher)["inputs"], expected[i])
    prefetcher.close()


def test_grain_checkpoints_save_and_restore_the_prefetcher(tmp_path):
    """The loop saves the prefetcher itself with grain's handler and restores into a new one."""
    mesh = mesh_lib.make_mesh()
    place = lambda b: mesh_lib.to_step_input(b, mesh)  # noqa: E731 - what the loop passes
    plain = _stream()
    expected = [next(plain)["inputs"] for _ in range(10)]
    first = Prefetcher(_stream(), place, size=3)
    for _ in range(4):
        next(first)
    handler = grain.checkpoint.CheckpointHandler()
    handler.save(epath.Path(tmp_path), args=grain.checkpoint.CheckpointSave(first))
    first.close()
    second = Prefetcher(_stream(), place, size=3)
    handler.restore(epath.Path(tmp_path), args=grain.checkpoint.CheckpointRestore(second))
    for i in range(4, 10):
        np.testing.assert_array_equal(np.asarray(next(second)["inputs"]), expected[i])
    second.close()


def test_state_with_worker_processes_resumes_after_the_consumed_batch():
    c = ml_collections.ConfigDict({"name": "shapes", "image_size": 16, "num_workers": 1})
    plain = _stream(ml_collections.ConfigDict({"name": "shapes", "image_size": 16}))
    expected = [next(plain)["image"] for _ in range(7)]
    prefetcher = Prefetcher(_stream(c), size=3)
    got = [next(prefetcher)["image"] for _ in range(3)]
    time.sleep(0.2)
    state = prefetcher.get_state()
    prefetcher.close()
    resumed = _stream(c)
    resumed.set_state(state)
    got += [next(resumed)["image"] for _ in range(4)]
    resumed.close()
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_process_placement_equals_assembling_from_process_local_parts():
    """`to_global`'s one-`device_put` path gives the arrays, dtypes and sharding that
    `make_array_from_process_local_data` (the multi-process path) gives; strings are dropped."""
    import jax

    mesh = mesh_lib.make_mesh()
    local = {"image": np.arange(24, dtype=np.float32).reshape(4, 3, 2),
             "label": np.arange(4, dtype=np.int32), "text": np.array(["a", "b", "c", "d"])}
    placed = mesh_lib.to_global(local, mesh)
    assert set(placed) == {"image", "label"}
    sharding = mesh_lib.batch_sharding(mesh)
    for k, v in placed.items():
        reference = jax.make_array_from_process_local_data(sharding, local[k])
        assert v.sharding == reference.sharding and v.dtype == reference.dtype
        np.testing.assert_array_equal(np.asarray(v), np.asarray(reference))


def test_on_one_cpu_device_the_step_takes_host_arrays_with_the_same_result():
    """`to_step_input` leaves a batch in host arrays on one CPU device (strings dropped);
    the loop's compiled step gives bit for bit the same state from them as from the placed
    batch."""
    import jax

    from dl_arch.testing import load_config
    from dl_arch.train import metric_window
    from dl_arch.train.trainer import Trainer

    trainer = Trainer(load_config("configs/mlp_xor.py:smoke"))
    local = next(iter(trainer.train_dataset()))
    local["text"] = np.array(["a"] * len(local["label"]))
    host = mesh_lib.to_step_input(local, trainer.mesh)
    assert set(host) == {"inputs", "label"}
    assert all(type(v) is np.ndarray for v in host.values())
    placed = mesh_lib.to_global(local, trainer.mesh)
    state = trainer.init_state(placed)
    window = metric_window.fresh(trainer.metric_shapes(state, placed))
    step = trainer.loop_step().lower(state, placed, window).compile()
    copy = lambda tree: jax.tree_util.tree_map(np.array, tree)  # noqa: E731 - donated
    from_host, from_placed = step(copy(state), host, window), step(copy(state), placed, window)
    for a, b in zip(jax.tree_util.tree_leaves(from_host), jax.tree_util.tree_leaves(from_placed),
                    strict=True):
        np.testing.assert_array_equal(a, b)
