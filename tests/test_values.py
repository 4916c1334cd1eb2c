"""One value system (ekws.values): rule cast() and a stream schema read number text alike.

The grammar is eKuiper's cast (pkg/cast/cast.go ToFloat64/ToInt with CONVERT_ALL, i.e.
Go's strconv.ParseFloat and ParseInt); the "100" -> 100 case is from pkg/cast/cast_test.go
TestToFloatResult, the underscore and special cases from Go's strconv atof_test.go.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from helpers.functions import call

from ekws.errors import DecodeError
from ekws.rules.expr import EvalError
from ekws.schema import FieldType, convert_value
from ekws.values import parse_bool, parse_float, parse_int

BIGINT, FLOAT = FieldType("bigint"), FieldType("float")


@pytest.mark.parametrize(("text", "expected"), [
    ("100", 100.0),  # eKuiper TestToFloatResult
    ("2.5", 2.5),
    ("-1e-3", -0.001),
    (".5", 0.5),
    ("1_000", 1000.0),
    ("1_000.5", 1000.5),
    ("1_23.50_0_0e+1_2", 1.235e14),  # Go's atof_test.go
    (" 42 ", 42.0),  # ekws's leniency: surrounding white space
    ("inf", math.inf),
    ("-Infinity", -math.inf),
])
def test_float_text(text: str, expected: float) -> None:
    assert parse_float(text) == expected
    assert convert_value(text, FLOAT) == expected
    assert call("cast", text, "float") == expected


@pytest.mark.parametrize("text", ["nan", "NaN", "NAN"])
def test_nan_is_a_float_in_both_places(text: str) -> None:
    assert math.isnan(parse_float(text))
    assert math.isnan(convert_value(text, FLOAT))
    assert math.isnan(call("cast", text, "float"))


@pytest.mark.parametrize("text", ["", "abc", "_1", "1_", "1__0", "1_.5", "+nan", "0x10", "1,5", "١٢", "--1"])
def test_not_float_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_float(text)
    with pytest.raises(EvalError, match="cannot cast"):
        call("cast", text, "float")
    with pytest.raises(DecodeError, match="expected FLOAT"):
        convert_value(text, FLOAT)


@pytest.mark.parametrize(("text", "expected"), [
    ("42", 42), ("-42", -42), (" 7 ", 7), ("1_000", 1000), ("4.0", 4), ("1e3", 1000), ("007", 7),
])
def test_int_text(text: str, expected: int) -> None:
    assert parse_int(text) == expected
    assert convert_value(text, BIGINT) == expected
    assert call("cast", text, "bigint") == expected


@pytest.mark.parametrize("text", ["4.5", "nan", "inf", "1__0", "x", "9" * 5000])
def test_not_int_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)
    with pytest.raises(EvalError, match="cannot cast"):
        call("cast", text, "bigint")
    with pytest.raises(DecodeError, match="expected BIGINT"):
        convert_value(text, BIGINT)


@pytest.mark.parametrize(("value", "expected"), [(42.9, 42), (True, 1), (-3.7, -3)])
def test_cast_of_a_number_to_bigint_truncates_as_ekuiper_does(value: Any, expected: int) -> None:
    assert call("cast", value, "bigint") == expected


BOOLEAN = FieldType("boolean")


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("TRUE", True), ("True", True), ("t", True), ("T", True), ("1", True),
    ("false", False), ("FALSE", False), ("f", False), ("0", False), ("tRuE", True),
])
def test_bool_text_as_go_parse_bool_reads_it(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected
    assert convert_value(text, BOOLEAN) is expected  # eKuiper's JSON schema: cast.ToBool on a string
    assert call("cast", text, "boolean") is expected


@pytest.mark.parametrize("text", ["yes", "", "2", "on"])
def test_not_bool_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)
    with pytest.raises(EvalError, match="cannot cast"):
        call("cast", text, "boolean")
    with pytest.raises(DecodeError, match="expected BOOLEAN"):
        convert_value(text, BOOLEAN)
