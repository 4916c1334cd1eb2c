"""Schema conversion: types, DEFAULTs, strict and lenient modes, field paths."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from ekws.errors import DecodeError
from ekws.schema import NO_DEFAULT, Field, FieldType, convert_record, convert_value, make_converter

BIGINT, FLOAT, STRING = FieldType("bigint"), FieldType("float"), FieldType("string")
BOOLEAN, DATETIME, BYTEA = FieldType("boolean"), FieldType("datetime"), FieldType("bytea")


def one(ftype: FieldType, value: Any, *, strict: bool = True) -> Any:
    return convert_record({"v": value}, (Field("v", ftype),), strict=strict)["v"]


@pytest.mark.parametrize(
    ("ftype", "value", "expected"),
    [
        (BIGINT, 5, 5),
        (BIGINT, -5, -5),
        (BIGINT, 2**80, 2**80),
        (BIGINT, 3.0, 3),
        (BIGINT, "42", 42),
        (BIGINT, " -42 ", -42),
        (BIGINT, "4.0", 4),
        (BIGINT, "1e3", 1000),
        (BIGINT, "4_2", 42),
        (FLOAT, 1.5, 1.5),
        (FLOAT, 2, 2.0),
        (FLOAT, "2.5", 2.5),
        (FLOAT, "-1e-3", -0.001),
        (STRING, "x", "x"),
        (STRING, 5, "5"),
        (STRING, 1.5, "1.5"),
        (STRING, True, "true"),
        (BOOLEAN, True, True),
        (BOOLEAN, False, False),
        (BOOLEAN, "true", True),
        (BOOLEAN, "FALSE", False),
        (DATETIME, 1700000000123, 1700000000123),
        (DATETIME, 1700000000123.0, 1700000000123),
        (DATETIME, "2024-05-06T07:08:09Z", "2024-05-06T07:08:09Z"),
        (DATETIME, "2024-05-06T07:08:09.123+02:00", "2024-05-06T07:08:09.123+02:00"),
        (DATETIME, "2024-05-06", "2024-05-06"),
        (BYTEA, "aGVsbG8=", b"hello"),
        (BYTEA, b"\x00\x01", b"\x00\x01"),
        (BYTEA, bytearray(b"ab"), b"ab"),
        (FieldType("array", element=BIGINT), [1, "2", 3.0], [1, 2, 3]),
        (FieldType("array", element=FieldType("array", element=FLOAT)), [[1], [2, "3"]], [[1.0], [2.0, 3.0]]),
        (FieldType("struct", fields=(Field("x", FLOAT),)), {"x": 1, "y": 2}, {"x": 1.0}),
    ],
)
def test_conversions(ftype: FieldType, value: Any, expected: Any) -> None:
    for strict in (True, False):
        got = one(ftype, value, strict=strict)
        assert got == expected
        assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("ftype", "value", "message"),
    [
        (BIGINT, 1.5, "expected BIGINT, got number 1.5"),
        (BIGINT, True, "expected BIGINT, got boolean true"),
        (BIGINT, "abc", 'expected BIGINT, got string "abc"'),
        # "4_2" is 42 and "NaN" a float since ekws.values reads number text as eKuiper's cast
        # does (tests/test_values.py); a doubled underscore and a non-integral number are not.
        (BIGINT, "4__2", 'expected BIGINT, got string "4__2"'),
        (BIGINT, "4.5", 'expected BIGINT, got string "4.5"'),
        (BIGINT, float("inf"), "expected BIGINT, got number inf"),
        (BIGINT, [1], "expected BIGINT, got array"),
        (FLOAT, "abc", 'expected FLOAT, got string "abc"'),
        (FLOAT, "+NaN", 'expected FLOAT, got string "+NaN"'),
        (FLOAT, False, "expected FLOAT, got boolean false"),
        (FLOAT, 10**400, "expected FLOAT, got number"),
        (STRING, {"a": 1}, "expected STRING, got object"),
        (STRING, [], "expected STRING, got array"),
        (BOOLEAN, 1, "expected BOOLEAN, got number 1"),
        (BOOLEAN, "yes", 'expected BOOLEAN, got string "yes"'),
        (DATETIME, "yesterday", 'expected DATETIME, got string "yesterday"'),
        (DATETIME, True, "expected DATETIME, got boolean true"),
        (DATETIME, 1.5, "expected DATETIME, got number 1.5"),
        (BYTEA, "not base64!", 'expected BYTEA, got string "not base64!"'),
        (BYTEA, "é", 'expected BYTEA, got string "é"'),
        (BYTEA, 5, "expected BYTEA, got number 5"),
        (FieldType("array", element=BIGINT), {"a": 1}, "expected ARRAY(BIGINT), got object"),
        (FieldType("struct", fields=(Field("x", FLOAT),)), [1], "expected STRUCT(x FLOAT), got array"),
    ],
)
def test_strict_mismatch_names_field_type_and_value(ftype: FieldType, value: Any, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        one(ftype, value, strict=True)
    assert str(info.value).startswith(f"field 'v': {message}")


@pytest.mark.parametrize("value", [1.5, "abc", [1], {"a": 1}, True])
def test_lenient_passes_unconvertible_values_through(value: Any) -> None:
    assert one(BIGINT, value, strict=False) is value


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(DecodeError) as info:
        one(BIGINT, "x" * 1000)
    assert len(str(info.value)) < 100
    assert "..." in str(info.value)


def test_null_is_kept_for_every_type() -> None:
    fields = tuple(
        Field(kind, FieldType(kind)) for kind in ("bigint", "float", "string", "datetime", "boolean", "bytea")
    ) + (Field("arr", FieldType("array", element=BIGINT)), Field("st", FieldType("struct", fields=())))
    record = {f.name: None for f in fields}
    assert convert_record(record, fields, strict=True) == record
    assert one(FieldType("array", element=BIGINT), [1, None]) == [1, None]


POS = FieldType("struct", fields=(Field("x", FLOAT), Field("y", FLOAT)))
FIELDS = (
    Field("id", BIGINT),
    Field("pos", POS),
    Field("path", FieldType("array", element=POS)),
    Field("unit", STRING, "C"),
)


def test_keeps_only_declared_fields_and_applies_defaults() -> None:
    record = {"id": "7", "pos": {"x": 1, "y": "2", "z": 3}, "extra": True}
    assert convert_record(record, FIELDS, strict=False) == {"id": 7, "pos": {"x": 1.0, "y": 2.0}, "unit": "C"}
    assert convert_record({"unit": "F"}, FIELDS, strict=False) == {"unit": "F"}


def test_input_record_is_not_modified() -> None:
    record = {"id": "7", "pos": {"x": "1", "y": 2}}
    before = copy.deepcopy(record)
    convert_record(record, FIELDS, strict=False)
    assert record == before


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"pos": {"x": 1, "y": 2}}, "field 'id': missing, and it has no DEFAULT"),
        ({"id": 1, "pos": {"x": "abc", "y": 2}}, "field 'pos.x': expected FLOAT, got string \"abc\""),
        ({"id": 1, "pos": {"x": 1}}, "field 'pos.y': missing, and it has no DEFAULT"),
        (
            {"id": 1, "pos": {"x": 1, "y": 1}, "path": [{"x": 1, "y": 1}, {"x": 1, "y": []}]},
            "field 'path[1].y': expected FLOAT, got array",
        ),
        ({"id": 1, "pos": {"x": 1, "y": 1}, "path": [{"x": 1}]}, "field 'path[0].y': missing"),
        ({"id": 1, "pos": 5}, "field 'pos': expected STRUCT(x FLOAT, y FLOAT), got number 5"),
    ],
)
def test_strict_errors_name_the_field_path(record: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as info:
        convert_record(record, FIELDS, strict=True)
    assert str(info.value).startswith(message)


def test_strict_accepts_a_complete_record() -> None:
    record = {"id": 1, "pos": {"x": 1, "y": 2}, "path": [{"x": 0, "y": 0}]}
    assert convert_record(record, FIELDS, strict=True) == {
        "id": 1,
        "pos": {"x": 1.0, "y": 2.0},
        "path": [{"x": 0.0, "y": 0.0}],
        "unit": "C",
    }


def test_lenient_nested_passes_only_the_bad_leaf() -> None:
    record = {"pos": {"x": "abc", "y": "2"}, "path": [{"x": "1", "y": "bad"}, "junk"]}
    assert convert_record(record, FIELDS, strict=False) == {
        "pos": {"x": "abc", "y": 2.0},
        "path": [{"x": 1.0, "y": "bad"}, "junk"],
        "unit": "C",
    }


def test_make_converter_is_planned_once_and_cached() -> None:
    assert make_converter(FIELDS, strict=True) is make_converter(FIELDS, strict=True)
    assert make_converter(FIELDS, strict=True) is not make_converter(FIELDS, strict=False)


def test_convert_value_for_defaults() -> None:
    assert convert_value("3", BIGINT) == 3
    with pytest.raises(DecodeError, match="^field 'x': expected BIGINT"):
        convert_value("a", BIGINT, name="x")
    with pytest.raises(DecodeError, match=r"^field 'a\[1\]': expected BIGINT"):
        convert_value([1, "b"], FieldType("array", element=BIGINT), name="a")


def test_field_and_type_basics() -> None:
    assert not Field("a", BIGINT).has_default
    assert Field("a", BIGINT, None).has_default  # an explicit None default is a default
    assert repr(NO_DEFAULT) == "NO_DEFAULT"
    assert pickle.loads(pickle.dumps(NO_DEFAULT)) is NO_DEFAULT
    assert copy.deepcopy(Field("a", BIGINT)).default is NO_DEFAULT
    with pytest.raises(ValueError):
        FieldType("int")
    with pytest.raises(ValueError):
        FieldType("array")
    assert str(FieldType("array", element=POS)) == "ARRAY(STRUCT(x FLOAT, y FLOAT))"
