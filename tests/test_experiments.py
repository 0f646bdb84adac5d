"""Tests of the sweep runner, the report, the probes and the study files.

The runner's bookkeeping (skip, resume, --parallel, --trial, --report_only, dependencies,
failures) is tested with a tiny stand-in trainer written to a temporary module, so each
case takes a fraction of a second; the real loop runs end to end on the smoke size of a
study, and the probes are checked against numpy implementations of their maths.
"""

from __future__ import annotations

import csv
import glob
import json
import os

import chex
import jax
import ml_collections
import numpy as np
import pytest

from configs.base import base_config
from dl_arch.config.errors import ConfigError
from dl_arch.experiments import plots, probes, report, runner, stats, study
from dl_arch.experiments.runs import ERROR_FILE, TRIAL_FILE, Run, expand_runs, flatten
from dl_arch.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in for dl_arch.train.loop.train_and_evaluate with the same file contract. It logs
# every call, "resumes" from a progress file, and fails or diverges where the experiment
# says: MODES (trial name -> mode) is set by the fake experiment file, which the sweep and
# each of its child processes load before training (run configs hold declared fields only).
FAKE_TRAINER = '''
import json, os

MODES = {}

def train(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    sweep = os.path.dirname(os.path.dirname(workdir))
    start = 0
    progress = os.path.join(workdir, "progress.txt")
    if os.path.exists(progress):
        start = int(open(progress).read())
    with open(os.path.join(sweep, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"workdir": workdir, "pid": os.getpid(), "start": start,
                            "init_from": config.init_from}) + "\\n")
    mode = MODES.get(os.path.basename(os.path.dirname(workdir)), "ok")
    if config.init_from:
        assert os.path.exists(os.path.join(config.init_from, "summary.json")), config.init_from
    w = config.model.width
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        for step in range(start + 5, 21, 5):
            f.write(json.dumps({"step": step, "train/loss": 1.0 / (step * w),
                                "eval/accuracy": min(1.0, step * w / 100.0)}) + "\\n")
            if mode == "crash_once" and step == 10 and start == 0:
                open(progress, "w").write("10")
                raise RuntimeError("simulated crash at step 10")
    if mode == "preempt_once" and start == 0:
        open(progress, "w").write("20")
        return {"preempted": True, "step": 20}
    if mode == "nan":
        raise FloatingPointError("loss=nan at step 5")
    if mode == "broken":
        raise ValueError("config.model.width: broken on purpose")
    acc = min(1.0, 0.5 + 0.01 * w) - 0.001 * config.seed
    summary = {"eval/accuracy": acc, "eval/loss": 1.0 - acc, "num_params": 10 * w,
               "flops_per_step": 100.0 * w, "steps_per_sec": 1000.0 / w, "wall_time_s": 0.01,
               "peak_memory_bytes": None, "completed": True}
    json.dump(summary, open(os.path.join(workdir, "summary.json"), "w"))
    return summary
'''

