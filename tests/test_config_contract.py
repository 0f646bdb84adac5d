"""The run contract: every declared field is visible, overridable from the command line and
checked; a misspelt field fails with a suggestion; malformed input is one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import ANY, Field
from dl_arch.config.files import load_config_file
from dl_arch.config.resolve import Text, declarations, describe_config, resolve_config
from dl_arch.registry import DATASETS, MODELS, TASKS
from dl_arch.testing import REPO, load_config

XOR = "configs/mlp_xor.py:smoke"


def _resolve(spec: str, *overrides: tuple[str, str]):
    """What launch.py does with `--config=spec --config.<path>=<text> ...`."""
    return resolve_config(load_config(spec), [(p, Text(t)) for p, t in overrides], source=spec)


def _other_value(field: Field):
    """A valid value of `field` that differs from its default where one exists."""
    d, t = field.default, field.type
    if field.choices:
        others = [c for c in field.choices if c != d]
        return others[0] if others else d
    if t is bool:
        return not d
    if t in (int, float):
        base = d if d is not None else (field.low if field.low is not None else 1)
        for candidate in (base + 1, base + 0.5 if t is float else base, base):
            candidate = t(candidate)
            try:
                return field.check(candidate, "x")
            except ConfigError:
                continue
        return d
    if t is str:
        return (d or "") + "x" if d is not None else "x"
    if t is tuple:
        if d:
            return tuple(d[:1])
        if field.each is not None:
            return (field.each.default,)
        return ("a",)
    return d


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value)


def _override_every_field(base: list[tuple[str, str]], section: str) -> int:
    """Overrides each declared field of `section` in turn; checks the value lands. Count."""
    decl = declarations(_resolve(XOR, *base))[section]
    n = 0
    for key, field in decl.items():
        if key in ("name", "evaluators") or field.type in (ANY, dict):
            continue  # evaluators takes registered names: tests/test_ema_and_evaluators.py
        value = _other_value(field)
        path = f"{section}.{key}" if section else key
        config = _resolve(XOR, *base, (path, _as_text(value)))
        got = config[section][key] if section else config[key]
        assert got == value, (path, value, got)
        n += 1
    return n


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_field_is_overridable_from_the_command_line(name):
    _override_every_field([("model.name", name)], "model")


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_field_is_overridable_from_the_command_line(name):
    _override_every_field([("dataset.name", name)], "dataset")


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_field_is_overridable_from_the_command_line(name):
    _override_every_field([("task.name", name)], "task")
    config = _resolve(XOR, ("task.name", name))
    for section in declarations(config):
        if section not in ("", "task", "model", "dataset", "optimizer"):
            _override_every_field([("task.name", name)], section)


def test_trainer_and_optimizer_fields_are_overridable():
    assert _override_every_field([], "optimizer") >= 10
    assert _override_every_field([], "") >= 15
    config = _resolve(XOR, ("num_train_steps", "7"), ("dtype", "bfloat16"),
                      ("freeze", "('^head',)"), ("dataset.num_train_examples", "100"))
    assert (config.num_train_steps, config.dtype, config.freeze) == (7, "bfloat16", ("^head",))
    assert config.dataset.num_train_examples == 100  # a None default takes a value


def test_every_declared_field_has_a_meaning_and_a_valid_default():
    for section, fields in declarations(_resolve(XOR)).items():
        for key, field in fields.items():
            assert field.doc.strip(), (section, key)
            field.check(field.default, f"{section}.{key}")


def test_documented_field_is_settable_and_the_config_is_locked():
    config = _resolve(XOR, ("task.label_smoothing", "0.1"))
    assert config.task.label_smoothing == 0.1
    with pytest.raises(AttributeError):
        config.task.new_field = 1


def test_resolution_is_idempotent():
    config = _resolve(XOR, ("model.width", "8"))
    assert resolve_config(config).to_dict() == config.to_dict()


def test_misspelt_field_in_a_config_file_fails_with_a_suggestion(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(
        "from configs.mlp_xor import get_config as base\n\n"
        "def get_config(arg=None):\n"
        "    c = base('smoke')\n"
        "    c.task.label_smoothng = 0.1\n"
        "    return c\n")
    with pytest.raises(ConfigError, match=r"config.task.label_smoothng \(in .*typo.py\) is not a "
                                          r"field of task 'classification'; did you mean "
                                          r"'label_smoothing'\?"):
        resolve_config(load_config_file(str(path)), source=str(path))


@pytest.mark.parametrize("spec, task_field", [
    ("configs/mlp_xor.py:smoke", "config.task.label_smoothing = 0.0"),
    ("configs/dcgan_shapes.py:smoke", "config.task.discriminator_steps = 1"),
    ("configs/detector_shapes.py:smoke", "config.task.pos_iou = 0.5"),
    ("configs/lstm_text.py:smoke", "config.task.carry_state = "),
])
def test_print_config_lists_task_fields_with_defaults_and_meanings(spec, task_field):
    text = describe_config(_resolve(spec))
    line = next((x for x in text.splitlines() if x.startswith(task_field)), None)
    assert line is not None, text
    assert "  # " in line and len(line.split("  # ", 1)[1]) > 5


def test_print_config_through_launch_prints_everything_and_trains_nothing(launch_cli, tmp_path):
    code, out, err = launch_cli(f"--config={XOR}", "--print_config", "--config.task.top_k=3",
                                f"--workdir={tmp_path / 'w'}")
    assert code == 0, err
    assert "config.task.top_k = 3" in out
    assert "config.optimizer.learning_rate = 0.01" in out
    assert "config.dataset.noise = 0.03" in out
    assert not (tmp_path / "w").exists()


# Each malformed input of issue 20 is a ConfigError whose one line names its field.
MALFORMED = [
    (("configs/mlp_xor.py:width=abc",), (), "width='abc'"),
    ((XOR,), (("dtype", "float17"),), "config.dtype='float17'"),
    ((XOR,), (("model.width", "0"),), "config.model.width=0"),
    ((XOR,), (("model.num_classes", "0"),), "config.model.num_classes=0"),
    ((XOR,), (("model.width", "-3"),), "config.model.width=-3"),
    ((XOR,), (("model.depth", "-1"),), "config.model.depth=-1"),
    ((XOR,), (("model.dropout", "1.5"),), "config.model.dropout=1.5"),
    ((XOR,), (("freeze", '("[",)'),), "config.freeze[0]='['"),
    ((XOR,), (("max_checkpoints_to_keep", "0"),), "config.max_checkpoints_to_keep=0"),
    ((XOR,), (("eval_batch_size", "-2"),), "config.eval_batch_size=-2"),
    ((XOR,), (("eval_max_batches", "-1"),), "config.eval_max_batches=-1"),
    ((XOR,), (("dataset.num_eval_examples", "0"),), "config.dataset.num_eval_examples=0"),
    ((XOR,), (("optimizer.learning_rate", "-1"),), "config.optimizer.learning_rate=-1"),
    ((XOR,), (("optimizer.warmup_steps", "-10"),), "config.optimizer.warmup_steps=-10"),
    ((XOR,), (("optimizer.clip_norm", "-1"),), "config.optimizer.clip_norm=-1"),
    ((XOR,), (("optimizer.weight_decay", "-0.1"),), "config.optimizer.weight_decay=-0.1"),
    ((XOR,), (("optimizer.b1", "1.5"),), "config.optimizer.b1=1.5"),
    ((XOR,), (("progress", "fancy"),), "config.progress='fancy'"),
    ((XOR,), (("dataset.num_workers", "-1"),), "config.dataset.num_workers=-1"),
    ((XOR,), (("optimizer.learning_rate", "fast"),), "config.optimizer.learning_rate='fast'"),
    ((XOR,), (("dataset.nosie", "0.1"),), "config.dataset.nosie"),
    ((XOR,), (("modle.width", "3"),), "no section 'modle'; did you mean 'model'?"),
]


@pytest.mark.parametrize("spec, overrides, names", MALFORMED)
def test_malformed_input_is_one_config_error_naming_the_field(spec, overrides, names):
    with pytest.raises(ConfigError) as info:
        _resolve(spec[0], *overrides)
    assert names in str(info.value), str(info.value)


def test_launch_prints_config_errors_in_one_line_and_flag_errors_too(launch_cli, tmp_path):
    for args, expected in [
        ((f"--config={XOR}", "--config.model.dropout=1.5", f"--workdir={tmp_path}/a"),
         "config.model.dropout=1.5 is out of range"),
        ((f"--config={XOR}", "--num_processes=2", f"--workdir={tmp_path}/b"),
         "--num_processes=2 needs --coordinator_address"),
        ((f"--config={XOR}", f"--workdir={tmp_path}/file"), "is a file; give a directory"),
        ((f"--config={XOR}", "--workdir=/proc/dl_arch_not_writable"), "cannot be written"),
        (("--config=configs/lenet5_shapes.py:smoke", "--config.dataset.image_size=8",
          "--config.model.stem=small", f"--workdir={tmp_path}/c"), "at least"),
        ((f"--config={XOR}", "--config.task.name=regression", f"--workdir={tmp_path}/d"),
         "config.task.name='regression' needs batch key(s) targets"),
        ((f"--config={XOR}", "--sample", f"--workdir={tmp_path}/e"),
         f"--workdir={tmp_path}/e holds no checkpoint"),
    ]:
        (tmp_path / "file").write_text("")
        code, out, err = launch_cli(*args)
        assert code == 2, out + err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1], err
        assert "Traceback" not in err, err


def test_a_bug_keeps_its_traceback_with_file_and_line_and_writes_error_txt(tmp_path):
    """A user's own model with a typo inside: a traceback naming their file, and error.txt."""
    (tmp_path / "buggy_model.py").write_text(
        "import flax.linen as nn\n"
        "from dl_arch.registry import register_model\n\n"
        "@register_model('buggy_mlp')\n"
        "class BuggyMLP(nn.Module):\n"
        "    num_classes: int = 2  # outputs\n"
        "    hidden: int = 8  # width\n"
        "    dtype: object = None\n"
        "    param_dtype: object = None\n\n"
        "    @nn.compact\n"
        "    def __call__(self, x, *, train=False):\n"
        "        return nn.Dense(self.num_classes)(nn.Dense(self.hiden)(x))\n")
    (tmp_path / "buggy.py").write_text(
        "import buggy_model  # noqa: F401 - registers the model\n"
        "from configs.mlp_xor import get_config as base\n\n"
        "def get_config(arg=None):\n"
        "    c = base('smoke')\n"
        "    c.model = dict(name='buggy_mlp', num_classes=2)\n"
        "    return c\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    workdir = tmp_path / "w"
    p = subprocess.run([sys.executable, "launch.py", f"--config={tmp_path / 'buggy.py'}",
                        f"--workdir={workdir}"], cwd=REPO, capture_output=True, text=True,
                       timeout=180, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" in p.stderr and "buggy_model.py\", line 13" in p.stderr, p.stderr
    assert "AttributeError" in p.stderr and "hiden" in p.stderr
    error = (workdir / "error.txt").read_text()
    assert "buggy_model.py\", line 13" in error and "config: " in error and "step: " in error


def test_a_module_that_fails_to_import_shows_its_import_error(monkeypatch, tmp_path):
    from dl_arch.registry import Registry

    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("from dl_arch.registry import Registry\n")
    (pkg / "bad.py").write_text("import no_such_module_for_dl_arch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("model", "brokenpkg", "config.model.name")
    for _ in range(2):  # the second lookup shows it again, not "unknown model"
        with pytest.raises(ModuleNotFoundError, match="no_such_module_for_dl_arch"):
            registry.get("anything")
