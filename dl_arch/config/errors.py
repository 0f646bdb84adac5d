"""The one error type for mistakes in what a user typed (config, options, overrides, data paths).

`launch.py` prints a `ConfigError` as one line naming the field and the fix; any other
exception is a bug and keeps its traceback (also written to `<workdir>/error.txt`).
It subclasses ValueError so library callers that catch ValueError keep working.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A mistake in the user's input: the message names the field and says how to fix it."""


class LossDiverged(ConfigError):
    """The loss became NaN/Inf or grew absurdly: a learning-rate or data problem, with its step."""
