"""Data parallelism: 8 simulated CPU devices and 2 processes (gloo) match one device."""

import json
import os
import socket

import jax
import numpy as np

from dl_arch.config.resolve import Text, resolve_config
from dl_arch.testing import launch_process, load_config
from dl_arch.train.loop import train_and_evaluate

COMMON = ["--config=configs/mlp_shapes.py:smoke", "--config.log_every_steps=4",
          "--config.num_train_steps=12", "--config.progress=none", "--config.model.dropout=0.0"]
# the runs on several devices take calls of 3 steps (batches stacked, sharded along their
# second axis) and of 1 (before each log step): both programs; the one-device reference
# takes one step per call
CHUNKED = ["--config.steps_per_call=3"]


def _losses(workdir):
    rows = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    return np.array([r["train/loss"] for r in rows if "train/loss" in r])


def _train_on_one_device(workdir, children):
    """The run of `launch.py COMMON --workdir=WORKDIR` on one CPU device, in this process (as
    launch.py resolves it: the config file, then the overrides as text), while `children`
    run; they are killed if it fails."""
    try:
        assert jax.device_count() == 1
        spec = COMMON[0].removeprefix("--config=")
        overrides = [tuple(a.removeprefix("--config.").split("=", 1)) for a in COMMON[1:]]
        config = resolve_config(load_config(spec), [(k, Text(v)) for k, v in overrides])
        train_and_evaluate(config, str(workdir))
    except BaseException:
        for p in children:
            p.kill()
            p.communicate()
        raise


def _finish(*procs):
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    return out


def test_eight_devices_give_the_same_losses_as_one(tmp_path):
    eight = launch_process(COMMON + CHUNKED + [f"--workdir={tmp_path / 'eight'}"], devices=8)
    _train_on_one_device(tmp_path / "one", [eight])
    out = _finish(eight)
    assert "8 x cpu" in out and "'data': 8" in out
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "eight")
    assert len(a) == 3  # means over steps 1-4, 5-8, 9-12
    # Same global batch, same math; only the order of the batch reduction differs.
    np.testing.assert_allclose(b, a, rtol=2e-5)


def test_batch_not_divisible_by_devices_is_one_clear_line(tmp_path):
    p = launch_process(COMMON + ["--config.batch_size=12", f"--workdir={tmp_path}"], devices=8)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2
    assert out.strip().splitlines()[-1] == (
        "error: config.batch_size=12 must be divisible by the number of devices (8); "
        "use a multiple of 8")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_process(tmp_path):
    port = _free_port()
    procs = [
        launch_process(COMMON + CHUNKED + [f"--workdir={tmp_path / 'multi'}",
                                           f"--coordinator_address=127.0.0.1:{port}",
                       "--num_processes=2", f"--process_id={i}"], devices=2)
        for i in range(2)
    ]
    _train_on_one_device(tmp_path / "single", procs)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
    assert "4 x cpu (2 processes)" in outs[0]
    np.testing.assert_allclose(_losses(tmp_path / "multi"), _losses(tmp_path / "single"), rtol=2e-5)
    # each process saved its own data-iterator position
    data_dir = tmp_path / "multi" / "checkpoints" / "12" / "data"
    assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(data_dir))
