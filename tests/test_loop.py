"""The loop end to end: learning, workdir files, resume, SIGTERM, NaN, corrupt or foreign
checkpoints."""

import json
import logging
import os
import shutil
import signal
import time

import chex
import numpy as np
import pytest

from dl_arch.config.errors import LossDiverged
from dl_arch.config.resolve import resolve_config
from dl_arch.testing import burn_cpu, launch_process, load_config
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.host_cpu import available_cores
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.run_config import config_changes
from dl_arch.train.writers import read_metrics


def test_mlp_solves_xor_and_perceptron_cannot(tmp_path):
    mlp = train_and_evaluate(load_config("configs/mlp_xor.py"), str(tmp_path / "mlp"))
    perceptron = train_and_evaluate(load_config("configs/perceptron_xor.py"),
                                    str(tmp_path / "perceptron"))
    assert mlp["eval/accuracy"] >= 0.99
    assert abs(perceptron["eval/accuracy"] - 0.5) < 0.12  # a line gets at most ~3/4 of XOR


def test_workdir_contents(tmp_path):
    config = load_config("configs/mlp_shapes.py:smoke")
    summary = train_and_evaluate(config, str(tmp_path))
    for name in ("config.json", "metrics.jsonl", "summary.json", "confusion_matrix.png",
                 "per_class_metrics.json"):
        assert (tmp_path / name).exists(), name
    assert os.listdir(tmp_path / "tensorboard")
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model"]["name"] == "mlp"
    # config.json is exactly the resolved config (what --print_config shows), every default in it
    assert written == json.loads(resolve_config(config).to_json_best_effort())
    rows = read_metrics(str(tmp_path))
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    for key in ("train/grad_norm", "train/learning_rate", "train/param_norm",
                "train/update_norm", "train/steps_per_sec", "train/input_wait", "train/input_busy",
                "train/host_cpu", "train/accuracy"):
        assert key in train_rows[-1], key
    assert all(0.0 <= r["train/input_wait"] <= 1.0 for r in train_rows)
    # a read's CPU time counts when it ends, so a row may hold one begun before its window
    assert all(0.0 <= r["train/input_busy"] <= 1.5 for r in train_rows)
    # the loop's own thread is busy for much of each row, and no more cores than there are
    assert all(0.1 < r["train/host_cpu"] <= available_cores() + 0.2 for r in train_rows)
    assert "eval/accuracy" in rows[-1] and "eval/macro_f1" in rows[-1]
    assert summary["completed"] and summary["num_params"] > 0 and summary["flops_per_step"] > 0
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20"]


def test_input_wait_is_the_share_of_the_loop_spent_waiting_for_batches(tmp_path, monkeypatch,
                                                                         caplog):
    """Each train row logs the share of the loop's wall time since the last row that it spent
    waiting for its next batch: near 1 when every batch takes far longer to make than the
    loop's own work (and the run says once what would help), near 0 when the loop's own work
    (here slowed by a sleep) is the longer. `input_busy`, the input thread's CPU time over
    the same window, is near 1 when making a batch burns CPU and near 0 when it sleeps."""
    from dl_arch.data import batch_iterator
    from dl_arch.data.sources.points import PointSet
    from dl_arch.train.progress import Progress

    # each batch made alone, so each pays the slowed `make_batch` (not a block of them)
    monkeypatch.setattr(batch_iterator, "BLOCK_BYTES", 0)

    def shares(name):
        config = load_config("configs/mlp_xor.py:smoke")
        config.update(num_train_steps=20, log_every_steps=5, steps_per_call=1, progress="none",
                      eval_every_steps=1000, checkpoint_every_steps=1000)
        train_and_evaluate(config, str(tmp_path / name))
        rows = [r for r in read_metrics(str(tmp_path / name)) if "train/input_wait" in r]
        return [r["train/input_wait"] for r in rows], [r["train/input_busy"] for r in rows]

    make_batch, update = PointSet.make_batch, Progress.update
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="dl_arch"):
        patch.setattr(PointSet, "make_batch",
                      lambda self, *a: (time.sleep(0.03), make_batch(self, *a))[1])
        slow_input, sleeping = shares("slow_input")
    starving = [r.getMessage() for r in caplog.records if "waited for its next batch" in r.getMessage()]
    assert len(starving) == 1 and "config.dataset.num_workers (now 0)" in starving[0]
    caplog.clear()
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="dl_arch"):
        patch.setattr(Progress, "update", lambda self, *a: (time.sleep(0.03), update(self, *a)))
        slow_loop, _ = shares("slow_loop")
    assert "waited for its next batch" not in caplog.text
    with monkeypatch.context() as patch:
        patch.setattr(PointSet, "make_batch", lambda self, *a: (burn_cpu(0.03), make_batch(self, *a))[1])
        _, burning = shares("burning_input")
    assert len(slow_input) == len(slow_loop) == len(burning) == 4
    # past the first row, whose window also holds the loop's start
    assert min(slow_input[1:]) > 0.8 and max(slow_loop[1:]) < 0.2, (slow_input, slow_loop)
    assert max(sleeping[1:]) < 0.2 and min(burning[1:]) > 0.6, (sleeping, burning)


