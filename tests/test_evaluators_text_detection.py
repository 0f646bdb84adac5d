"""The evaluators of the text and detection tasks, called directly with an EvalContext:
text_samples (samples.txt), translations (BLEU, translations.txt), detections (pictures)
and coco_ap (the exact COCO protocol, detection_metrics.json)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.evaluators.base import EvalContext, write_report
from dl_arch.registry import EVALUATORS
from dl_arch.tasks.generation import decode_bytes
from dl_arch.testing import load_config
from dl_arch.train.loop import build_task, eval_split


def setup(spec: str, init: bool = True, **overrides):
    """(task, first eval batch, initial variables unless not `init`) of a smoke config;
    overrides `section__key=value` set config.section.key."""
    config = load_config(spec)
    for path, value in overrides.items():
        section, key = path.split("__")
        config[section][key] = value
    task = build_task(config)
    batch = next(iter(eval_split(task.config, task)))
    init_fn = jax.jit(task.init_variables)  # one compile, not one per eager op
    variables = jax.device_get(init_fn(jax.random.key(0), batch)) if init else {}
    return task, batch, variables


def context(task, batch, variables, tmp_path, step=5, final=True) -> EvalContext:
    return EvalContext(variables=variables, metrics={}, batch=batch, step=step, final=final,
                       workdir=str(tmp_path), eval_batches=lambda: eval_split(task.config, task))


def evaluator(name: str, task):
    return EVALUATORS.get(name)(task.config, task)


# ---------------------------------------------------------------- text_samples
def test_text_samples_continue_the_eval_example_greedily(tmp_path):
    task, batch, variables = setup("configs/gpt_text.py:smoke", text_samples__temperature=0.0)
    ev = evaluator("text_samples", task)
    report = ev(context(task, batch, variables, tmp_path))
    prompt = np.asarray(batch["inputs"])[0, :32]
    greedy = jax.jit(lambda p, x: task.generate(p, x, 16, jax.random.key(0), temperature=0.0))(
        variables["params"], prompt[None])
    assert report.texts["samples"] == (
        "----- sample 0 (temperature=0.0, top_k=0, top_p=0.95) -----\n"
        + decode_bytes(prompt) + decode_bytes(greedy[0]))
    write_report(report, 5, True, str(tmp_path), None)
    assert open(tmp_path / "samples.txt").read().startswith("# step 5\n----- sample 0")


def test_text_samples_from_a_given_prompt(tmp_path):
    task, batch, variables = setup("configs/lstm_text.py:smoke", text_samples__prompt="def ",
                                   text_samples__num_samples=2)
    text = evaluator("text_samples", task)(context(task, batch, variables, tmp_path)).texts
    samples = text["samples"].split("----- sample ")[1:]
    assert len(samples) == 2
    assert all(s.split("-----\n", 1)[1].startswith("def ") for s in samples)


def test_text_samples_need_a_byte_vocabulary():
    config = load_config("configs/lstm_text.py:smoke")
    config.model.vocab_size = 100
    task = build_task(config)
    with pytest.raises(ConfigError, match="vocab_size=100"):
        evaluator("text_samples", task)


# ---------------------------------------------------------------- translations
def test_translations_score_bleu_and_write_examples(tmp_path):
    task, batch, variables = setup("configs/transformer_translate.py:smoke",
                                   translations__num_examples=5, translations__num_shown=2)
    tok = task.tokenizer
    refs = {}
    for b in eval_split(task.config, task):
        for src, tgt in zip(b["inputs"], b["targets"], strict=True):
            refs[src.tobytes()] = tok.decode(tgt)

    def translate(params, source, beam=True):  # beam: the references; greedy: one word
        return [refs[row.tobytes()] if beam else "shel" for row in np.asarray(source)]

    task.translate = translate
    report = evaluator("translations", task)(context(task, batch, variables, tmp_path))
    assert report.scalars["bleu_beam"] == pytest.approx(100.0)
    assert report.scalars["bleu_greedy"] < 5.0
    text = report.texts["translations"]
    assert text.startswith("BLEU beam=100.00 greedy=") and "on 5 sentences" in text
    assert text.count("src: ") == 2 and text.count("ref: ") == 2


def test_translations_with_the_real_decoders(tmp_path):
    task, batch, variables = setup("configs/transformer_translate.py:smoke")
    report = evaluator("translations", task)(context(task, batch, variables, tmp_path))
    assert set(report.scalars) == {"bleu_beam", "bleu_greedy"}
    assert all(0.0 <= v <= 100.0 for v in report.scalars.values())
    assert "on 8 sentences" in report.texts["translations"]


# ---------------------------------------------------------------- detection
def truth(boxes, labels, score: float, drop_class: int | None = None) -> dict:
    """Detections equal to the ground truth (padding and `drop_class` left out)."""
    classes = np.asarray(labels).astype(np.int32)
    valid = (classes >= 0) & (classes != (-2 if drop_class is None else drop_class))
    return {"boxes": np.asarray(boxes, np.float32), "classes": np.maximum(classes, 0),
            "scores": np.full(classes.shape, score, np.float32), "valid": valid}


def ground_truth_detector(task, drop_class: int | None = None):
    """Makes `task` 'detect' exactly the ground truth of every image it is given: its inputs
    become boxes and labels, which `detect_jit` reads back as detections."""
    task.inputs = lambda b: np.concatenate([b["boxes"], b["box_labels"][..., None]], -1)
    task.detect_jit = lambda variables, x: truth(np.asarray(x)[..., :4], np.asarray(x)[..., 4],
                                                 0.9, drop_class)


def test_coco_ap_of_perfect_detections_is_one(tmp_path):
    task, batch, variables = setup("configs/detector_shapes.py:smoke", init=False)
    ground_truth_detector(task)
    report = evaluator("coco_ap", task)(context(task, batch, variables, tmp_path))
    assert report.scalars["coco/mAP50"] == pytest.approx(1.0)
    assert report.scalars["coco/mAP50_95"] == pytest.approx(1.0)
    write_report(report, 6, True, str(tmp_path), None)
    with open(tmp_path / "detection_metrics.json") as f:
        assert json.load(f)["mAP50"] == pytest.approx(1.0)


def test_coco_ap_counts_a_missed_class(tmp_path):
    task, batch, variables = setup("configs/detector_shapes.py:smoke", init=False)
    ground_truth_detector(task, drop_class=0)
    scalars = evaluator("coco_ap", task)(context(task, batch, variables, tmp_path)).scalars
    name = task.class_names[0]
    assert scalars[f"coco/AP50/{name}"] == 0.0
    assert scalars[f"coco/AP50/{task.class_names[1]}"] == pytest.approx(1.0)
    assert scalars["coco/mAP50"] == pytest.approx(1.0 - 1.0 / task.num_classes)


def test_detections_picture_shows_boxes_above_draw_min_score(tmp_path):
    task, batch, variables = setup("configs/detector_shapes.py:smoke")
    plain = evaluator("detections", task)(context(task, batch, variables, tmp_path))
    grid = plain.images["detections"]
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[-1] == 3
    assert task.config.detections.report_images == 2
    assert grid.shape[1] > 1.5 * grid.shape[0]  # two pictures side by side
    task.detect_jit = lambda variables, images: truth(batch["boxes"], batch["box_labels"], 0.5)
    # only the predicted boxes differ: drawn at draw_min_score 0.3, hidden at 0.6
    shown = evaluator("detections", task)(context(task, batch, variables, tmp_path))
    task.config.detections.draw_min_score = 0.6
    hidden = evaluator("detections", task)(context(task, batch, variables, tmp_path))
    assert not np.array_equal(shown.images["detections"], hidden.images["detections"])


def test_detection_finalize_metrics_is_pure():
    task = build_task(load_config("configs/detector_shapes.py:smoke"))
    k = task.num_classes
    tp = np.zeros((10, k, 4)); tp[:, :, -1] = 1.0  # noqa: E702  one hit per class, top bin
    totals = {"loss": (np.float32(2.0), np.float32(1.0)), "_ap_tp": (tp, 1.0),
              "_ap_fp": (np.zeros_like(tp), 1.0), "_ap_num_gt": (np.ones(k), 1.0)}
    first, again = task.finalize_metrics(dict(totals)), task.finalize_metrics(dict(totals))
    assert first["per_class_ap"].shape == (10, k)
    np.testing.assert_allclose(first["per_class_ap"], again["per_class_ap"])
    assert first["mAP50"] == pytest.approx(1.0) and not hasattr(task, "last_ap")
