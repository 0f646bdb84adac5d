"""The one entry point: a training run, a sampling call, or a whole experiment.

    python launch.py                                    # the quick tour, in runs/quick_tour
    python launch.py --config=configs/mlp_xor.py:smoke --workdir=runs/x [--config.seed=1]
    python launch.py --config=configs/mlp_xor.py --print_config   # every field, then exit
    python launch.py --config=configs/lstm_text.py --workdir=runs/lm --sample
    python launch.py --experiment=experiments/optimizers.py --workdir=runs/opt [--parallel=2]

It only parses flags, starts the (multi-host) runtime and calls into `dl_arch`. A mistake
in what was typed (a `ConfigError`) prints one line naming the field and the fix, exit 2;
anything else is a bug: its traceback is printed and kept in `<workdir>/error.txt`.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import traceback

from absl import flags

DEFAULT_CONFIG = "configs/mlp_shapes.py"
DEFAULT_EXPERIMENT = "experiments/quick_tour.py"
DEFAULT_EXPERIMENT_WORKDIR = "runs/quick_tour"  # fixed, so a second start reuses the first
OVERRIDE = "--config."

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "configs/<name>.py[:options]; fields are overridden with "
                    "--config.<field>=<value> (see --print_config)")
flags.DEFINE_string("workdir", None, "run directory (default: runs/quick_tour for the "
                    "quick tour, else a fresh one under runs/)")
flags.DEFINE_bool("print_config", False, "print the resolved config of --config, every field "
                  "with its meaning, and exit without training")
flags.DEFINE_string("experiment", None, "experiments/<name>.py[:options]: run a whole study")
flags.DEFINE_integer("parallel", None, "experiments: trials run at once as separate processes "
                     "(default: the experiment's default_parallel, 1 for most)", lower_bound=1)
flags.DEFINE_string("trial", "", "experiments: run only run K, or a trial by name (job arrays)")
flags.DEFINE_bool("report_only", False, "experiments: only (re)write the report")
flags.DEFINE_bool("sample", False, "sample from the trained model in --workdir (config.sample.*)")
flags.DEFINE_string("coordinator_address", "", "multi-host: host:port of process 0")
flags.DEFINE_integer("num_processes", 0, "multi-host: number of processes", lower_bound=0)
flags.DEFINE_integer("process_id", -1, "multi-host: index of this process", lower_bound=-1)

_RUN = {"workdir": None, "config": None}  # what error.txt names when a bug stops the run


def _fresh_workdir(name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{name}-{stamp}")


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates `--config.<field>=<value>` arguments (typed later by their declarations)."""
    from dl_arch.config.errors import ConfigError

    rest, overrides = [argv[0]], []
    for arg in argv[1:]:
        if arg.startswith(OVERRIDE):
            path, sep, value = arg[len(OVERRIDE):].partition("=")
            if not sep or not path:
                raise ConfigError(f"{arg}: give a value, as in {OVERRIDE}<field>=<value>")
            overrides.append((path, value))
        else:
            rest.append(arg)
    return rest, overrides


def _parse(argv: list[str]) -> list[tuple[str, str]]:
    """Parses the flags; returns the config overrides. Mistakes are ConfigErrors."""
    from dl_arch.config.errors import ConfigError

    rest, overrides = split_overrides(argv)
    try:
        FLAGS(rest)
    except flags.Error as e:
        raise ConfigError(str(e).strip().splitlines()[0]) from None
    if FLAGS.num_processes > 1 and not FLAGS.coordinator_address:
        raise ConfigError(f"--num_processes={FLAGS.num_processes} needs --coordinator_address="
                          f"<host:port> of process 0 (and --process_id on each process)")
    if overrides and FLAGS.experiment:
        raise ConfigError("--config.<field> overrides apply to --config runs; an experiment "
                          "sets fields in its trials' overrides")
    return overrides


