"""MetricWriter: metrics.jsonl rows and the TensorBoard events TensorBoard reads back."""

from __future__ import annotations

import glob
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c

from dl_arch.train.writers import MetricWriter, read_metrics


def _events(workdir) -> list[event_pb2.Event]:
    """Every event of the run's TensorBoard files, each record's framing and checksums
    checked (length, masked CRC-32C of the length, data, masked CRC-32C of the data)."""
    (path,) = glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    data, events, at = open(path, "rb").read(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == \
            masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        at += 16 + length
    return events


def test_a_rows_scalars_are_one_tensorboard_event_with_every_value(tmp_path):
    """One event a row (not one a scalar), tagged with the metrics.jsonl names, at the row's
    step, with every scalar's value; arrays go to metrics.jsonl only."""
    writer = MetricWriter(str(tmp_path))
    rows = {5: {"train/loss": 0.6931, "train/accuracy": np.float32(0.5), "train/lr": 1e-3,
                "eval/confusion": np.eye(2)},
            10: {"train/loss": 0.25, "train/accuracy": np.float32(0.875), "train/lr": 5e-4}}
    for step, row in rows.items():
        writer.write_scalars(step, row)
    writer.close()

    summaries = [e for e in _events(tmp_path) if e.HasField("summary")]
    assert [e.step for e in summaries] == [5, 10]
    for event, row in zip(summaries, rows.values(), strict=True):
        values = {v.tag: v.simple_value for v in event.summary.value}
        scalars = {k: v for k, v in row.items() if np.ndim(v) == 0}
        assert list(values) == list(scalars)
        np.testing.assert_allclose(list(values.values()), list(scalars.values()), rtol=1e-7)
        assert event.wall_time > 0
    written = read_metrics(str(tmp_path))
    assert [r["step"] for r in written] == [5, 10]
    assert written[0]["eval/confusion"] == [[1.0, 0.0], [0.0, 1.0]]
    assert written[1]["train/accuracy"] == pytest.approx(0.875)


def test_a_resumed_writer_marks_its_purge_step_and_a_row_without_scalars_writes_no_event(
        tmp_path):
    """The resumed writer's purge step (a SessionLog START at S + 1) tells TensorBoard to drop
    the older files' events past S; a row of arrays alone adds no empty summary."""
    writer = MetricWriter(str(tmp_path), purge_step=7)
    writer.write_scalars(7, {"eval/confusion": np.eye(2)})
    writer.close()
    events = _events(tmp_path)
    starts = [e for e in events if e.HasField("session_log")]
    assert [(e.step, e.session_log.status) for e in starts] == [(7, event_pb2.SessionLog.START)]
    assert not [e for e in events if e.HasField("summary")]
