"""Mathematical functions: eKuiper's ``funcs_math.go`` (docs ``mathematical_functions.md``).

Arguments must be numbers (a literal string or boolean is refused when the
rule is created; a record's is a failed record); any null gives null. A
result outside the real numbers (``sqrt(-1)``, ``ln(0)``) is an error for the
record rather than NaN, since JSON has no NaN.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from ..expr import EvalError
from .args import INT, NUMBER, expect, go_str, number, to_float, to_int
from .registry import Arg, register

_N = expect(NUMBER)
_I = expect(INT)


# eKuiper's answer where the result is not a real number: acos, asin and cot give null
# (NaN in Go), ln and sqrt its error text; the others an ekws error (JSON has no NaN).
_NAN_NULL = frozenset(("acos", "asin", "cot"))
_DOMAIN = {"ln": "The argument must be a strictly positive number but got {}",
           "log": "The argument must be a strictly positive number but got {}",
           "sqrt": "The argument must be a positive number but got {}"}


def _real(name: str, fn: Callable[[float], float]) -> Callable[[Any], Any]:
    def call(x: Any) -> Any:
        value = to_float(x, name)
        try:
            result = fn(value)
        except (ValueError, OverflowError, ZeroDivisionError) as exc:
            if name in _NAN_NULL and isinstance(exc, ValueError):
                return None
            if name in _DOMAIN and isinstance(exc, ValueError):
                raise EvalError(_DOMAIN[name].format(go_str(x))) from None
            if name == "cot":
                raise EvalError("out-of-range error") from None
            raise EvalError(f"{name}({x!r:.40}): {exc}") from None
        if math.isnan(result):
            if name in _NAN_NULL:
                return None
            raise EvalError(f"{name}({x!r:.40}) is not a finite number")
        if math.isinf(result):
            text = "out-of-range error" if name == "cot" else f"{name}({x!r:.40}) is not a finite number"
            raise EvalError(text)
        return result
    return call


for _name, _fn in {
    "acos": math.acos, "asin": math.asin, "atan": math.atan, "cos": math.cos, "cosh": math.cosh,
    "exp": math.exp, "ln": math.log, "sin": math.sin, "sinh": math.sinh, "sqrt": math.sqrt,
    "tan": math.tan, "tanh": math.tanh, "radians": math.radians, "degrees": math.degrees,
    "cot": lambda x: 1 / math.tan(x),
}.items():
    register(_name, 1, validate=_N, family="math")(_real(_name, _fn))


@register("abs", 1, validate=_N, family="math")
def abs_(x: Any) -> Any:
    return abs(number(x, "abs"))


@register("ceiling", 1, validate=_N, family="math")
def ceiling(x: Any) -> Any:
    return math.ceil(number(x, "ceiling"))


register("ceil", 1, validate=_N, family="math")(ceiling)


@register("floor", 1, validate=_N, family="math")
def floor(x: Any) -> Any:
    return math.floor(number(x, "floor"))


def _round_bind(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
    """``round(x, 2)``: the scale computed once, a float rounded inline."""
    places = args[1].value if len(args) > 1 else 0
    if type(places) is not int or not -300 <= places <= 300:
        return round_
    scale, floor = 10.0 ** places, math.floor

    def round_fixed(x: Any, _digits: Any = 0) -> Any:
        # Half away from zero; a negative keeps its sign (-0.01 rounds to -0.0, as Go's).
        if type(x) is float and -1e290 < x < 1e290:
            if x > 0:
                return floor(x * scale + 0.5) / scale
            if x < 0:
                return -(floor(0.5 - x * scale) / scale)
            return x  # 0.0 and -0.0 as they are
        return round_(x, places)
    return round_fixed


@register("round", 1, 2, validate=expect(NUMBER), bind=_round_bind, family="math")
def round_(x: Any, digits: Any = 0) -> Any:
    x = number(x, "round")
    places = to_int(digits, "round") if type(digits) is not int else digits
    # Half away from zero, as Go's math.Round (Python rounds half to even).
    if places > 300:
        return x  # nothing left to round (eKuiper falls back to big floats: the same value)
    if places < -300:
        return 0 if type(x) is int else 0.0
    scale = 10.0 ** places
    if not math.isfinite(abs(x) * scale):
        return x  # an infinity or NaN rounds to itself, as Go's math.Round
    result = math.copysign(math.floor(abs(x) * scale + 0.5) / scale, x)
    return int(result) if places <= 0 and type(x) is int else result


@register("sign", 1, validate=_N, family="math")
def sign(x: Any) -> int:
    value = number(x, "sign")
    return 1 if value > 0 else -1 if value < 0 else 0


@register("atan2", 2, validate=_N, family="math")
def atan2(y: Any, x: Any) -> float:
    return math.atan2(to_float(y, "atan2"), to_float(x, "atan2"))


@register("power", 2, validate=_N, family="math")
def power(x: Any, y: Any) -> float:
    try:
        result = math.pow(to_float(x, "power"), to_float(y, "power"))
    except (ValueError, OverflowError) as exc:
        raise EvalError(f"power: {exc}") from None
    return result


register("pow", 2, validate=_N, family="math")(power)


@register("mod", 2, validate=_N, family="math")
def mod(x: Any, y: Any) -> float:
    divisor = to_float(y, "mod")
    if divisor == 0:
        raise EvalError("mod: division by zero")
    return math.fmod(to_float(x, "mod"), divisor)


@register("log", 1, 2, validate=_N, family="math")
def log(x: Any, base: Any = None) -> Any:
    if base is None:
        return _real("log", math.log10)(x)
    return _real("log", lambda v: math.log(v) / math.log(to_float(x, "log")))(base)


@register("pi", 0, family="math")
def pi() -> float:
    return math.pi


@register("rand", 0, family="math")
def rand() -> float:
    return random.random()  # noqa: S311 - not for security


def _bits(name: str, fn: Callable[[int, int], int]) -> Callable[[Any, Any], int]:
    return lambda a, b: fn(to_int(a, name), to_int(b, name))


register("bitand", 2, validate=_I, family="math")(_bits("bitand", lambda a, b: a & b))
register("bitor", 2, validate=_I, family="math")(_bits("bitor", lambda a, b: a | b))
register("bitxor", 2, validate=_I, family="math")(_bits("bitxor", lambda a, b: a ^ b))


@register("bitnot", 1, validate=_I, family="math")
def bitnot(a: Any) -> int:
    return ~to_int(a, "bitnot")


_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _conv_check(args: Sequence[Arg]) -> None:
    """eKuiper's: the number is any value (read as text); the bases must be integers."""
    for i in (1, 2):
        value = args[i].value
        if type(value) in (float, str, bool):
            raise ValueError(f"Expect integer type for parameter {i + 1}")


