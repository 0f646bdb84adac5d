"""Test-wide settings: strict rank promotion, quiet logs, repo root on sys.path."""

import os
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def repo_root() -> str:
    return ROOT
