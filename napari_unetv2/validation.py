"""Typed validation of configuration dataclasses (training recipes, checkpoint configs).

One checker for both: each field's value must have its annotated type (``int`` is not ``bool`` and
not ``1.5``; a tuple has its length and element types) and lie in its range. Every problem is
collected and reported in one :class:`ConfigError` naming the field, what it must be and what it was,
so ``--set epochs=abc`` or a checkpoint JSON with ``"threshold": 2`` fails before anything is built.
No imports from the package: recipes and checkpoints both use it.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Optional

# A range rule: (test on a value of the right type, description of what is allowed).
Rule = tuple[Callable[[Any], bool], str]


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range; the message lists every problem."""

    def __init__(self, message: str, problems: Optional[list[str]] = None):
        super().__init__(message)
        self.problems = list(problems or [])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is dict:
        return "a mapping"
    if hint is type(None):
        return "null"
    if origin is typing.Union:
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    return getattr(hint, "__name__", str(hint))


def has_type(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (bool, int, float, str, dict, Optional/Union, tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_number(value)
    if hint is type(None):
        return value is None
    if origin is typing.Union:
        return any(has_type(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(has_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(has_type(v, a) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def problems(obj: Any, rules: dict[str, Rule], prefix: str = "") -> list[str]:
    """Every type and range problem of a dataclass instance, as ``field: must be ..., not ...`` lines."""
    hints = typing.get_type_hints(type(obj))
    found = []
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints.get(f.name, Any)
        if dataclasses.is_dataclass(hint):
            continue  # nested dataclasses are checked by their own call
        if not has_type(value, hint):
            found.append(f"{prefix}{f.name} must be {_describe(hint)}, not {value!r}")
            continue
        rule = rules.get(f.name)
        if rule is not None and not rule[0](value):
            found.append(f"{prefix}{f.name} must be {rule[1]}, not {value!r}")
    return found


def raise_if_problems(found: list[str], what: str) -> None:
    if found:
        raise ConfigError(f"{what} is not valid: " + "; ".join(found) + ".", found)


# ---- common range rules ----------------------------------------------------------------------------

def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    def test(v: Any) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return test, f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def each(rule: Rule, count: Optional[tuple[int, int]] = None) -> Rule:
    test, text = rule

    def check(values: Any) -> bool:
        return (count is None or count[0] <= len(values) <= count[1]) and all(test(v) for v in values)

    size = "" if count is None else (f"{count[0]} " if count[0] == count[1] else f"{count[0]}-{count[1]} ")
    return check, f"{size}values each {text}"


def one_of(*choices: Any) -> Rule:
    return (lambda v: v in choices), "one of " + ", ".join(repr(c) for c in choices)


def optional(rule: Rule) -> Rule:
    return (lambda v: v is None or rule[0](v)), f"null or {rule[1]}"


# The image sides a network is trained or run at: the U-Net needs 32; beyond 8192 no GPU holds a batch.
IMAGE_SIDE = between(32, 8192)
CHANNELS = between(1, 1024)
