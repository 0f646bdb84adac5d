"""The resume contract of the training loop: which checkpoint failures fall back and which stop,
one writer per workdir, metrics that hold each step once and equal an uninterrupted run's,
divergence, an unwritable or full checkpoint directory, SIGTERM before the first step."""

import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import orbax.checkpoint as ocp
import pytest

from dl_arch.config.errors import ConfigError, LossDiverged
from dl_arch.data.pipeline import train_dataset
from dl_arch.testing import launch_process, load_config
from dl_arch.train import checkpoints as checkpoints_lib
from dl_arch.train import loop
from dl_arch.train import mesh as mesh_lib
from dl_arch.train import trainer as trainer_lib
from dl_arch.train.checkpoints import Checkpointer, corruption_reason, restore_raw_state
from dl_arch.train.trainer import Trainer
from dl_arch.train.workdir_lock import WorkdirLock
from dl_arch.train.writers import read_metrics, truncate_metrics

XOR = "configs/mlp_xor.py:smoke"


def _config(**fields):
    config = load_config(XOR)
    for key, value in fields.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 20-step run with checkpoints at steps 10 and 20 (copied by each test)."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    loop.train_and_evaluate(_config(checkpoint_every_steps=10), str(workdir))
    assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["10", "20"]
    assert not (workdir / ".lock").exists()  # released on exit
    # config.json is the resolved config: declared defaults nobody set are in it
    assert json.loads((workdir / "config.json").read_text())["divergence_factor"] == 1e4
    return workdir


