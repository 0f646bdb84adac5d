"""The quick tour (`python launch.py` with no flags): its page, its table, and its reuse.

The smoke tour runs once (each family's smoke size, through launch.py in this process);
its page, its table and a second start (which must train nothing) are checked on what it left.
"""

import os
import re

from dl_arch.experiments import runner, study, tour_page
from dl_arch.experiments.runs import SUMMARY_FILE, expand_runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = "experiments/quick_tour.py:smoke"


def test_smoke_tour_writes_its_page_says_what_each_figure_means_and_reuses_its_runs(
        tmp_path, launch_cli, capsys):
    # one test, so parallel test workers never run the tour twice; launch.py runs in this
    # process, one run at a time (the parallel runner has its own tests in test_experiments)
    workdir = str(tmp_path / "quick_tour")
    code, out, err = launch_cli(f"--experiment={SMOKE}", f"--workdir={workdir}", "--parallel=1")
    assert code == 0, out[-3000:] + err[-3000:]
    check_page(workdir, out)
    check_table(out)
    check_reuse(workdir, capsys)


def check_page(workdir: str, stdout: str) -> None:
    """report.md holds every family's pictures (and the GPT's text); its path is printed last."""
    page = os.path.join(workdir, "report.md")
    assert stdout.strip().splitlines()[-1].endswith(f"report: {os.path.abspath(page)}")
    text = open(page).read()
    for trial in study.load_experiment(SMOKE).trials:
        section = text.split(f"## {trial['params']['family']}: ")[1].split("\n## ")[0]
        for name, *_ in trial["params"]["pictures"]:
            if name.endswith(".txt"):  # generated text is shown, not drawn
                assert re.search(r"```text\n.+\n```", section, re.S), trial["name"]
                continue
            target = f"pictures/{trial['name']}-{os.path.basename(name)}"
            assert f"]({target})" in section or f'src="{target}"' in section, name
            assert os.path.getsize(os.path.join(workdir, target)) > 1000, target


def check_table(stdout: str) -> None:
    """Each family's headline with its direction and what it is read against."""
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:5] == ["family", "what runs", "headline", "value", "what the value means"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [r[0] for r in rows] == ["perceptron/MLP", "CNN", "RNN", "Transformer",
                                    "autoencoder", "GAN", "detection", "speech"]
    for r in rows:
        assert r[3][-1] in "↑↓", r  # the value with its direction
        assert "better" in r[4] and "?" not in r[4], r  # baselines and floors are filled in
    gan = next(r for r in rows if r[0] == "GAN")
    assert "real-vs-real floor" in gan[4] and "Fréchet" in gan[2]


def check_reuse(workdir: str, capsys) -> None:
    """A second start trains nothing and says it reuses the finished runs."""
    runs = expand_runs(study.load_experiment(SMOKE), workdir)
    before = [os.path.getmtime(os.path.join(r.workdir, SUMMARY_FILE)) for r in runs]
    capsys.readouterr()
    runner.run_experiment(SMOKE, workdir, parallel=None)
    out = capsys.readouterr().out
    assert f"reusing {len(runs)} finished run(s) of {len(runs)} from {workdir}" in out
    assert "delete" in out
    assert [os.path.getmtime(os.path.join(r.workdir, SUMMARY_FILE)) for r in runs] == before


def test_meaning_fills_the_row_and_marks_what_is_missing():
    template = "real-vs-real floor {eval/frechet_real_floor:.1f}, baseline {tour/x:.2f}"
    row = {"eval/frechet_real_floor": 2.88, "status": "done"}
    assert tour_page.meaning(template, row) == "real-vs-real floor 2.9, baseline ?"


def test_launch_with_no_flags_runs_the_tour_in_a_fixed_workdir_at_its_own_parallelism(
        launch_cli, monkeypatch):
    import launch

    calls = []
    monkeypatch.setattr(runner, "run_experiment", lambda *a: calls.append(a))
    monkeypatch.setattr(launch, "check_workdir", lambda workdir: None)
    code, _, err = launch_cli()
    assert code == 0, err
    spec, workdir, parallel = calls[0][:3]
    assert (spec, workdir, parallel) == (launch.DEFAULT_EXPERIMENT, "runs/quick_tour", None)
    code, _, err = launch_cli(f"--experiment={SMOKE}", "--workdir=/tmp/x", "--parallel=1")
    assert code == 0, err
    assert calls[1][1:3] == ("/tmp/x", 1)
    exp = study.load_experiment(launch.DEFAULT_EXPERIMENT)
    assert exp.default_parallel == max(1, min(2, os.cpu_count() or 1))
