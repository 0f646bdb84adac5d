"""The one entry point: a training run, a sampling call, or a whole experiment.

    python launch.py                                    # the default main job (offline)
    python launch.py --config=configs/mlp_xor.py:smoke --workdir=runs/x [--config.seed=1]
    python launch.py --config=configs/lstm_text.py --workdir=runs/lm --sample
    python launch.py --experiment=experiments/optimizers.py --workdir=runs/opt [--parallel=2]

It only parses flags, starts the (multi-host) runtime and calls into `dl_arch`.
"""

from __future__ import annotations

import ast
import datetime
import logging
import os
import sys

from absl import flags
from ml_collections import config_flags

DEFAULT_CONFIG = "configs/mlp_shapes.py"
DEFAULT_EXPERIMENT = "experiments/quick_tour.py"

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "configs/<name>.py[:options]", lock_config=False)
flags.DEFINE_string("workdir", None, "run directory (default: a fresh one under runs/)")
flags.DEFINE_string("experiment", None, "experiments/<name>.py[:options]: run a whole study")
flags.DEFINE_integer("parallel", 1, "experiments: trials run at once as separate processes")
flags.DEFINE_string("trial", "", "experiments: run only run K, or a trial by name (job arrays)")
flags.DEFINE_bool("report_only", False, "experiments: only (re)write the report")
flags.DEFINE_bool("sample", False, "sample from the trained model in --workdir (config.sample.*)")
flags.DEFINE_string("coordinator_address", "", "multi-host: host:port of process 0")
flags.DEFINE_integer("num_processes", 0, "multi-host: number of processes")
flags.DEFINE_integer("process_id", -1, "multi-host: index of this process")


def _fresh_workdir(name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{name}-{stamp}")


def _innermost(e: BaseException) -> BaseException:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__
    return e


def _parse(argv: list[str]) -> None:
    """Parses flags; every mistake becomes one line naming the flag and the fix."""
    for arg in argv[1:]:
        for flag in ("--config=", "--experiment="):
            if arg.startswith(flag):
                path = arg[len(flag):].split(":", 1)[0]
                if not os.path.isfile(path):
                    raise ValueError(f"{flag[:-1]}: file '{path}' does not exist "
                                     f"(run from the repository root; configs live in configs/)")
    try:
        FLAGS(argv)
    except AttributeError as e:
        text = str(e)
        try:
            text = str(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            pass
        field = "; ".join(x.strip() for x in text.splitlines())
        raise ValueError(f"--config override: no such field {field}") from e
    except Exception as e:  # noqa: BLE001 - absl wraps config errors in several types
        root = _innermost(e)
        first = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
        where = str(e).strip().splitlines()[0].split(":")[0]
        raise ValueError(f"{where}: {first}") from e


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _parse(argv)

    from dl_arch.train.distributed import initialize

    initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)

    if FLAGS.experiment or (FLAGS.config is None and os.path.exists(DEFAULT_EXPERIMENT)
                            and not FLAGS.sample):
        from dl_arch.experiments.runner import run_experiment

        spec = FLAGS.experiment or DEFAULT_EXPERIMENT
        workdir = FLAGS.workdir or _fresh_workdir(os.path.basename(spec.split(":")[0])[:-3])
        logging.info("experiment %s -> %s", spec, workdir)
        trial = int(FLAGS.trial) if FLAGS.trial.lstrip("-").isdigit() else (FLAGS.trial or None)
        run_experiment(spec, workdir, FLAGS.parallel, trial, FLAGS.report_only)
        return 0

    config = FLAGS.config
    if config is None:
        from configs.mlp_shapes import get_config

        config = get_config(None)
    workdir = FLAGS.workdir or _fresh_workdir(f"{config.model.name}-{config.dataset.name}".replace(":", "_"))

    if FLAGS.sample:
        from dl_arch.train.loop import restore_for_inference

        task, variables = restore_for_inference(config, workdir)
        if "workdir" not in config.sample:
            config.sample.workdir = workdir  # where a task may write what it samples
        task.sample(variables, config.sample)
        return 0

    from dl_arch.train.loop import train_and_evaluate

    logging.info("workdir: %s", os.path.abspath(workdir))
    summary = train_and_evaluate(config, workdir)
    shown = {k: round(float(v), 4) for k, v in summary.items()
             if k.startswith("eval/") or k == "preempted"}
    logging.info("done: %s; results in %s", shown, os.path.abspath(workdir))
    return 0


def cli() -> None:
    """Runs main with one-line errors for bad input (no traceback)."""
    try:
        sys.exit(main(sys.argv))
    except (ValueError, FloatingPointError, KeyError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
