"""Declared config fields: a default, a one-line meaning, and the values a field accepts.

A task, dataset or the trainer declares the fields it reads as `{name: Field(...)}`; a
model's linen dataclass fields are its declaration (`model_fields` reads their defaults and
trailing comments). `resolve` fills defaults, parses command-line text and checks values
against these declarations, so code reads `config.task.top_k`, never `.get("top_k", 5)`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import re
from collections.abc import Mapping
from typing import Any

from dl_arch.config.errors import ConfigError

Fields = dict[str, "Field"]
ANY = object  # kind of a field that takes any literal value


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: default, meaning and accepted values.

    kind is inferred from the default (bool, int, float, str, tuple, dict) unless given;
    a None default means "optional" and then `kind` says what a set value must be.
    low/high bound numbers (inclusive unless *_open); `each` checks every item of a tuple.
    """

    default: Any
    doc: str
    kind: Any = None
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    each: Field | None = None
    nullable: bool = False

    @property
    def type(self) -> Any:
        if self.kind is not None:
            return self.kind
        d = self.default
        if isinstance(d, bool):
            return bool
        for t in (int, float, str):
            if isinstance(d, t):
                return t
        if isinstance(d, (tuple, list)):
            return tuple
        if isinstance(d, Mapping):
            return dict
        return ANY

    @property
    def optional(self) -> bool:
        return self.nullable or self.default is None

    def describe(self) -> str:
        """The meaning plus the accepted values, for --print_config."""
        extra = []
        if self.choices:
            extra.append(" | ".join(map(str, self.choices)))
        if self.low is not None and self.high is not None:
            lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
            extra.append(f"in {lo}{_short(self.low)}, {_short(self.high)}{hi}")
        elif self.low is not None:
            extra.append(f"{'>' if self.low_open else '>='} {_short(self.low)}")
        elif self.high is not None:
            extra.append(f"{'<' if self.high_open else '<='} {_short(self.high)}")
        return self.doc + (f" ({'; '.join(extra)})" if extra else "")

    def parse(self, text: str, path: str) -> Any:
        """Command-line text -> a checked value of this field's kind."""
        raw = text.strip()
        if self.optional and raw in ("None", "none", "null"):
            return None
        t = self.type
        try:
            if t is str:
                value = _unquote(text)  # a string keeps its whitespace (a prompt of "\n")
            elif t is bool:
                low = raw.lower()
                if low not in BOOL_WORDS:
                    raise ConfigError(f"config.{path}={raw!r} is not a boolean; use true or false")
                value = BOOL_WORDS[low]
            elif t is int:
                value = _literal(raw)
            elif t is float:
                value = float(raw)
            elif t is tuple:
                value = _literal(raw, fallback=True)
                if isinstance(value, str):
                    value = tuple(s.strip() for s in value.split(",") if s.strip())
                elif not isinstance(value, (tuple, list)):
                    value = (value,)
            else:
                value = _literal(raw, fallback=True)
        except (ValueError, SyntaxError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"config.{path}={raw!r} is not a valid {_kind_name(t)}; "
                              f"give e.g. {self.example()}") from None
        return self.check(value, path)

    def example(self) -> str:
        return repr(self.default) if self.default is not None else f"a {_kind_name(self.type)}"

    def check(self, value: Any, path: str) -> Any:
        """Raises ConfigError naming `config.<path>` unless `value` is acceptable; returns it
        normalised (lists become tuples, integral floats of int fields become ints)."""
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"config.{path}=None: this field needs a {_kind_name(self.type)} "
                              f"(default {self.default!r})")
        t = self.type
        if t is bool and not isinstance(value, bool):
            value = _coerce_bool(value, path)
        elif t is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"config.{path}={value!r} must be an integer")
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"config.{path}={value!r} must be a number")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"config.{path}={value!r} must be finite")
        elif t is str and not isinstance(value, str):
            raise ConfigError(f"config.{path}={value!r} must be a string")
        elif t is tuple:
            if not isinstance(value, (tuple, list)):
                raise ConfigError(f"config.{path}={value!r} must be a sequence, e.g. "
                                  f"{self.example()}")
            value = tuple(_plain(v) for v in value)
        elif t is dict and not isinstance(value, Mapping):
            raise ConfigError(f"config.{path}={value!r} must be a dict")
        if self.choices is not None and value not in self.choices:
            close = suggest(str(value), [str(c) for c in self.choices])
            raise ConfigError(f"config.{path}={value!r} is not one of "
                              f"{', '.join(map(str, self.choices))}{close}")
        if self.low is not None or self.high is not None:
            self._check_range(value, path)
        if self.each is not None and isinstance(value, tuple):
            value = tuple(self.each.check(v, f"{path}[{i}]") for i, v in enumerate(value))
        return value

    def _check_range(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open
                                              else value > self.high)
        if too_low or too_high:
            raise ConfigError(f"config.{path}={value!r} is out of range: {self.describe()}")


# command-line words for a bool: config fields and config files' options both read them
BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
              "false": False, "0": False, "no": False, "off": False}


def _coerce_bool(value: Any, path: str) -> bool:
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"config.{path}={value!r} must be true or false")