def check_workdir(workdir: str) -> None:
    """A workdir that is a file or cannot be written fails now, in one line."""
    from dl_arch.config.errors import ConfigError

    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is a file; give a directory")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} cannot be written ({e.strerror}); give a "
                          f"writable directory") from None


def resolved_config(overrides: list[tuple[str, str]]):
    """The run's config: declared defaults, then the config file, then the overrides."""
    from dl_arch.config.files import load_config_file, split_spec
    from dl_arch.config.resolve import Text, resolve_config

    spec = FLAGS.config or DEFAULT_CONFIG
    raw = load_config_file(spec)
    return resolve_config(raw, [(path, Text(value)) for path, value in overrides],
                          source=split_spec(spec)[0])


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from dl_arch.train.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX makes its CPU client (host_memory)
    overrides = _parse(argv)

    if FLAGS.print_config:
        from dl_arch.config.resolve import describe_config

        print(describe_config(resolved_config(overrides)))
        return 0

    from dl_arch.train.compilation_cache import enable_compilation_cache
    from dl_arch.train.distributed import initialize

    cache = enable_compilation_cache()
    logging.info("compilation cache: %s", cache or "off")
    initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)

    if FLAGS.experiment or (FLAGS.config is None and os.path.exists(DEFAULT_EXPERIMENT)
                            and not FLAGS.sample and not overrides):
        from dl_arch.experiments.runner import run_experiment

        spec = FLAGS.experiment or DEFAULT_EXPERIMENT
        from dl_arch.config.files import split_spec

        default = DEFAULT_EXPERIMENT_WORKDIR if not FLAGS.experiment else None
        workdir = FLAGS.workdir or default or _fresh_workdir(
            os.path.basename(split_spec(spec)[0])[:-3])
        check_workdir(workdir)
        _RUN.update(workdir=workdir, config=spec)
        logging.info("experiment %s -> %s", spec, workdir)
        trial = int(FLAGS.trial) if FLAGS.trial.lstrip("-").isdigit() else (FLAGS.trial or None)
        run_experiment(spec, workdir, FLAGS.parallel, trial, FLAGS.report_only)
        return 0

    config = resolved_config(overrides)
    workdir = FLAGS.workdir or _fresh_workdir(f"{config.model.name}-{config.dataset.name}".replace(":", "_"))
    _RUN.update(workdir=workdir, config=FLAGS.config or DEFAULT_CONFIG)

    if FLAGS.sample:
        from dl_arch.train.loop import restore_for_inference

        task, variables = restore_for_inference(config, workdir)
        task.sample(variables, config.sample, workdir)
        return 0

    from dl_arch.train.loop import train_and_evaluate

    check_workdir(workdir)
    logging.info("workdir: %s", os.path.abspath(workdir))
    summary = train_and_evaluate(config, workdir)
    shown = {k: round(float(v), 4) for k, v in summary.items()
             if k.startswith("eval/") or k == "preempted"}
    logging.info("done: %s; results in %s", shown, os.path.abspath(workdir))
    return 0


def write_error_file(exc: BaseException) -> str | None:
    """Writes the traceback, the config and the step to `<workdir>/error.txt`; its path."""
    workdir = _RUN["workdir"]
    if not workdir or not os.path.isdir(workdir):
        return None
    path = os.path.join(workdir, "error.txt")
    try:
        with open(path, "w") as f:
            f.write(f"time: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
                    f"host: {socket.gethostname()} pid {os.getpid()}\n"
                    f"command: {' '.join(sys.argv)}\n"
                    f"config: {_RUN['config']}\n"
                    f"step: {getattr(exc, 'dl_arch_step', 'before the first step')}\n\n")
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def cli() -> None:
    """Runs main: a user's mistake is one line (exit 2); a bug keeps its traceback (exit 1)."""
    from dl_arch.config.errors import ConfigError

    try:
        sys.exit(main(sys.argv))
    except ConfigError as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - a bug: full traceback, kept beside the run
        traceback.print_exc()
        path = write_error_file(e)
        if path:
            print(f"the traceback above is also in {path}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
