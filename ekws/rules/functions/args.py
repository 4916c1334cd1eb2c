"""Argument checks and conversions shared by the function families (eKuiper's ``cast`` and
``validator_funcs.go``): literal kinds refused at rule creation, values converted per record."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..expr import EvalError, kind_of
from .registry import NOT_CONST, Arg, Validate

__all__ = ["STRING", "NUMBER", "INT", "expect", "go_str", "to_float", "to_int", "number"]

# What a literal may not be, by the expected kind (ast.IsNumericArg ... in eKuiper).
STRING = "string"
NUMBER = "number - float or int"
INT = "int"


def _wrong(expected: str, value: Any) -> bool:
    if value is NOT_CONST or value is None:
        return False
    kind = type(value)
    if expected == STRING:
        return kind in (int, float, bool)
    if expected == NUMBER:
        return kind in (str, bool)
    if expected == INT:
        return kind in (float, str, bool)
    return False


def expect(*kinds: str) -> Validate:
    """A validator: literal argument ``i`` must not contradict ``kinds[i]`` (the last repeats)."""
    def validate(args: Sequence[Arg]) -> None:
        for i, arg in enumerate(args):
            kind = kinds[min(i, len(kinds) - 1)]
            if _wrong(kind, arg.value):
                raise ValueError(f"Expect {kind} type for parameter {i + 1}")
    return validate


def go_str(value: Any) -> str:
    """Go's ``fmt.Sprintf("%v", v)`` for JSON values: eKuiper's ``cast.ToStringAlways``."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _go_float(value)
    if kind is list:
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if kind is dict:
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def to_float(value: Any, name: str) -> float:
    """A number as float (eKuiper's CONVERT_SAMEKIND): anything else is an error."""
    if type(value) is int or type(value) is float:
        return float(value)
    raise EvalError(f"{name}: only float64 or int is supported, got {kind_of(value)} {value!r:.40}")


def number(value: Any, name: str) -> Any:
    if type(value) is int or type(value) is float:
        return value
    raise EvalError(f"{name}: only float64 or int is supported, got {kind_of(value)} {value!r:.40}")


def to_int(value: Any, name: str) -> int:
    """An integer (a float with no fraction too, as eKuiper's STRICT cast of JSON numbers)."""
    if type(value) is int:
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    raise EvalError(f"{name}: expect an int, got {kind_of(value)} {value!r:.40}")
