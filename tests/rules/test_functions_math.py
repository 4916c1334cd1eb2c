"""Mathematical functions, ported from eKuiper's ``internal/binder/function/funcs_math_test.go``
(TestFuncMath, TestConvFunc, TestRoundFunc) and ``docs/en_US/sqls/functions/mathematical_functions.md``."""

from __future__ import annotations

import math
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.functions import REGISTRY, lookup
from ekws.rules.sql import EvalError, SQLError


@pytest.mark.parametrize(("name", "args", "expected"), [
    # TestFuncMath (funcs_math_test.go), the cases for -10 and 10.1
    ("abs", (-10,), 10), ("abs", (10.1,), 10.1), ("abs", (-10.1,), 10.1),
    ("ceil", (10.1,), 11), ("ceil", (-10.1,), -10), ("ceiling", (10.1,), 11),
    ("floor", (10.1,), 10), ("floor", (-10.1,), -11),
    ("exp", (1,), math.e), ("ln", (math.e,), 1.0), ("log", (100,), 2.0), ("log", (2, 8), 3.0),
    ("sqrt", (16,), 4.0), ("power", (2, 10), 1024.0), ("pow", (2, 0.5), math.sqrt(2)),
    ("bitand", (5, 3), 1), ("bitor", (5, 3), 7), ("bitxor", (5, 3), 6), ("bitnot", (5,), -6),
    ("acos", (1,), 0.0), ("asin", (0,), 0.0), ("atan", (0,), 0.0), ("atan2", (0, 1), 0.0),
    ("cos", (0,), 1.0), ("cosh", (0,), 1.0), ("sin", (0,), 0.0), ("sinh", (0,), 0.0),
    ("tan", (0,), 0.0), ("tanh", (0,), 0.0), ("cot", (math.pi / 4,), 1.0000000000000002),
    ("mod", (10, 3), 1.0), ("mod", (-10, 3), -1.0), ("sign", (-3.5,), -1), ("sign", (0,), 0),
    ("sign", (2,), 1), ("radians", (180,), math.pi), ("degrees", (math.pi,), 180.0),
    # TestRoundFunc
    ("round", (16, 2), 16.0), ("round", (25.987, 2), 25.99), ("round", (25.919, 1), 25.9),
    ("round", (9.9999, 3), 10.0), ("round", (56788.34, -3), 57000), ("round", (10.5,), 11.0),
    ("round", (-10.5,), -11.0),
    # TestConvFunc
    ("conv", ("a", 16, 2), "1010"), ("conv", ("6E", 18, 8), "172"), ("conv", ("-17", 10, -18), "-H"),
    ("conv", ("-17", 10, 18), "2D3FGB0B9CG4BD1H"), ("conv", ("+18aZ", 7, 36), "1"),
    ("conv", ("12F", -10, 16), "C"), ("conv", ("  FF ", 16, 10), "255"), ("conv", ("aa", 10, 2), "0"),
    ("conv", ("random_str", 10, 8), "0"), ("conv", ("a6a", 1, 8), None),
])
def test_math_functions(name: str, args: tuple[Any, ...], expected: Any) -> None:
    got = call(name, *args)
    assert got == pytest.approx(expected) if type(expected) is float else got == expected


def test_every_math_function_of_null_is_null() -> None:
    """TestFuncMathNil: each function given a null answers null."""
    for name, fn in REGISTRY.items():
        if fn.family == "math" and fn.min_args:
            assert call(name, *([None] * fn.min_args)) is None, name


def test_pi_and_rand() -> None:
    assert value("pi()") == math.pi
    assert 0 <= value("rand()") < 1


@pytest.mark.parametrize(("expr", "error"), [
    ("round(1, 2, 3)", r"round: Expect 1 to 2 arguments but found 3\."),  # TestRoundFunc
    ("round('1', a)", "round: Expect number - float or int type for parameter 1"),  # TestRoundFunc
    ("abs(true)", "abs: Expect number - float or int type for parameter 1"),
    ("bitand(1.5, 1)", "bitand: Expect int type for parameter 1"),
    ("pi(1)", r"pi: Expect 0 arguments but found 1\."),
])
def test_refused_at_rule_creation(expr: str, error: str) -> None:
    with pytest.raises(SQLError, match=error):
        value(expr)


@pytest.mark.parametrize(("name", "args", "error"), [
    ("abs", ("x",), "abs: only float64 or int is supported"),
    ("sqrt", (-1,), "The argument must be a positive number but got -1"),
    ("ln", (0,), "The argument must be a strictly positive number but got 0"),
    ("mod", (1, 0), "division by zero"),
    ("round", (1, [1]), "expect an int"),
])
def test_run_time_errors_fail_the_record(name: str, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(EvalError, match=error):
        call(name, *args)


def test_ceiling_is_ceil() -> None:
    assert lookup("CEILING").impl is lookup("ceil").impl


def test_round_keeps_the_sign_and_non_finite_values() -> None:
    """Go's math.Round: half away from zero, -0 stays -0, NaN and infinities are themselves."""
    assert math.copysign(1.0, call("round", -0.01, 1)) == -1.0
    assert math.copysign(1.0, call("round", -0.0)) == -1.0
    assert [call("round", x, 1) for x in (2.25, -2.25, 0.05, -0.05)] == [2.3, -2.3, 0.1, -0.1]
    assert math.isnan(call("round", math.nan, 1)) and call("round", -math.inf) == -math.inf
