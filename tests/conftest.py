"""Test-wide settings: the tests' XLA flags, strict rank promotion, a compilation cache, the
repo root on sys.path, and a fixture running launch.py in-process."""

import os
import sys
import tempfile

from dl_arch.testing import TEST_XLA_FLAGS

# before JAX starts its CPU backend: the options of every test program (see TEST_XLA_FLAGS)
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

jax.config.update("jax_numpy_rank_promotion", "raise")

# One persistent compilation cache for the whole suite, its worker processes and the launch.py
# processes it starts: the same programs (a smoke config's step, a model's forward) compile once.
from dl_arch.train.compilation_cache import ENV, enable_compilation_cache  # noqa: E402

enable_compilation_cache(os.environ.get(ENV, os.path.join(tempfile.gettempdir(),
                                                          "dl_arch_test_compilation_cache")))


@pytest.fixture
def repo_root() -> str:
    return ROOT


@pytest.fixture
def launch_cli(capsys, monkeypatch):
    """Runs `launch.py ARGS...` in this process: (exit code, stdout, stderr), as a subprocess
    would return them, without paying a Python and JAX start-up per call."""
    import launch

    monkeypatch.chdir(ROOT)

    def run(*args: str) -> tuple[int, str, str]:
        launch.FLAGS.unparse_flags()
        launch._RUN.update(workdir=None, config=None)
        monkeypatch.setattr(sys, "argv", ["launch.py", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            launch.cli()
        out, err = capsys.readouterr()
        return info.value.code, out, err

    return run