def _plain(v: Any) -> Any:
    return tuple(_plain(x) for x in v) if isinstance(v, list) else v


def _short(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _kind_name(t: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", tuple: "sequence",
            dict: "dict"}.get(t, "value")


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _literal(raw: str, fallback: bool = False) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if fallback:
            return raw
        raise


def suggest(name: str, known: list[str]) -> str:
    """'; did you mean 'x'?' for the closest known name, or ''."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def filled(section: Any, fields: Fields) -> Any:
    """`section` with every declared field present (defaults for the missing ones), for
    library callers that pass a partial section; a complete section is returned as it is."""
    import ml_collections

    if all(k in section for k in fields):
        return section
    data = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    for key, field in fields.items():
        data.setdefault(key, field.default)
    return ml_collections.ConfigDict(data)


def collect(cls: type, attr: str) -> dict[str, Any]:
    """Merges the dict class attribute `attr` over the class hierarchy (subclasses win)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get(attr, {}) or {})
    return out


# ----------------------------------------------------------------------------- models

# Checks that hold for a model field of this name in every family (the dataclass declares
# the default; these say which values make sense). A model may add its own in `field_checks`.
_COUNT = dict(low=1)
_PROBABILITY = dict(low=0.0, high=1.0, high_open=True)
_POSITIVE = dict(low=0.0, low_open=True)
MODEL_FIELD_RULES: dict[str, dict[str, Any]] = {
    **{n: _COUNT for n in ("num_classes", "width", "hidden_size", "num_heads", "embed_dim",
                           "emb_dim", "mlp_dim", "latent_dim", "patch_size", "vocab_size",
                           "num_layers", "num_encoder_layers", "num_decoder_layers", "max_len",
                           "head_width", "qkv_dim", "base_features", "features_root",
                           "input_size", "output_size", "image_size", "num_outputs", "horizon",
                           "src_vocab_size", "tgt_vocab_size", "attention_dim", "readout_dim",
                           "encoder_layers", "type_vocab_size", "num_kv_heads", "last_channels",
                           "kernel_size", "num_stages", "generator_features",
                           "discriminator_features", "classifier_width", "pooled_size",
                           "time_chunk", "unroll")},
    **{n: dict(low=0) for n in ("depth", "head_depth", "prior_components", "extra_levels",
                                "backbone_width", "bos_id", "eos_id", "pad_id")},
    **{n: _PROBABILITY for n in ("dropout", "dropout_rate", "attention_dropout", "embed_dropout",
                                 "bn_momentum")},
    **{n: _POSITIVE for n in ("width_multiplier", "layer_norm_eps", "init_std",
                              "anchor_size_factor")},
    "prior_prob": dict(low=0.0, high=1.0, low_open=True, high_open=True),
    "hidden_sizes": dict(each=Field(1, "a layer width", low=1)),
    "features": dict(each=Field(1, "a number of channels", low=1)),
    "stage_sizes": dict(each=Field(1, "blocks in a stage", low=1)),
    "backbone_stage_sizes": dict(each=Field(1, "blocks in a stage", low=1)),
    "feature_stages": dict(each=Field(1, "a stage number (1-based)", low=1)),
    **{n: dict(each=Field(1.0, "a positive number", **_POSITIVE))
       for n in ("anchor_sizes", "anchor_scales", "aspect_ratios")},
}
_NOT_CONFIG = ("parent", "name", "dtype", "param_dtype")
_CONFIG_TYPES = (bool, int, float, str, tuple, list, type(None))


@functools.cache
def model_fields(cls: type) -> Fields:
    """The config fields of a linen model class: its dataclass fields with plain defaults.

    Meanings come from the field's trailing comment in the source (or its annotation);
    fields whose default is not a plain value (functions, dtypes) are not config fields.
    A registered variant (`functools.partial` of a class) has its keywords as defaults.
    """
    if isinstance(cls, functools.partial):
        base = model_fields(cls.func)
        return {k: dataclasses.replace(f, default=_plain(cls.keywords[k]))
                if k in cls.keywords else f for k, f in base.items()}
    docs = _field_comments(cls)
    extra = collect(cls, "field_checks")
    out: Fields = {}
    for f in dataclasses.fields(cls):
        if f.name in _NOT_CONFIG or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if not isinstance(default, _CONFIG_TYPES):
            continue
        if isinstance(default, list):
            default = tuple(default)
        rules = {**MODEL_FIELD_RULES.get(f.name, {}), **extra.get(f.name, {})}
        kind = _annotation_kind(f.type) if default is None else None
        if isinstance(default, bool) or (kind is None and default is None):
            rules = {k: v for k, v in rules.items() if k == "choices"}
        out[f.name] = Field(default, docs.get(f.name) or f"({f.type})", **{"kind": kind, **rules})
    return out


def _annotation_kind(annotation: Any) -> Any:
    text = str(annotation)
    for word, t in (("bool", bool), ("int", int), ("float", float), ("str", str),
                    ("Sequence", tuple), ("tuple", tuple)):
        if re.search(rf"\b{word}\b", text):
            return t
    return None


_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


def _field_comments(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.split(".")[0] != "dl_arch":
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            m = _COMMENT.match(line)
            if m:
                docs[m.group(1)] = m.group(2)
    return docs