def test_progress_lines_show_the_last_logged_input_wait(caplog):
    from dl_arch.train.progress import Progress

    progress = Progress(total=100, start=0, mode="log", log_every=10)
    with caplog.at_level(logging.INFO, logger="dl_arch"):
        progress.update(10, 0.5)
        progress.input_wait = 0.37
        progress.update(20, 0.25)
    first, second = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step")]
    assert "input wait" not in first and first.endswith("loss 0.5000")
    assert second.startswith("step 20/100") and second.endswith("loss 0.2500  input wait 37%")


def _params(workdir):
    return restore_raw_state(str(workdir))["params"]


def test_stop_and_resume_is_bit_identical(tmp_path):
    config = load_config("configs/mlp_xor.py:smoke")
    config.model.dropout = 0.1  # per-step randomness must resume too
    config.optimizer.decay_steps = 20  # the schedule must not depend on where we stop
    config.num_train_steps = 20
    train_and_evaluate(config, str(tmp_path / "straight"))
    config.num_train_steps = 8
    train_and_evaluate(config, str(tmp_path / "resumed"))
    config.num_train_steps = 20
    train_and_evaluate(config, str(tmp_path / "resumed"))
    chex.assert_trees_all_equal(_params(tmp_path / "straight"), _params(tmp_path / "resumed"))
    # a finished run is not run again
    summary = train_and_evaluate(config, str(tmp_path / "resumed"))
    assert summary["completed"]


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path, caplog):
    config = load_config("configs/mlp_xor.py:smoke")
    config.checkpoint_every_steps = 10
    train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints"), key=int) == ["10", "20"]
    state_dir = tmp_path / "checkpoints" / "20" / "state"
    for root, _, files in os.walk(state_dir):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    config.num_train_steps = 25
    with caplog.at_level("WARNING", logger="dl_arch"):
        summary = train_and_evaluate(config, str(tmp_path))
    assert "step 20" in caplog.text and "falling back to step 10" in caplog.text
    assert summary["completed"]


def test_checkpoint_of_another_model_is_an_error_and_leaves_the_workdir(tmp_path):
    config = load_config("configs/mlp_xor.py:smoke")
    config.checkpoint_every_steps = 10
    train_and_evaluate(config, str(tmp_path))
    written = (tmp_path / "config.json").read_text()
    wider = load_config("configs/mlp_xor.py:smoke")
    wider.model.width = 48
    wider.num_train_steps = 30
    with pytest.raises(ValueError, match=r"step 20 .* different model or optimiser .*"
                                         r"arrays differ, e\.g\. params/head/kernel"):
        train_and_evaluate(wider, str(tmp_path))
    # nothing set aside or rewritten: the first config resumes from its last step
    assert sorted(os.listdir(tmp_path / "checkpoints"), key=int) == ["10", "20"]
    assert not (tmp_path / "checkpoints.unreadable").exists()
    assert (tmp_path / "config.json").read_text() == written
    config.num_train_steps = 30
    assert train_and_evaluate(config, str(tmp_path))["completed"]
    assert "30" in os.listdir(tmp_path / "checkpoints")


def test_config_changes_lists_each_differing_leaf_by_dotted_path():
    old = {"seed": 0, "dataset": {"noise": 0.0, "name": "shapes"}, "model": {"width": 32}}
    new = {"seed": 0, "dataset": {"noise": 0.1, "name": "shapes", "palette": "light_on_dark"},
           "model": 8}
    assert config_changes(old, new) == [
        "dataset.noise: 0.0 -> 0.1",
        "dataset.palette: '<absent>' -> 'light_on_dark'",
        "model: {'width': 32} -> 8",
    ]
    assert config_changes(old, old) == []


def test_resume_with_a_changed_config_warns_of_each_changed_field(tmp_path, caplog):
    config = load_config("configs/mlp_xor.py:smoke")
    config.checkpoint_every_steps = 10
    config.num_train_steps = 10
    train_and_evaluate(config, str(tmp_path))
    old_noise = config.dataset.noise
    config.dataset.noise = old_noise + 0.1
    config.num_train_steps = 20  # continuing a run is not a change worth a warning
    with caplog.at_level("WARNING", logger="dl_arch"):
        assert train_and_evaluate(config, str(tmp_path))["completed"]
    assert "1 config field(s) changed" in caplog.text
    assert f"dataset.noise: {old_noise!r} -> {config.dataset.noise!r}" in caplog.text
    assert "num_train_steps" not in caplog.text
    # the resumed run's config is now the record
    written = (tmp_path / "config.json").read_text()
    assert json.loads(written)["dataset"]["noise"] == config.dataset.noise
    # a finished run is not rewritten by a differing config that trains nothing
    config.dataset.noise = old_noise
    assert train_and_evaluate(config, str(tmp_path))["completed"]
    assert (tmp_path / "config.json").read_text() == written


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    config = load_config("configs/mlp_xor.py:smoke")
    config.checkpoint_every_steps = 5
    config.optimizer.name = "sgd"
    config.optimizer.schedule = "constant"
    config.num_train_steps = 5
    train_and_evaluate(config, str(tmp_path))
    config.num_train_steps = 40
    config.optimizer.learning_rate = 1e30
    with pytest.raises(LossDiverged, match=r"loss=(nan|inf) at step \d+; last good checkpoint: 5"):
        train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["5"]


