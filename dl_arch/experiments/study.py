"""An experiment file: loading, validating, and the resolved config of each of its runs.

An experiment is `experiments/<name>.py` with `get_experiment(arg: str | None) -> ConfigDict`:

- `base`: the config every trial starts from, a ConfigDict or a `'configs/x.py:opts'` string;
- `trials`: a list of `{name, overrides: {dotted.field: value}, config?: 'configs/y.py:opts',
  params?: {label: value}, depends_on?: [trial names]}`; `config` replaces `base` for that
  trial, `params` are extra columns for the report (e.g. `{'T': 100}`) that need not be
  config fields; `depends_on` trials finish first (pretraining before fine-tuning), and
  `{workdir}` / `{seed}` in string override values become the sweep's directory and the
  run's seed (`'init_from': '{workdir}/pretrain/seed_{seed}'`);
- `seeds`: the seeds every trial is repeated with (`config.seed`);
- `plots`, `metrics`, `probes`, `title`: what the report shows (see `dl_arch.experiments.report`);
- `default_parallel`: runs trained at once when launch.py gets no `--parallel`;
- `page`: a `module:function` writing the experiment's own page instead of the generic report
  (the quick tour's, `dl_arch.experiments.tour_page`).

These are declared in `EXPERIMENT_FIELDS`; an unknown one is an error. A run's config is
resolved like `launch.py --config`'s (declared defaults, the file, then the overrides and
the seed), so a mistake in any trial fails in one line naming the experiment and trial.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import ml_collections

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import ANY, Field, Fields, suggest
from dl_arch.config.files import load_config_file, load_module, split_spec
from dl_arch.config.resolve import resolve_config
from dl_arch.experiments.runs import Run

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_TRAINER = "dl_arch.train.loop:train_and_evaluate"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.=+-]+$")

# The fields of an experiment file (its `get_experiment` result), with their defaults.
EXPERIMENT_FIELDS: Fields = {
    "title": Field("", "the report's title ('' = the experiment's file name)"),
    "base": Field(None, "the config every trial starts from: a ConfigDict or "
                        "'configs/x.py:opts' (None: every trial names its `config`)", kind=ANY),
    "trials": Field((), "[{name, overrides?, config?, params?, depends_on?}], at least one"),
    "seeds": Field((0,), "the seeds every trial is repeated with (config.seed)",
                   each=Field(0, "a seed")),
    "metrics": Field((), "the report's columns, 'metric:max|min|none'",
                     each=Field("", "a metric")),
    "derived": Field((), "metrics computed from each run's files ({name, kind, metric, ...})"),
    "plots": Field((), "the report's figures ({name, kind, x?, y?, group?, where?, ...})"),
    "probes": Field((), "post-run analyses by name (dl_arch.experiments.probes)",
                    each=Field("", "a probe name")),
    "trainer": Field(DEFAULT_TRAINER, "module:function that trains one run (config, workdir)"),
    "default_parallel": Field(1, "runs trained at once (separate processes) when launch.py "
                                 "is given no --parallel", low=1),
    "page": Field("", "module:function(exp, runs, workdir, command) -> (path, text) writing "
                      "the experiment's page in place of the generic report.md ('': the "
                      "generic one); text is printed before the path"),
}
_SET_BY_LOADER = ("name", "spec", "description")  # added by load_experiment
TRIAL_KEYS = ("name", "overrides", "config", "params", "depends_on")
# the keys each plot kind needs (drawn by dl_arch.experiments.plots)
_PLOT_KEYS = {"metric": ("name", "x", "y"), "bar": ("name", "y"), "curves": ("name", "y"),
              "decision_boundary": ("name",), "layer_grad_norms": ("name",),
              "grad_through_time": ("name",)}


def resolve_path(path: str) -> str:
    """A file path as given, or relative to the repository root when not found as given."""
    if os.path.exists(path):
        return os.path.abspath(path)
    candidate = os.path.join(REPO_ROOT, path)
    if os.path.exists(candidate):
        return candidate
    raise ConfigError(f"file '{path}' not found (relative to {os.getcwd()} or {REPO_ROOT})")


def load_config(spec: str, flag: str = "--config") -> ml_collections.ConfigDict:
    """`configs/x.py[:opts]` (found from the working directory or the repository root) ->
    what its `get_config(opts)` returns, not yet resolved."""
    path, arg = split_spec(spec)
    located = resolve_path(path)
    return load_config_file(located if arg is None else f"{located}:{arg}", flag)


def as_list(value: Any, cast: Callable[[Any], Any] = lambda v: v) -> list[Any]:
    """An experiment option as a list: a tuple, one value, or 'a/b/c' (commas split options)."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = [v for v in value.split("/") if v]
    else:
        items = [value]
    return [cast(v) for v in items]


