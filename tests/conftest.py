"""Test-wide settings: the tests' XLA flags, one CPU set per xdist worker, strict rank
promotion, a compilation cache, the repo root on sys.path, and a fixture running launch.py
in-process."""

import os
import sys
import tempfile

from dl_arch.testing import TEST_XLA_FLAGS

# before JAX starts its CPU backend: the options of every test program (see TEST_XLA_FLAGS)
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

# Each xdist worker on CPUs of its own (Linux): XLA then sizes its compile and run thread pools
# to its share instead of every worker's pools contending for all CPUs (three test files on
# 2 cores: 178-192 s -> 150-166 s wall; docs/results/test_suite.md).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
    _cpus = sorted(os.sched_getaffinity(0))
    _index, _count = int(_worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.sched_setaffinity(0, _cpus[_index::_count] or [_cpus[_index % len(_cpus)]])

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
