"""A settings dataclass's values checked against its annotations.

Settings come from ``config.json`` files that people edit by hand and older versions wrote: a
string where a count goes, or a fraction of a filter, must fail naming the setting, not deep
inside torch (or, worse, not at all: the string "abc" is also a sequence of three names).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, Union

import numpy as np

from ..errors import ConfigError


def check_field_types(settings: Any) -> None:
    """Raise a ConfigError naming the first field of dataclass ``settings`` whose value does not
    have its annotated type (numbers must also be finite). A numpy number (a seed drawn by a
    script, say) is taken as the Python number it holds, which config.json can store."""
    hints = typing.get_type_hints(type(settings))
    for field in dataclasses.fields(settings):
        value, kind = getattr(settings, field.name), hints[field.name]
        if isinstance(value, np.generic):
            value = value.item()
            object.__setattr__(settings, field.name, value)  # frozen dataclasses too
        if not _matches(value, kind):
            raise ConfigError(f"{field.name} must be {_describe(kind)}, got {_shown(value)}")


def _matches(value: Any, kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # an integer is a number too; NaN and infinity are no setting
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    return True  # a type this check does not know: the dataclass's own checks decide


def _shown(value: Any) -> str:
    """``value`` as config.json writes it (null, "16", [8.5, 24]), else as Python does."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}"
    names = {
        type(None): "null",
        bool: "true or false",
        int: "a whole number",
        float: "a finite number",
        str: "a string",
    }
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _plural(kind: Any) -> str:
    return {int: "whole numbers", float: "finite numbers", str: "strings", bool: "true or false values"}.get(
        kind, _describe(kind)
    )