def load_experiment(spec: str) -> ml_collections.ConfigDict:
    """Loads and validates `experiments/x.py[:opts]`; adds `name`, `spec` and `description`."""
    path, arg = split_spec(spec)
    module = load_module(resolve_path(path), "--experiment")
    if not hasattr(module, "get_experiment"):
        raise ConfigError(f"--experiment: '{path}' has no get_experiment(arg) function")
    exp = module.get_experiment(arg)
    if not isinstance(exp, ml_collections.ConfigDict):
        exp = ml_collections.ConfigDict(exp)
    exp.name = os.path.splitext(os.path.basename(path))[0]
    exp.spec = spec
    exp.description = (module.__doc__ or "").strip()
    validate_experiment(exp)
    return exp


def validate_experiment(exp: ml_collections.ConfigDict) -> None:
    """Fills the experiment's declared defaults and fails early, in one line naming the
    field, on an unknown field or a malformed grid, plot or probe list."""
    name = exp.name if "name" in exp else "?"
    where = f"experiment '{name}'"
    for key in exp:
        if key not in EXPERIMENT_FIELDS and key not in _SET_BY_LOADER:
            raise ConfigError(f"{where}: field '{key}' is unknown"
                              f"{suggest(key, list(EXPERIMENT_FIELDS))}; known: "
                              f"{', '.join(EXPERIMENT_FIELDS)}")
    for key, field in EXPERIMENT_FIELDS.items():
        if key not in exp:
            exp[key] = field.default
            continue
        try:
            field.check(exp[key], key)
        except ConfigError as e:
            raise ConfigError(f"{where}: {str(e).removeprefix('config.')}") from None
    if not exp.title:
        exp.title = name
    if not exp.trials:
        raise ConfigError(f"{where}: `trials` is empty; add at least one trial")
    if not exp.seeds:
        raise ConfigError(f"{where}: `seeds` is empty; use e.g. [0]")
    for i, plot in enumerate(exp.plots):
        kind = plot.get("kind", "metric")
        if kind not in _PLOT_KEYS:
            raise ConfigError(f"{where}: plots[{i}].kind '{kind}' is unknown; use one of "
                              f"{', '.join(_PLOT_KEYS)}")
        missing = [k for k in _PLOT_KEYS[kind] if k not in plot]
        if missing or not _NAME_RE.match(str(plot.get("name", ""))):
            raise ConfigError(f"{where}: plots[{i}] ({kind}) needs "
                              f"{', '.join(_PLOT_KEYS[kind])} and a file-safe name; missing "
                              f"{missing or ['a valid name']}")
    if exp.probes:
        # deferred: the probes import jax, which experiment files and the report do not need
        from dl_arch.experiments.probes import PROBES

        unknown = [p for p in exp.probes if p not in PROBES]
        if unknown:
            raise ConfigError(f"{where}: probes {unknown} are unknown; known: "
                              f"{', '.join(PROBES)}")
    _validate_trials(exp, where)


def _validate_trials(exp: ml_collections.ConfigDict, where: str) -> None:
    seen = set()
    for i, t in enumerate(exp.trials):
        trial = t.get("name", "")
        if not trial or not _NAME_RE.match(trial):
            raise ConfigError(f"{where}: trials[{i}].name '{trial}' must be non-empty and use "
                              "only letters, digits and _.=+-")
        if trial in seen:
            raise ConfigError(f"{where}: trial name '{trial}' appears twice")
        seen.add(trial)
        unknown = set(t) - set(TRIAL_KEYS)
        if unknown:
            raise ConfigError(f"{where}: trials[{i}] has unknown keys {sorted(unknown)}; "
                              f"allowed: {', '.join(TRIAL_KEYS)}")
        for dep in t.get("depends_on", ()) or ():
            if dep not in seen:
                raise ConfigError(f"{where}: trial '{trial}' depends_on '{dep}', which is not "
                                  "an earlier trial; list it before")
        if exp.base is None and not t.get("config"):
            raise ConfigError(f"{where}: trial '{trial}' has no `config` and the experiment "
                              "has no `base`; set one of them")


def build_run_config(exp: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
    """The resolved, locked config of one run: base or trial config, its overrides, its seed.

    Resolution is the one `launch.py --config` uses: a whole section or a name given as an
    override (`{"model": {...}}`, `"dataset.name"`) applies first, then the fields.
    """
    spec = run.config_spec or (exp.base if isinstance(exp.base, str) else None)
    where = f"experiment '{exp.name}', trial '{run.trial}'"
    if spec:
        raw, source = load_config(spec, flag=f"{where}: config"), spec
    else:
        raw, source = exp.base, f"{where}: base"
    overrides = list(run.overrides.items()) + [("seed", run.seed)]
    try:
        return resolve_config(raw, overrides, source=source,
                              override_source=f"in the overrides of {where}")
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}"
                          ) from None
