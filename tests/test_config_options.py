"""`configs.base.parse_options`: the text after the colon in `--config=configs/x.py:...`,
each value typed by its option's default, bad ones refused in one line; bools read the same
words as a config field's command-line text."""

import pytest

from configs.base import parse_options
from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field


@pytest.mark.parametrize("text,expected", [
    ("smoke", True), ("smoke=True", True), ("smoke=False", False), ("smoke=1", True),
    ("smoke=0", False), ("smoke=true", True), ("smoke=no", False), ("smoke=ON", True)])
def test_bool_options_take_flags_numbers_and_words(text, expected):
    assert parse_options(text).smoke is expected


def test_values_take_their_defaults_types():
    o = parse_options("steps=200,lr=1,name=run2,width=32", steps=100, lr=0.1, name="run",
                      width=None)
    assert (o.steps, o.lr, o.name, o.width) == (200, 1.0, "run2", 32)
    assert isinstance(o.lr, float)
    assert parse_options("", steps=100).steps == 100


@pytest.mark.parametrize("text,message", [
    ("smoke=2", r"smoke=2 must be a bool \(True/False or 1/0\) like its default False"),
    ("smoke=maybe", r"smoke='maybe' must be a bool"),
    ("steps=1.5", r"steps=1.5 must be an int like its default 100"),
    ("stpes=3", r"unknown config option 'stpes'.*steps")])
def test_bad_options_fail_in_one_line_naming_the_option(text, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_options(text, steps=100)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text,expected", [("true", True), ("On", True), ("1", True),
                                           ("no", False), ("off", False), ("0", False)])
def test_a_bool_field_reads_the_same_words(text, expected):
    assert Field(False, "a flag").parse(text, "model.flag") is expected
    assert parse_options(f"smoke={text}").smoke is expected


def test_a_bool_field_refuses_other_text_in_one_line():
    with pytest.raises(ConfigError, match=r"config.model.flag='maybe' is not a boolean"):
        Field(False, "a flag").parse("maybe", "model.flag")