@pytest.fixture
def workdir(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def _snapshot(workdir, skip=()):
    """relative path -> sha1 of every file under workdir (what 'untouched' means)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(workdir, "**"), recursive=True)):
        rel = os.path.relpath(path, workdir)
        if os.path.isfile(path) and rel not in skip:
            with open(path, "rb") as f:
                out[rel] = hashlib.sha1(f.read()).hexdigest()
    return out


def _corrupt(step_dir, kind):
    state = os.path.join(step_dir, "state")
    if kind == "emptied_state":
        shutil.rmtree(state)
        os.makedirs(state)
    elif kind == "deleted_metadata":
        os.remove(os.path.join(state, "_METADATA"))
    elif kind == "truncated_arrays":
        for f in glob.glob(os.path.join(state, "**", "d", "*"), recursive=True):
            with open(f, "r+b") as fh:
                fh.truncate(os.path.getsize(f) // 2)
    else:
        raise AssertionError(kind)


def _abstract_state_and_iterator(config):
    """The abstract TrainState of a config and a fresh data iterator (no compile needed)."""
    trainer = Trainer(config)
    ds = trainer.train_dataset()
    batch = mesh_lib.to_global(next(iter(ds)), trainer.mesh)
    return trainer.abstract_state(batch), iter(ds)


# --- restore policy -----------------------------------------------------------------------

@pytest.mark.parametrize("kind, reason", [
    ("emptied_state", "state/_METADATA is missing"),
    ("deleted_metadata", "state/_METADATA is missing"),
    ("truncated_arrays", "OUT_OF_RANGE"),
])
def test_corrupt_newest_step_falls_back_to_the_older_one(workdir, kind, reason, caplog):
    _corrupt(workdir / "checkpoints" / "20", kind)
    abstract, data_iter = _abstract_state_and_iterator(_config())
    ckpt = Checkpointer(str(workdir))
    with caplog.at_level("WARNING", logger="dl_arch"):
        state, step, loop_state = ckpt.restore(abstract, data_iter)
    ckpt.close()
    assert step == 10 and int(state.step) == 10 and "averager" in loop_state
    assert "step 20" in caplog.text and "incomplete or corrupt" in caplog.text
    assert reason in caplog.text and "falling back to step 10" in caplog.text
    assert "different model" not in caplog.text
    # kept for inspection, out of the way of the step that will be saved again
    assert os.listdir(workdir / "checkpoints.unreadable")[0].startswith("20-")


def test_corruption_is_told_apart_from_other_errors():
    def chained(outer, inner):
        try:
            try:
                raise inner
            except Exception as e:
                raise outer from e
        except Exception as e:
            return e

    assert corruption_reason(FileNotFoundError("no _METADATA"))
    assert corruption_reason(ValueError("DATA_LOSS: Error decoding b-tree node"))
    assert corruption_reason(json.JSONDecodeError("Expecting value", "", 0))
    assert corruption_reason(KeyError('Item "data" was not found in the checkpoint.'))
    assert corruption_reason(chained(RuntimeError("restore failed"), FileNotFoundError("x")))
    assert corruption_reason(RuntimeError("boom")) is None
    assert corruption_reason(PermissionError(errno.EACCES, "Permission denied")) is None
    assert corruption_reason(ValueError("PERMISSION_DENIED: cannot open")) is None
    assert corruption_reason(ValueError("RESOURCE_EXHAUSTED: Out of memory")) is None
    assert corruption_reason(KeyError("hidden_0")) is None


def test_all_steps_unreadable_stops_and_moves_nothing(workdir):
    for step in ("10", "20"):
        _corrupt(workdir / "checkpoints" / step, "truncated_arrays")
    before = _snapshot(workdir)
    with pytest.raises(ConfigError) as info:
        loop.train_and_evaluate(_config(num_train_steps=30), str(workdir))
    message = str(info.value)
    assert "\n" not in message
    assert "none of the 2 checkpoints" in message and "step 20: OUT_OF_RANGE" in message
    assert "step 10: OUT_OF_RANGE" in message
    assert "new --workdir" in message and f"mv {workdir / 'checkpoints'}" in message
    assert _snapshot(workdir) == before  # nothing moved aside, no fresh step 0
    assert not (workdir / "checkpoints.unreadable").exists()


def test_a_non_corruption_error_stops_the_run(workdir, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ocp.CheckpointManager, "restore", boom)
    before = _snapshot(workdir)
    with pytest.raises(RuntimeError, match="boom"):
        loop.train_and_evaluate(_config(num_train_steps=30), str(workdir))
    assert _snapshot(workdir) == before
    assert not (workdir / "checkpoints.unreadable").exists()


# --- one writer per workdir ---------------------------------------------------------------



def test_a_second_process_on_a_locked_workdir_fails_in_one_line(workdir):
    before = _snapshot(workdir)
    with WorkdirLock(str(workdir)):  # this test process plays the run in progress
        held = (workdir / ".lock").read_text()
        proc = launch_process([f"--config={XOR}", f"--workdir={workdir}", "--config.num_train_steps=40"])
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 2, out
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in out, out
        assert f"host {socket.gethostname()}, pid {os.getpid()}" in errors[0]
        assert str(workdir) in errors[0]
        assert (workdir / ".lock").read_text() == held
    assert _snapshot(workdir) == before
    assert not (workdir / ".lock").exists()


def test_lock_is_exclusive_and_a_stale_one_is_taken_over(tmp_path, caplog):
    with WorkdirLock(str(tmp_path)):
        with pytest.raises(ConfigError, match=rf"in use by another run \(host "
                                              rf"{socket.gethostname()}, pid {os.getpid()}\)"):
            WorkdirLock(str(tmp_path)).acquire()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(f"{socket.gethostname()} {dead.pid} 2024-01-01T00:00:00\n")
    with caplog.at_level("WARNING", logger="dl_arch"):
        with WorkdirLock(str(tmp_path)):
            assert (tmp_path / ".lock").read_text().split()[:2] == [socket.gethostname(),
                                                                    str(os.getpid())]
    assert f"stale lock {tmp_path / '.lock'} left by host {socket.gethostname()} pid {dead.pid}" \
        in caplog.text
    assert "no longer running" in caplog.text
    assert not (tmp_path / ".lock").exists()
    WorkdirLock(str(tmp_path), active=False).acquire()  # processes > 0 of a multi-host run
    assert not (tmp_path / ".lock").exists()


# --- metrics after kill -9 ----------------------------------------------------------------

def test_truncate_metrics_keeps_rows_up_to_the_step(tmp_path):
    rows = [{"step": 4, "train/loss": 1.0}, {"step": 6, "eval/loss": 2.0},
            {"step": 8, "train/loss": 0.5}, {"step": 6, "train/loss": 0.7}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                            + '{"step": 9, "tra')  # torn by a kill
    assert truncate_metrics(str(tmp_path), 6) == 2
    assert read_metrics(str(tmp_path)) == [rows[0], rows[1], rows[3]]
    assert truncate_metrics(str(tmp_path), 6, drop_eval_at_step=True) == 1  # a final eval again
    assert read_metrics(str(tmp_path)) == [rows[0], rows[3]]


def _steps_of_each_kind(rows):
    return [(r["step"], "eval" if any(k.startswith("eval/") for k in r) else "train") for r in rows]


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in loop.TIMING_METRICS} for r in rows]


def test_kill_9_then_resume_logs_each_step_once_and_equals_an_uninterrupted_run(tmp_path,
                                                                                caplog):
    # killed past the first eval (step 25) and a few checkpoints, well before step 60; the
    # resumed run then evaluates at 50 and at the end
    # two steps a call: chunks of 2 and of 1 (up to a checkpoint at an odd step)
    fields = dict(num_train_steps=60, log_every_steps=4, checkpoint_every_steps=3,
                  eval_every_steps=25, progress="none", steps_per_call=2)
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    first = launch_process([f"--config={XOR}", f"--workdir={killed}"]
                           + [f"--config.{k}={v}" for k, v in fields.items()])
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None and (
            not metrics.exists() or len(metrics.read_text().splitlines()) < 8):
        time.sleep(0.05)
    first.kill()  # SIGKILL: no handler, no cleanup, a save may be in flight
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    steps = sorted(int(s) for s in os.listdir(killed / "checkpoints") if s.isdigit())
    logged = max(r["step"] for r in read_metrics(str(killed)))
    assert steps and logged > steps[-1], (steps, logged)  # rows past the checkpoint exist
    assert (killed / ".lock").exists()  # left behind by the kill
    # the resumed and the uninterrupted runs need no signal: they run in this process
    config = load_config(XOR)
    config.update(fields)
    with caplog.at_level("INFO"):
        loop.train_and_evaluate(config, str(killed))
    resumed = caplog.text
    loop.train_and_evaluate(config, str(straight))
    assert "taking over the stale lock" in resumed
    assert f"resumed from checkpoint step {steps[-1]}" in resumed
    rows, reference = read_metrics(str(killed)), read_metrics(str(straight))
    kinds = _steps_of_each_kind(rows)
    assert len(kinds) == len(set(kinds)), kinds  # each step once
    assert kinds == _steps_of_each_kind(reference)
    assert _comparable(rows) == _comparable(reference)  # the same values, row for row


# --- divergence ---------------------------------------------------------------------------

@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_a_finite_but_exploding_loss_stops_the_run_with_its_step(tmp_path, steps_per_call):
    steps = {}
    for k in sorted({1, steps_per_call}):
        config = _config(steps_per_call=k)
        config.optimizer.name = "adam"
        config.optimizer.learning_rate = 1e6
        with pytest.raises(LossDiverged, match=r"loss=\S+ at step (\d+) is more than "
                                               r"config\.divergence_factor=10000 times its "
                                               r"first value .*last good checkpoint: none"
                           ) as info:
            loop.train_and_evaluate(config, str(tmp_path / str(k)))
        assert "\n" not in str(info.value)
        assert str(info.value).startswith("loss=") and info.value.dl_arch_step >= 1
        assert f"at step {info.value.dl_arch_step} " in str(info.value)
        steps[k] = info.value.dl_arch_step
    assert steps[steps_per_call] == steps[1]  # inside a chunk: the very step, not its end


# --- the filesystem -----------------------------------------------------------------------

class _ReadOnly:
    """Makes a directory unwritable: chmod as a user; as root (which chmod does not stop) the
    immutable attribute (chattr +i); where that is unavailable, a patched `open` in the
    checkpoint module that fails as a read-only directory would (said in `how`)."""

    def __init__(self, path, monkeypatch):
        self.path, self.monkeypatch, self.how = str(path), monkeypatch, None

    def on(self):
        if os.geteuid() != 0:
            os.chmod(self.path, 0o555)
            self.how = "chmod"
        elif shutil.which("chattr") and subprocess.run(
                ["chattr", "+i", self.path], capture_output=True).returncode == 0:
            self.how = "chattr"
        else:
            real_open = open

            def unwritable(file, mode="r", *args, **kwargs):
                if str(file).startswith(self.path) and any(c in mode for c in "wax+"):
                    raise PermissionError(errno.EACCES, "Permission denied", str(file))
                return real_open(file, mode, *args, **kwargs)

            self.monkeypatch.setattr(checkpoints_lib, "open", unwritable, raising=False)
            self.how = "patched open"

    def off(self):
        if self.how == "chmod":
            os.chmod(self.path, 0o755)
        elif self.how == "chattr":
            subprocess.run(["chattr", "-i", self.path], check=True)
        elif self.how == "patched open":
            self.monkeypatch.delattr(checkpoints_lib, "open")
        self.how = None


@pytest.fixture
def read_only(monkeypatch):
    made = []

    def make(path):
        made.append(_ReadOnly(path, monkeypatch))
        return made[-1]

    yield make
    for r in made:
        r.off()


def test_a_read_only_checkpoint_directory_fails_within_seconds_in_one_line(workdir, read_only):
    before = _snapshot(workdir)
    read_only(workdir / "checkpoints").on()
    t0 = time.time()
    with pytest.raises(ConfigError) as info:
        loop.train_and_evaluate(_config(num_train_steps=30), str(workdir))
    assert time.time() - t0 < 60  # orbax used to wait 300 s, then raise a TimeoutError
    message = str(info.value)
    assert "\n" not in message
    assert f"checkpoint directory {workdir / 'checkpoints'} cannot be written" in message
    assert _snapshot(workdir) == before


def test_checkpoints_in_place_of_a_file_fail_in_one_line(tmp_path):
    (tmp_path / "checkpoints").write_text("not a directory")
    with pytest.raises(ConfigError, match=rf"checkpoint directory {tmp_path / 'checkpoints'} is a "
                                          rf"file, not a directory"):
        loop.train_and_evaluate(_config(), str(tmp_path))


@pytest.mark.parametrize("failure", ["read_only", "disk_full"])
def test_a_save_that_cannot_write_fails_in_one_line_and_keeps_earlier_checkpoints(
        tmp_path, monkeypatch, read_only, failure):
    """The directory turns read-only, or the disk fills, after the first checkpoint (step 5)."""
    original_save = Checkpointer.save
    ro = read_only(tmp_path / "checkpoints")

    def save(self, step, *args, **kwargs):
        if step == 10:
            if failure == "read_only":
                self.wait()
                ro.on()
            else:
                def full(*a, **k):
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(self.manager, "save", full)
        return original_save(self, step, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "save", save)
    with pytest.raises(ConfigError) as info:
        loop.train_and_evaluate(_config(checkpoint_every_steps=5), str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "checkpoints") in message
    assert ("cannot be written" if failure == "read_only" else "no space left") in message
    assert info.value.dl_arch_step == 10
    ro.off()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["5"]
    assert int(restore_raw_state(str(tmp_path))["step"]) == 5  # intact


# --- SIGTERM before the first step --------------------------------------------------------

def test_sigterm_during_set_up_returns_having_saved_nothing(tmp_path, monkeypatch, caplog):
    def terminated_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during the slow set-up
        return train_dataset(*args, **kwargs)

    monkeypatch.setattr(trainer_lib, "train_dataset", terminated_while_loading)
    with caplog.at_level(logging.WARNING, logger="dl_arch"):
        result = loop.train_and_evaluate(_config(), str(tmp_path))
    assert result == {"preempted": True, "step": 0}
    assert "before the first step" in caplog.text
    assert not os.listdir(tmp_path / "checkpoints")
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / ".lock").exists()


def test_sigterm_before_the_first_step_exits_0(tmp_path):
    proc = launch_process([f"--config={XOR}", f"--workdir={tmp_path}", "--config.progress=none"])
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "devices:" in line:  # train_and_evaluate has started: the handler is installed
            proc.send_signal(signal.SIGTERM)
            break
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "SIGTERM" in out
    if "before the first step" in out:
        assert not [s for s in os.listdir(tmp_path / "checkpoints") if s.isdigit()]