def test_the_host_runs_at_most_run_ahead_steps_before_the_device(tmp_path, monkeypatch):
    """A SIGTERM must not wait for a long queue of dispatched steps: the loop blocks on the
    ticket of step t - RUN_AHEAD before it dispatches step t + 1."""
    from dl_arch.train import loop as loop_lib
    from dl_arch.train.trainer import Trainer

    pending: list[int] = []
    real_loop_step = Trainer.loop_step

    def recording_loop_step(self, sharding=None):
        jitted = real_loop_step(self, sharding)
        tickets = []

        class Lowered:
            def __init__(self, lowered):
                self.lowered = lowered

            def compile(self):
                compiled = self.lowered.compile()

                def step(*args):
                    out = compiled(*args)
                    tickets.append(out[2])
                    pending.append(sum(not t.is_ready() for t in tickets))
                    return out
                return step

        class Traced:
            def __init__(self, traced):
                self.jaxpr = traced.jaxpr
                self.lower = lambda: Lowered(traced.lower())

        class Shim:
            def trace(self, *args):
                return Traced(jitted.trace(*args))
        return Shim()

    monkeypatch.setattr(Trainer, "loop_step", recording_loop_step)
    # steps slower than batches: without the bound, 20+ of the 24 steps would be pending
    config = load_config("configs/mlp_xor.py:smoke,width=512,depth=6")
    config.optimizer.learning_rate = 1e-4
    config.num_train_steps = 24
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 24
    config.steps_per_call = 1  # a call per step: 24 tickets
    train_and_evaluate(config, str(tmp_path))
    assert len(pending) == 24
    assert max(pending) <= loop_lib.RUN_AHEAD + 1, pending


def test_sigterm_saves_and_resume_matches_uninterrupted(tmp_path):
    steps = 300  # the signal comes at step 3 or soon after: far from the end, on a busy CPU too
    common = ["--config=configs/mlp_xor.py:smoke", f"--config.num_train_steps={steps}",
              "--config.checkpoint_every_steps=1000", "--config.eval_every_steps=1000",
              "--config.log_every_steps=1", "--config.progress=none"]
    proc = launch_process(common + [f"--workdir={tmp_path / 'killed'}"])
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "SIGTERM" in out
    saved = [int(s) for s in os.listdir(tmp_path / "killed" / "checkpoints")]
    assert len(saved) == 1 and 3 <= saved[0] < steps
    # the resumed and the uninterrupted runs need no signal: they run in this process
    config = load_config("configs/mlp_xor.py:smoke")
    config.update(num_train_steps=steps, checkpoint_every_steps=1000, eval_every_steps=1000,
                  log_every_steps=1, progress="none")
    for name in ("killed", "straight"):
        assert train_and_evaluate(config, str(tmp_path / name))["completed"]
    chex.assert_trees_all_equal(_params(tmp_path / "killed"), _params(tmp_path / "straight"))


def test_tfds_mock_data_through_the_real_code_path(tmp_path):
    import tensorflow_datasets as tfds

    config = load_config("configs/mlp_mnist.py:smoke")
    config.eval_batch_size = 8
    with tfds.testing.mock_data(num_examples=64):
        summary = train_and_evaluate(config, str(tmp_path))
    assert summary["completed"] and 0.0 <= summary["eval/accuracy"] <= 1.0
    rows = [r for r in read_metrics(str(tmp_path)) if "eval/loss" in r]
    assert np.isfinite(rows[-1]["eval/loss"])


def test_init_from_loads_matching_params_and_new_head(tmp_path, caplog):
    config = load_config("configs/mlp_shapes.py:smoke")
    train_and_evaluate(config, str(tmp_path / "pre"))
    pre = _params(tmp_path / "pre")
    config.model.num_classes = 6
    config.dataset.num_classes = 6
    config.init_from = str(tmp_path / "pre")
    config.num_train_steps = 1
    config.freeze = ("hidden_",)
    with caplog.at_level("INFO", logger="dl_arch"):
        train_and_evaluate(config, str(tmp_path / "fine"))
    fine = _params(tmp_path / "fine")
    chex.assert_trees_all_equal(fine["hidden_0"], pre["hidden_0"])
    assert fine["head"]["kernel"].shape == (256, 6)
    assert "skipped: head/kernel" in caplog.text


def test_rerun_after_copying_workdir_continues(tmp_path):
    """Checkpoints are self-contained: a copied workdir resumes where the original stopped."""
    config = load_config("configs/mlp_xor.py:smoke")
    config.num_train_steps = 10
    train_and_evaluate(config, str(tmp_path / "a"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    config.num_train_steps = 12
    summary = train_and_evaluate(config, str(tmp_path / "b"))
    assert summary["completed"]
    assert sorted(os.listdir(tmp_path / "b" / "checkpoints"), key=int)[-1] == "12"
