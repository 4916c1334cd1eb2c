"""The values and functions of ekws's Go templates: Go's ``fmt`` printing, truth, and sprig's functions.

Split from :mod:`ekws.actions.template` (which parses and runs a template):
this module is what an action reaches when a template calls a function or
prints a value. :data:`FUNCTIONS` maps each supported name to its
implementation; a name missing here is refused when the rule is created.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .jsonout import dumps

__all__ = ["FUNCTIONS", "MISSING", "NO_VALUE", "TemplateError", "go_float", "go_format", "truth"]

NO_VALUE = "<no value>"


class TemplateError(ValueError):
    """A template that does not parse, names an unsupported feature, or fails on a record."""


class _Missing:
    """A map key that is not there: prints ``<no value>`` as Go does, false in conditions."""

    def __repr__(self) -> str:
        return NO_VALUE


MISSING: Any = _Missing()


# --------------------------------------------------------------------------- formatting as Go's fmt %v


def go_float(value: float) -> str:
    """``fmt.Sprint(float64)``: Go's ``%g``, shortest digits (exponent form below 1e-4 and from 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # where the decimal point goes
    digits = digits.rstrip("0") or "0"
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped
    head = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:  # strconv's 'g' with the shortest precision decides with 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{head}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return head + digits + "0" * (point - len(digits))
    return f"{head}{digits[:point]}.{digits[point:]}"


def go_format(value: Any) -> str:
    """A value as ``{{.}}`` prints it (Go's ``fmt`` ``%v``)."""
    if value is None or value is MISSING:
        return NO_VALUE
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_inner(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else go_format(value)


# --------------------------------------------------------------------------- functions


def truth(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float, str, bytes, list, tuple, dict)):
        return bool(value)
    return True


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TemplateError(f"{name}: expected a number, got {go_format(value)!r}")
    return value


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, (int, float)) \
                and not isinstance(b, bool):
            return op(a, b)
        if isinstance(a, str) and isinstance(b, str):
            return op(a, b)
        raise TemplateError(f"{name}: incompatible types for comparison: {go_format(a)!r}, {go_format(b)!r}")
    return compare


def _eq(a: Any, *others: Any) -> bool:
    for b in others:
        if a is MISSING or b is MISSING or a is None or b is None:
            if (a in (None, MISSING)) == (b in (None, MISSING)):
                return True
            continue
        if isinstance(a, bool) != isinstance(b, bool):
            raise TemplateError(f"eq: incompatible types for comparison: {go_format(a)!r}, {go_format(b)!r}")
        if a == b:
            return True
    return False


def _int64(value: Any) -> int:
    """sprig's ``toInt64``: numbers truncate, numeric strings parse, the rest is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def _float64(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING) if isinstance(key, str) else MISSING
        elif isinstance(value, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise TemplateError(f"index: cannot index a list with {go_format(key)!r}")
            if not 0 <= key < len(value):
                raise TemplateError(f"index: index out of range: {key}")
            value = value[key]
        elif value is None or value is MISSING:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError(f"index: cannot index {go_format(value)!r}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, bytes)):
        return len(value)
    raise TemplateError(f"len of {go_format(value)!r}")


def _json(value: Any) -> str:
    return dumps(None if value is MISSING else value).decode("utf-8")


def _b64(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raw = dumps(value)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = go_format(value).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _div(a: Any, b: Any) -> int:
    x, y = _int64(a), _int64(b)
    if y == 0:
        raise TemplateError("div: integer divide by zero")
    return int(x / y)  # Go truncates toward zero


def _mod(a: Any, b: Any) -> int:
    x, y = _int64(a), _int64(b)
    if y == 0:
        raise TemplateError("mod: integer divide by zero")
    return int(math.fmod(x, y))


_GO_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([vdsfgqtxXe%])")


def _printf(fmt: str, *args: Any) -> str:
    """Go's ``printf`` for the common verbs (%v %d %s %f %g %e %q %t %x %%)."""
    values = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if not values:
            return f"%!{kind}(MISSING)"
        value = values.pop(0)
        if kind in "vst":
            text = go_format(value)
        elif kind == "q":
            text = _json(go_format(value))
        elif kind == "d":
            text = str(_int64(value))
        elif kind in "xX":
            text = format(_int64(value), kind)
        else:
            spec = f"{precision or 6}"
            text = format(_float64(value), f".{spec}{kind}")
        if not width:
            return text
        if "-" in flags:
            return text.ljust(int(width))
        if "0" in flags and kind in "dfgexX" and text[:1] in "-+":
            return text[0] + text[1:].rjust(int(width) - 1, "0")
        return text.rjust(int(width), "0" if "0" in flags and kind in "dfgexX" else " ")

    return _GO_VERB.sub(verb, fmt)


def _default(default: Any, *given: Any) -> Any:
    value = given[0] if given else None
    return value if truth(value) else default


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's built-ins
    "and": lambda *a: next((v for v in a if not truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if truth(v)), a[-1]),
    "not": lambda a: not truth(a),
    "len": _len, "index": _index,
    "print": lambda *a: "".join(go_format(v) for v in a),
    "println": lambda *a: " ".join(go_format(v) for v in a) + "\n",
    "printf": _printf,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": _compare("lt", lambda a, b: a < b), "le": _compare("le", lambda a, b: a <= b),
    "gt": _compare("gt", lambda a, b: a > b), "ge": _compare("ge", lambda a, b: a >= b),
    # eKuiper's own
    "json": _json, "base64": _b64,
    # sprig's, the common ones
    "toJson": _json, "b64enc": _b64,
    "b64dec": lambda s: base64.b64decode(go_format(s)).decode("utf-8", "replace"),
    "add": lambda *a: sum(_int64(v) for v in a), "add1": lambda a: _int64(a) + 1,
    "sub": lambda a, b: _int64(a) - _int64(b), "mul": lambda *a: math.prod(_int64(v) for v in a),
    "div": _div, "mod": _mod,
    "max": lambda *a: max(_int64(v) for v in a), "min": lambda *a: min(_int64(v) for v in a),
    "addf": lambda *a: sum(_float64(v) for v in a), "subf": lambda a, b: _float64(a) - _float64(b),
    "mulf": lambda *a: math.prod(_float64(v) for v in a),
    "divf": lambda a, b: _float64(a) / _float64(b) if _float64(b) else math.inf,
    "round": lambda a, p=0: round(_float64(a), _int64(p)),
    "int": _int64, "int64": _int64, "float64": _float64, "toString": go_format,
    "upper": lambda s: go_format(s).upper(), "lower": lambda s: go_format(s).lower(),
    "trim": lambda s: go_format(s).strip(), "title": lambda s: go_format(s).title(),
    "quote": lambda *a: " ".join(_json(go_format(v)) for v in a),
    "squote": lambda *a: " ".join(f"'{go_format(v)}'" for v in a),
    "contains": lambda sub, s: go_format(sub) in go_format(s),
    "hasPrefix": lambda p, s: go_format(s).startswith(go_format(p)),
    "hasSuffix": lambda p, s: go_format(s).endswith(go_format(p)),
    "replace": lambda old, new, s: go_format(s).replace(go_format(old), go_format(new)),
    "join": lambda sep, items: go_format(sep).join(go_format(v) for v in (items or [])),
    "default": _default, "empty": lambda a: not truth(a),
    "list": lambda *a: list(a),
}
