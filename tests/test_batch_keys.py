"""The keys a train step never reads are found in its jaxpr and dropped where training batches
are loaded (`dl_arch.train.batch_keys`, `KeepKeys`), without changing a run."""

import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.data.pipeline import train_dataset
from dl_arch.testing import load_config
from dl_arch.train import loop
from dl_arch.train.batch_keys import probe_step, unread_keys
from dl_arch.train.loop import train_and_evaluate
from dl_arch.train.trainer import Trainer
from dl_arch.train.writers import read_metrics
from tests.test_loop import _params


def _batch():
    return {"x": jnp.ones((2, 3)), "unused": jnp.zeros(2), "nested": {"a": jnp.ones(2),
                                                                     "b": jnp.ones(2)},
            "idle": {"c": jnp.ones(2)}, "passed": jnp.arange(2.0)}


def _step(state, batch):
    loss = jnp.sum(batch["x"] * state) + jnp.sum(batch["nested"]["b"])
    return state - loss, {"loss": loss, "passed": batch["passed"]}


def test_unread_keys_are_those_no_equation_or_output_touches():
    state, batch = jnp.float32(2.0), _batch()
    jaxpr = jax.jit(_step).trace(state, batch).jaxpr.jaxpr
    # "nested" counts as read through one of its two leaves; "passed" as an output
    assert unread_keys(jaxpr, (state, batch), position=1) == ("unused", "idle")


def test_probe_step_gives_the_metric_shapes_of_eval_shape_and_takes_abstract_arguments():
    state, batch = jnp.float32(2.0), _batch()
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                      (state, batch))
    shapes, unread = probe_step(_step, *abstract)
    assert shapes == jax.eval_shape(_step, state, batch)[1]
    assert sorted(unread) == ["idle", "unused"]


def test_inputs_that_do_not_line_up_with_the_leaves_drop_nothing():
    state, batch = jnp.float32(2.0), _batch()
    jaxpr = jax.jit(_step).trace(state, batch).jaxpr.jaxpr
    assert unread_keys(jaxpr, (state, batch, jnp.ones(3)), position=1) == ()


def _identity(example, rng, train):
    return example


@pytest.mark.parametrize("workers", [0, 2])
def test_kept_keys_stream_is_the_full_stream_restricted(workers):
    dataset = load_config("configs/mlp_shapes.py:smoke").dataset
    dataset.num_workers = workers
    full = iter(train_dataset(dataset, 3, 8, _identity))
    kept = iter(train_dataset(dataset, 3, 8, _identity, keys=("label", "image")))
    for _ in range(3):
        a, b = next(full), next(kept)
        assert {"boxes", "box_labels"} <= set(a) and sorted(b) == ["image", "label"]
        chex.assert_trees_all_equal({k: a[k] for k in b}, b)
    if workers == 0:  # several batches in one read (a chunk of steps) too
        full_many, kept_many = full.read(2), kept.read(2)
        assert sorted(kept_many) == ["image", "label"]
        np.testing.assert_array_equal(full_many["image"], kept_many["image"])


def test_a_classifier_on_shapes_does_not_read_the_detection_fields():
    trainer = Trainer(load_config("configs/mlp_shapes.py:smoke"))
    batch = trainer.first_batch()
    _, unread = probe_step(trainer.step_fn(), trainer.abstract_state(batch), batch)
    assert sorted(unread) == ["box_labels", "boxes"]
    trainer = Trainer(load_config("configs/mlp_xor.py:smoke"))
    batch = trainer.first_batch()
    assert probe_step(trainer.step_fn(), trainer.abstract_state(batch), batch)[1] == ()


def test_the_loop_drops_them_and_trains_and_resumes_bit_identically(tmp_path, monkeypatch,
                                                                    caplog):
    config = load_config("configs/mlp_shapes.py:smoke")
    config.dataset.num_workers = 2
    kept = []
    original = Trainer.train_dataset

    def recording(self, keys=None):
        kept.append(keys)
        return original(self, keys)

    monkeypatch.setattr(Trainer, "train_dataset", recording)
    with caplog.at_level(logging.INFO, logger="dl_arch"):
        trimmed = train_and_evaluate(config, str(tmp_path / "trimmed"))
    assert sorted(kept[0]) == ["image", "label"]
    assert "the train step reads no box_labels, boxes: dropped" in caplog.text
    config.num_train_steps = 10  # stop halfway, then resume to the end
    train_and_evaluate(config, str(tmp_path / "resumed"))
    config.num_train_steps = 20
    train_and_evaluate(config, str(tmp_path / "resumed"))

    probe = loop.probe_step
    monkeypatch.setattr(loop, "probe_step", lambda *a: (probe(*a)[0], ()))  # keep every key
    whole = train_and_evaluate(config, str(tmp_path / "whole"))
    assert kept[-1] is None
    losses = [[r["train/loss"] for r in read_metrics(str(tmp_path / name)) if "train/loss" in r]
              for name in ("trimmed", "whole")]
    assert losses[0] == losses[1] and trimmed["eval/loss"] == whole["eval/loss"]
    for name in ("whole", "resumed"):
        chex.assert_trees_all_equal(_params(tmp_path / "trimmed"), _params(tmp_path / name))
