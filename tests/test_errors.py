"""Bad input fails early in one line that names the field and the fix."""

import os
import subprocess
import sys

import pytest

from dl_arch.testing import REPO

SMOKE = "--config=configs/mlp_xor.py:smoke"


@pytest.fixture
def error_line(launch_cli, tmp_path):
    """The last stderr line of a launch that must fail as a user's mistake (exit code 2)."""
    def run(*args):
        code, out, err = launch_cli(*args, f"--workdir={tmp_path / 'w'}")
        assert code == 2, out + err
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and "Traceback" not in err, err
        return last
    return run


def test_a_mistake_in_a_real_process_is_one_line_and_exit_code_2(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), SMOKE,
                        "--config.model.name=mlq", f"--workdir={tmp_path}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: unknown model 'mlq'"), p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args, expected", [
    ((SMOKE, "--config.model.name=mlq"),
     "unknown model 'mlq' in config.model.name; did you mean 'mlp'? (known: "),
    ((SMOKE, "--config.dataset.name=xo"),
     "unknown dataset 'xo' in config.dataset.name; did you mean 'xor'? (known: "),
    ((SMOKE, "--config.optimizer.name=adagrad"),
     "config.optimizer.name='adagrad' is not one of sgd, momentum, nesterov"),
    ((SMOKE, "--config.task.name=clasification"), "unknown task 'clasification' in config.task.name"),
    (("--config=configs/does_not_exist.py",), "--config: file 'configs/does_not_exist.py' does not exist"),
    ((SMOKE, "--config.optimizer.learning_rate=fast"),
     "config.optimizer.learning_rate='fast' is not a valid number"),
    ((SMOKE, "--config.model.widht=3"),
     "config.model.widht (on the command line) is not a field of model 'mlp'; did you mean 'width'?"),
    (("--config=configs/mlp_xor.py:smok",),
     "unknown config option 'smok'; did you mean 'smoke'? (known options:"),
    ((SMOKE, "--config.batch_size=30", "--config.grad_accum_steps=4"),
     "config.batch_size=30 must divide by config.grad_accum_steps=4"),
    ((SMOKE, "--config.model.activation=swish"), "config.model.activation='swish' is not one of relu, tanh"),
    ((SMOKE, "--config.dataset.name=tfds:no_such_dataset"),
     "config.dataset.name='tfds:no_such_dataset' split 'train' could not be opened"),
])
def test_one_line_errors(error_line, args, expected):
    assert expected in error_line(*args)


def test_known_names_are_listed(error_line):
    line = error_line(SMOKE, "--config.model.name=nope")
    assert "mlp" in line and "perceptron" in line


def test_unprepared_tfds_dataset_says_what_to_install(monkeypatch):
    import ml_collections
    import tensorflow_datasets as tfds

    from dl_arch.data.tfds_source import tfds_source

    def missing_tensorflow(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(tfds, "data_source", missing_tensorflow)
    config = ml_collections.ConfigDict({"name": "tfds:mnist", "data_dir": "/tmp/none"})
    with pytest.raises(ValueError, match=r"needs TensorFlow \(missing module tensorflow\): run "
                                         r"pip install 'dl_arch\[tfds\]'"):
        tfds_source(config, "train")


def test_labels_beyond_the_models_classes_and_target_width_mismatch_are_one_line():
    from dl_arch.config.errors import ConfigError
    from dl_arch.testing import first_batch, load_config
    from dl_arch.train.trainer import build_task

    config = load_config("configs/mlp_xor.py:smoke")
    config.model.num_classes = 1  # xor labels are 0 and 1
    task = build_task(config)
    with pytest.raises(ConfigError, match=r"label 1, but config.model.num_classes=1; set "
                                          r"config.model.num_classes to at least 2"):
        task.check_batch(first_batch(load_config("configs/mlp_xor.py:smoke")))
    config = load_config("configs/mlp_regression.py:smoke,outputs=3")
    with pytest.raises(ConfigError, match=r"1 target value\(s\), but the model outputs "
                                          r"config.model.num_classes=3; set it to 1"):
        first_batch(config)
