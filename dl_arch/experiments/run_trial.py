"""Runs one run of an experiment in this process: the child of `run_experiment(parallel>1)`.

    python -m dl_arch.experiments.run_trial --experiment=experiments/x.py:smoke \
        --workdir=/tmp/sweep --index=3

The child rebuilds the grid from the experiment file itself (no pickled configs), so what
it trains is exactly what the parent's report describes.
"""

from __future__ import annotations

import argparse
import logging

from dl_arch.experiments import runner


def main(argv: list[str] | None = None) -> None:
    """Parses the flags and trains run `--index` of the experiment."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment", required=True, help="experiments/<name>.py[:options]")
    parser.add_argument("--workdir", required=True, help="the sweep's directory")
    parser.add_argument("--index", type=int, required=True, help="run number (trial x seed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    exp = runner.load_experiment(args.experiment)
    runs = runner.expand_runs(exp, args.workdir)
    (run,) = runner.select_runs(runs, args.index)
    runner.execute_run(exp, run)


if __name__ == "__main__":
    main()