FAKE_EXPERIMENT = '''
"""A fake sweep over MLP widths."""
import ml_collections
import fake_trainer
from configs.base import base_config, parse_options
from dl_arch.experiments.study import as_list

def get_experiment(arg=None):
    o = parse_options(arg, widths="2/4/8", crash="", nan="", broken="", pretrain=False,
                      preempt="", typo="")
    e = ml_collections.ConfigDict()
    e.base = base_config()
    e.trainer = "fake_trainer:train"
    e.trials = []
    fake_trainer.MODES.clear()
    for w in as_list(o.widths, int):
        fake_trainer.MODES[f"w{w}"] = {o.crash: "crash_once", o.nan: "nan", o.broken: "broken",
                                       o.preempt: "preempt_once"}.get(f"w{w}", "ok")
        overrides = {"model.wdth" if o.typo == f"w{w}" else "model.width": w}
        e.trials.append({"name": f"w{w}", "overrides": overrides, "params": {"width": w}})
    if o.pretrain:
        e.trials.append({"name": "finetune", "depends_on": ["w2"],
                         "overrides": {"model.width": 3,
                                       "init_from": "{workdir}/w2/seed_{seed}"},
                         "params": {"width": 3}})
    e.seeds = [0, 1]
    e.derived = [{"name": "steps_to_half", "kind": "first_step", "metric": "eval/accuracy",
                  "threshold": 0.5}]
    e.plots = [{"name": "acc_vs_width", "kind": "metric", "x": "width", "y": "eval/accuracy",
                "logx": True},
               {"name": "loss", "kind": "curves", "y": "train/loss", "logy": True}]
    return e
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A directory with the fake trainer (importable here and in child processes)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_trainer.py").write_text(FAKE_TRAINER)
    (code / "fake_exp.py").write_text(FAKE_EXPERIMENT)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(code), REPO]))
    return code


def _calls(sweep) -> list[dict]:
    path = os.path.join(sweep, "calls.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def _csv(sweep) -> list[dict]:
    with open(os.path.join(sweep, "results.csv")) as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- grid


def _run(overrides: dict, seed: int = 3) -> Run:
    return Run(index=0, trial="t", seed=seed, overrides=overrides, params={},
               config_spec=None, workdir="/nonexistent/sweep/t/seed_3")


def test_build_run_config_resolves_sections_then_fields_and_names_bad_ones():
    exp = ml_collections.ConfigDict({"name": "e", "base": base_config(), "trials": [{"name": "t"}]})
    study.validate_experiment(exp)
    # a whole section applies first (it decides the fields), then dotted fields, then the seed
    out = study.build_run_config(exp, _run({"model.width": 7, "optimizer.learning_rate": 0.5,
                                            "model": {"name": "mlp", "depth": 3},
                                            "batch_size": 16}))
    assert out.optimizer.learning_rate == 0.5 and out.batch_size == 16 and out.seed == 3
    assert out.model.depth == 3 and out.model.width == 7 and out.model.num_classes >= 1
    assert out.is_locked and out.dataset.eval_split == "test"  # declared defaults filled in
    with pytest.raises(ConfigError, match="experiment 'e', trial 't': config.model.wdth .*"
                                          "did you mean 'width'"):
        study.build_run_config(exp, _run({"model.wdth": 7}))
    with pytest.raises(ConfigError, match="trial 't': .*config.optimizer.learning_rate=-1"):
        study.build_run_config(exp, _run({"optimizer.learning_rate": -1}))
    with pytest.raises(ConfigError, match="trial 't': .*optimizer.nope"):
        study.build_run_config(exp, _run({"optimizer.nope.lr": 1}))


def test_expand_runs_numbers_trials_times_seeds_and_substitutes_placeholders(fake, tmp_path):
    exp = study.load_experiment(f"{fake}/fake_exp.py:pretrain")
    runs = expand_runs(exp, str(tmp_path / "sweep"))
    assert [(r.index, r.trial, r.seed) for r in runs][:3] == [(0, "w2", 0), (1, "w2", 1),
                                                             (2, "w4", 0)]
    assert len(runs) == 8
    ft = runs[-1]
    assert ft.overrides["init_from"] == str(tmp_path / "sweep" / "w2" / "seed_1")
    assert ft.identity()["overrides"]["init_from"] == "{workdir}/w2/seed_1"  # movable sweep
    cfg = study.build_run_config(exp, ft)
    assert cfg.seed == 1 and cfg.model.width == 3


@pytest.mark.parametrize("trials, message", [
    ([{"name": "a b"}], "must be non-empty"),
    ([{"name": "a"}, {"name": "a"}], "appears twice"),
    ([{"name": "a", "overide": {}}], "unknown keys"),
    ([{"name": "a", "depends_on": ["b"]}, {"name": "b"}], "not an earlier trial"),
    ([], "`trials` is empty"),
])
def test_validate_experiment_rejects_bad_grids(trials, message):
    exp = ml_collections.ConfigDict({"name": "bad", "base": base_config(), "seeds": [0],
                                     "trials": trials})
    with pytest.raises(ValueError, match=message):
        study.validate_experiment(exp)


@pytest.mark.parametrize("extra, message", [
    ({"plots": [{"name": "p", "kind": "pie", "y": "a"}]}, "kind 'pie' is unknown"),
    ({"plots": [{"name": "p", "kind": "metric", "y": "a"}]}, "missing \\['x'\\]"),
    ({"plots": [{"name": "a b", "kind": "bar", "y": "a"}]}, "file-safe name"),
    ({"probes": ["gradcam"]}, "probes \\['gradcam'\\] are unknown"),
    ({"plot": []}, "field 'plot' is unknown; did you mean 'plots'"),
    ({"seeds": [0.5]}, "seeds\\[0\\]=0.5 must be an integer"),
])
def test_validate_experiment_rejects_bad_plots_and_probes_before_training(extra, message):
    exp = ml_collections.ConfigDict({"name": "bad", "base": base_config(), "seeds": [0],
                                     "trials": [{"name": "a"}], **extra})
    with pytest.raises(ValueError, match=message):
        study.validate_experiment(exp)


# ----------------------------------------------------------------------------- runner


def test_sweep_skips_finished_resumes_failed_and_reports_mean_std(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    spec = f"{fake}/fake_exp.py:crash=w4,nan=w8"
    with pytest.raises(RuntimeError, match="2 run"):  # w4 crashes, the sweep goes on
        runner.run_experiment(spec, sweep)
    assert len(_calls(sweep)) == 6
    rows = {(r["trial"], r["seed"]): r for r in _csv(sweep)}
    assert rows[("w4", "0")]["status"] == "failed" and rows[("w2", "1")]["status"] == "done"
    assert rows[("w8", "0")]["status"] == "diverged"
    md = open(os.path.join(sweep, "report.md")).read()
    assert "simulated crash" in md and "diverged" in md

    runner.run_experiment(spec, sweep)  # only the crashed runs again, resuming at step 10
    calls = _calls(sweep)[6:]
    assert [(os.path.relpath(c["workdir"], sweep), c["start"]) for c in calls] == [
        ("w4/seed_0", 10), ("w4/seed_1", 10)]
    rows = _csv(sweep)
    by = {(r["trial"], r["seed"]): r for r in rows}
    assert by[("w4", "0")]["status"] == "done"
    assert by[("w4", "0")]["steps_to_half"] == "15"  # first logged step with accuracy >= 0.5
    # report.md: mean ± std over seeds (an independent numpy computation) and the best in bold
    acc = [float(by[("w4", s)]["eval/accuracy"]) for s in ("0", "1")]
    want = f"{stats.fmt(np.mean(acc))} ± {np.std(acc, ddof=1):.2g}"
    md = open(os.path.join(sweep, "report.md")).read()
    w4_line = next(line for line in md.splitlines() if line.startswith("| w4 "))
    assert f"**{want}**" in w4_line  # w8 diverged, so w4 is the most accurate
    assert os.path.exists(os.path.join(sweep, "fake_exp_acc_vs_width.png"))
    assert os.path.exists(os.path.join(sweep, "fake_exp_loss.png"))
    runner.run_experiment(spec, sweep)  # nothing left to do
    assert len(_calls(sweep)) == 8


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_failing_run_leaves_its_traceback_in_error_txt(fake, tmp_path, parallel):
    sweep = str(tmp_path / "sweep")
    with pytest.raises(RuntimeError, match="2 run"):
        runner.run_experiment(f"{fake}/fake_exp.py:widths=2,broken=w2", sweep, parallel=parallel)
    for seed in (0, 1):  # written by the sweep itself, or by the child process that ran it
        text = open(os.path.join(sweep, "w2", f"seed_{seed}", ERROR_FILE)).read()
        assert f"trial: w2 seed {seed}" in text and "Traceback (most recent call last)" in text
        assert 'fake_trainer.py", line' in text and "broken on purpose" in text
    assert {r["status"] for r in _csv(sweep)} == {"failed"}


def test_a_mistake_in_any_trial_config_stops_the_sweep_before_anything_trains(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    with pytest.raises(ConfigError, match="experiment 'fake_exp', trial 'w4': "
                                          "config.model.wdth .*did you mean 'width'"):
        runner.run_experiment(f"{fake}/fake_exp.py:typo=w4", sweep, parallel=2)
    assert _calls(sweep) == []


def test_parallel_runs_separate_processes_and_respects_dependencies(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    # w2 (2 seeds) and finetune (2 seeds, on w2): the free third slot must stay empty until
    # both w2 runs are done; each of the 4 runs in a process of its own
    runner.run_experiment(f"{fake}/fake_exp.py:widths=2,pretrain", sweep, parallel=3)
    calls = _calls(sweep)
    assert len(calls) == 4
    assert os.getpid() not in {c["pid"] for c in calls} and len({c["pid"] for c in calls}) == 4
    # the fake trainer asserts that init_from holds a finished run: the pretraining seed
    assert {c["init_from"] for c in calls if "finetune" in c["workdir"]} == {
        os.path.join(sweep, "w2", "seed_0"), os.path.join(sweep, "w2", "seed_1")}
    assert all(r["status"] == "done" for r in _csv(sweep))


def test_trial_runs_one_run_and_report_only_trains_nothing(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    spec = f"{fake}/fake_exp.py:pretrain"
    runner.run_experiment(spec, sweep, trial=3)  # w4, seed 1
    assert [c["workdir"] for c in _calls(sweep)] == [os.path.join(sweep, "w4", "seed_1")]
    assert not os.path.exists(os.path.join(sweep, "report.md"))
    with pytest.raises(ValueError, match="out of range.*0..7"):
        runner.run_experiment(spec, sweep, trial=8)
    with pytest.raises(ValueError, match="depends on w2"):
        runner.run_experiment(spec, sweep, trial=6)
    runner.run_experiment(spec, sweep, trial="w2")  # a name: every seed of that trial
    assert len(_calls(sweep)) == 3
    runner.run_experiment(spec, sweep, report_only=True)
    assert len(_calls(sweep)) == 3
    statuses = {(r["trial"], r["seed"]): r["status"] for r in _csv(sweep)}
    assert statuses[("w4", "1")] == "done" and statuses[("w4", "0")] == "new"
    assert "| w4 | 4 |" in open(os.path.join(sweep, "report.md")).read()


def test_preempted_sweep_stops_and_the_same_command_resumes_it(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    spec = f"{fake}/fake_exp.py:widths=2/4,preempt=w2"
    with pytest.raises(SystemExit) as stop:  # SIGTERM inside the loop: checkpoint, stop
        runner.run_experiment(spec, sweep)
    assert stop.value.code == 143 and len(_calls(sweep)) == 1
    assert not os.path.exists(os.path.join(sweep, "report.md"))
    with pytest.raises(SystemExit):  # the next w2 run is preempted in its turn
        runner.run_experiment(spec, sweep)
    runner.run_experiment(spec, sweep)
    assert [(os.path.relpath(c["workdir"], sweep), c["start"]) for c in _calls(sweep)] == [
        ("w2/seed_0", 0), ("w2/seed_0", 20), ("w2/seed_1", 0), ("w2/seed_1", 20),
        ("w4/seed_0", 0), ("w4/seed_1", 0)]
    assert "Best per metric:" in open(os.path.join(sweep, "report.md")).read()


def test_probe_plots_draw_from_saved_arrays(tmp_path):
    rows = []
    for t, (act, depth) in enumerate([("relu", 4), ("tanh", 4)]):
        d = tmp_path / f"t{t}" / "seed_0"
        d.mkdir(parents=True)
        np.savez(d / "probe_layer_grad_norms.npz", init=np.geomspace(1e-3, 1, 5),
                 final=np.geomspace(1e-2, 1, 5), names=np.array(["h0", "h1", "h2", "h3", "head"]))
        np.savez(d / "probe_grad_through_time.npz", init=np.geomspace(1e-4, 1, 30),
                 final=np.geomspace(1e-2, 1, 30))
        axis = np.linspace(-1, 1, 11)
        np.savez(d / "probe_decision_boundary.npz", axis=axis,
                 prob=np.clip(axis[None, :] * axis[:, None] + 0.5, 0, 1),
                 points=np.zeros((4, 2)), labels=np.array([0, 1, 0, 1]))
        rows.append({"trial": f"t{t}", "seed": 0, "status": "done", "workdir": str(d),
                     "activation": act, "depth": depth, "eval/accuracy": 0.5})
    for kind in ("layer_grad_norms", "grad_through_time", "decision_boundary"):
        path = str(tmp_path / f"{kind}.png")
        assert plots.draw_plot({"name": kind, "kind": kind, "group": "activation",
                                "where": {"depth": 4}}, rows, None, path)
        assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="unknown kind 'histogram'"):
        plots.draw_plot({"name": "h", "kind": "histogram"}, rows, None, str(tmp_path / "h.png"))


def test_changed_grid_in_an_old_workdir_is_refused(fake, tmp_path):
    sweep = str(tmp_path / "sweep")
    runner.run_experiment(f"{fake}/fake_exp.py:widths=2", sweep, trial=0)
    with open(os.path.join(sweep, "w2", "seed_0", TRIAL_FILE)) as f:
        recorded = json.load(f)
    recorded["overrides"]["model.width"] = 5
    with open(os.path.join(sweep, "w2", "seed_0", TRIAL_FILE), "w") as f:
        json.dump(recorded, f)
    os.remove(os.path.join(sweep, "w2", "seed_0", "summary.json"))
    with pytest.raises(ValueError, match="holds a different run"):
        runner.run_experiment(f"{fake}/fake_exp.py:widths=2", sweep, trial=0)


def test_bad_arguments_fail_in_one_line(fake, tmp_path):
    with pytest.raises(ValueError, match="--parallel=0"):
        runner.run_experiment(f"{fake}/fake_exp.py", str(tmp_path), parallel=0)
    with pytest.raises(ValueError, match="names no trial; known: w2, w4, w8"):
        runner.run_experiment(f"{fake}/fake_exp.py", str(tmp_path), trial="w3")
    with pytest.raises(ValueError, match="not found"):
        runner.run_experiment("experiments/nope.py", str(tmp_path))
    with pytest.raises(ValueError, match="unknown config option 'wdth'"):
        runner.run_experiment(f"{fake}/fake_exp.py:wdth=3", str(tmp_path))


# ----------------------------------------------------------------------------- report maths


def test_mean_std_and_goal_and_flatten():
    xs = [0.25, 0.5, 1.0, None, "", float("nan")]
    m, s, n = stats.mean_std(xs)
    np.testing.assert_allclose([m, s, n], [np.mean(xs[:3]), np.std(xs[:3], ddof=1), 3])
    assert stats.mean_std([None]) is None and stats.mean_std([2.0])[1] == 0.0
    assert report.goal_of("eval/accuracy") == "max" and report.goal_of("eval/loss") == "min"
    assert report.goal_of("steps_per_sec") == "max" and report.goal_of("wall_time_s") == "min"
    assert flatten({"a": {"b": 1, "c": [1]}, "d": "x"}) == {"a/b": 1, "d": "x"}


# ----------------------------------------------------------------------------- probes


def _classification_task(hidden: int):
    c = base_config()
    c.model = ml_collections.ConfigDict({"name": "mlp", "num_classes": 3, "width": hidden,
                                         "depth": 1, "activation": "relu"})
    c.dtype = "float32"
    return probes.make_task(c)


def test_layer_norms_match_numpy_backprop():
    task = _classification_task(hidden=5)
    rng = np.random.default_rng(0)
    batch = {"inputs": rng.normal(size=(7, 4)).astype(np.float32),
             "label": rng.integers(0, 3, size=7).astype(np.int32)}
    variables = jax.jit(task.init_variables)(jax.random.PRNGKey(1), batch)
    names, norms = probes.layer_norms(task, variables, batch)
    assert names == ["hidden_0", "head"]
    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    w1, b1 = p["hidden_0"]["kernel"], p["hidden_0"]["bias"]
    w2, b2 = p["head"]["kernel"], p["head"]["bias"]
    x, y = batch["inputs"].astype(np.float64), batch["label"]
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    logits = h @ w2 + b2
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    d_logits = (prob - np.eye(3)[y]) / len(y)  # mean softmax cross-entropy
    d_w2, d_b2 = h.T @ d_logits, d_logits.sum(0)
    d_z = (d_logits @ w2.T) * (z > 0)
    d_w1, d_b1 = x.T @ d_z, d_z.sum(0)
    want = [np.sqrt((d_w1**2).sum() + (d_b1**2).sum()), np.sqrt((d_w2**2).sum() + (d_b2**2).sum())]
    np.testing.assert_allclose(norms, want, rtol=1e-4)


def test_hidden_state_grads_match_numpy_bptt():
    c = base_config()
    c.task.name = "regression"
    c.dtype = "float32"
    c.model = ml_collections.ConfigDict({"name": "rnn_classifier", "num_outputs": 1,
                                         "hidden_size": 3})
    task = probes.make_task(c)
    rng = np.random.default_rng(0)
    B, T, D, H = 4, 6, 2, 3
    batch = {"inputs": rng.normal(size=(B, T, D)).astype(np.float32),
             "targets": rng.normal(size=(B, 1)).astype(np.float32)}
    variables = jax.jit(task.init_variables)(jax.random.PRNGKey(2), batch)
    g_TBH = probes.hidden_state_grads(task, variables, batch)
    chex.assert_shape(g_TBH, (T, B, H))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    cell = next(iter(v for k, v in p.items() if k != "head"))
    cell = cell.get("layer_0", cell)
    w_ih, w_hh, b = cell["w_ih"], cell["w_hh"], cell["b"]
    w_o, b_o = p["head"]["kernel"], p["head"]["bias"]
    x = batch["inputs"].astype(np.float64)
    hs, h = [], np.zeros((B, H))
    for t in range(T):  # Elman: h_t = tanh(x_t W_ih + h_{t-1} W_hh + b)
        h = np.tanh(x[:, t] @ w_ih + h @ w_hh + b)
        hs.append(h)
    out = hs[-1] @ w_o + b_o
    d_h = 2 * (out - batch["targets"]) / out.size @ w_o.T  # mean squared error
    want = [None] * T
    for t in reversed(range(T)):
        want[t] = d_h
        d_h = (d_h * (1 - hs[t] ** 2)) @ w_hh.T
    np.testing.assert_allclose(np.asarray(g_TBH), np.stack(want), rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- studies


STUDIES = sorted(glob.glob(os.path.join(REPO, "experiments", "[!_]*.py")))


@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
@pytest.mark.parametrize("size", ["smoke", None])
def test_every_study_builds_every_run_config(path, size):
    spec = path + (f":{size}" if size else "")
    exp = study.load_experiment(spec)
    assert "Default size" in exp.description  # the docstring states the time on 2 CPU cores
    runs = expand_runs(exp, "/nonexistent/sweep")
    assert runs and (size is None or len(runs) <= 8)
    for run in runs:
        config = study.build_run_config(exp, run)
        assert config.model.name in MODELS.names()
        if size == "smoke":
            assert config.num_train_steps <= 100


def test_perceptron_vs_mlp_smoke_end_to_end_through_launch_with_the_real_loop(tmp_path,
                                                                             launch_cli):
    # launch.py in this process, one run at a time (parallel runs: the test above)
    sweep = str(tmp_path / "pvm")
    spec = "experiments/perceptron_vs_mlp.py:smoke"
    code, out, err = launch_cli(f"--experiment={spec}", f"--workdir={sweep}", "--parallel=1")
    assert code == 0, out[-2000:] + err[-2000:]
    assert "| xor-mlp32 |" in out and "report.md" in out  # the printed table
    rows = {r["trial"]: r for r in _csv(sweep)}
    assert {r["status"] for r in rows.values()} == {"done"}
    assert float(rows["xor-mlp32"]["eval/accuracy"]) > 0.9  # a hidden layer solves XOR ...
    assert float(rows["xor-perceptron"]["eval/accuracy"]) < 0.75  # ... a straight line cannot
    assert int(rows["xor-perceptron"]["num_params"]) == 2 * 2 + 2
    for name in ("perceptron_vs_mlp_accuracy.png", "perceptron_vs_mlp_decision_boundaries.png"):
        assert os.path.getsize(os.path.join(sweep, name)) > 1000
    with np.load(os.path.join(sweep, "xor-mlp32", "seed_0", "probe_decision_boundary.npz")) as z:
        prob, axis = z["prob"], z["axis"]
    # the boundary matches XOR: same-sign quadrants are class 0, opposite signs class 1
    i, j = np.searchsorted(axis, 0.6), np.searchsorted(axis, -0.6)
    assert prob[i, i] < 0.5 and prob[j, j] < 0.5 and prob[i, j] > 0.5 and prob[j, i] > 0.5
    summary = os.path.join(sweep, "xor-mlp32", "seed_0", "summary.json")
    before = os.path.getmtime(summary)
    runner.run_experiment(os.path.join(REPO, spec), sweep, trial=1)  # finished: skipped
    runner.run_experiment(os.path.join(REPO, spec), sweep, report_only=True)
    assert os.path.getmtime(summary) == before