@register("conv", 3, validate=_conv_check, family="math")
def conv(value: Any, from_base: Any, to_base: Any) -> Any:
    """MySQL's CONV, as eKuiper ports it: the longest valid prefix is read (none: 0), a
    negative base is signed, and a negative number in an unsigned base is 64-bit two's
    complement; a base outside 2-36 gives null."""
    source, target = to_int(from_base, "conv"), to_int(to_base, "conv")
    if not (2 <= abs(source) <= 36 and 2 <= abs(target) <= 36):
        return None
    text = go_str(value).strip().upper()
    negative = text.startswith("-")
    text = text[1:] if text[:1] in "+-" else text
    n = 0
    for char in text:
        digit = _DIGITS.find(char)
        if digit < 0 or digit >= abs(source):
            break
        n = min(n * abs(source) + digit, 2 ** 64 - 1)
    if source < 0 and n >= 2 ** 63:
        n = 2 ** 63 - 1  # a signed source saturates
    if negative:
        n = -n
    if target > 0 and n < 0:
        n &= 2 ** 64 - 1
    digits, sign, n = [], "-" if n < 0 else "", abs(n)
    while True:
        n, rem = divmod(n, abs(target))
        digits.append(_DIGITS[rem])
        if n == 0:
            break
    return sign + "".join(reversed(digits))
