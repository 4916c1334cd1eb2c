"""The examples of eKuiper's function reference (``docs/en_US/sqls/functions/*.md`` in
``lf-edge/ekuiper``), each row naming its page, run as a rule runs them.

The reference writes objects and arrays as literals (``keys({"a":1, "b":2})``); ekws
rule SQL has no object or array literals, so those arrive as record fields here. Where the
page and eKuiper's code disagree, ekws does what the code does, and the row says so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import SQLError
from ekws.timestamps import parse_iso

ARRAY, OBJECT, STRING = "array_functions.md", "object_functions.md", "string_functions.md"
MATH, DATETIME = "mathematical_functions.md", "datetime_functions.md"
DOC = {"baz": [1, 2, 3], "bar": "hello world", "foo": "emq"}


@pytest.mark.parametrize(("page", "name", "args", "expected"), [
    (ARRAY, "array_sort", ([3, 2, "b", "a"],), [2, 3, "a", "b"]),
    (ARRAY, "kvpair_array_to_obj", ([{"key": "key1", "value": 1}, {"key": "key2", "value": 2}],),
     {"key1": 1, "key2": 2}),
    (OBJECT, "keys", ({"a": 1, "b": 2},), ["a", "b"]),
    (OBJECT, "values", ({"a": 1, "b": 2},), [1, 2]),
    (OBJECT, "object", (["a", "b"], [1, 2]), {"a": 1, "b": 2}),
    (OBJECT, "zip", ([["a", 1], ["b", 2]],), {"a": 1, "b": 2}),
    (OBJECT, "items", ({"a": 1, "b": 2},), [["a", 1], ["b", 2]]),
    (OBJECT, "object_construct", ("a", 1, "b", 2), {"a": 1, "b": 2}),
    (OBJECT, "object_concat", ({"a": 1}, {"b": 2}, {"b": 3}), {"a": 1, "b": 3}),
    (OBJECT, "erase", (DOC, "foo"), {"baz": [1, 2, 3], "bar": "hello world"}),
    (OBJECT, "object_pick", (DOC, "foo"), {"foo": "emq"}),
    (OBJECT, "obj_to_kvpair_array", ({"key1": 1, "key2": 2},),
     [{"key": "key1", "value": 1}, {"key": "key2", "value": 2}]),
    (STRING, "split_value", ("/test/device001/message", "/", 0), ""),
    (STRING, "split_value", ("/test/device001/message", "/", 3), "message"),
    (STRING, "regexp_substring", ("abc123def", "[0-9]+"), "123"),  # the page's name for regexp_substr
])
def test_reference_examples(page: str, name: str, args: tuple[Any, ...], expected: Any) -> None:
    assert call(name, *args) == expected


@pytest.mark.parametrize(("page", "expr", "expected"), [
    (MATH, "conv('a',16,2)", "1010"),
    (MATH, "conv('6E',18,8)", "172"),
    (MATH, "conv(-17,10,-18)", "-H"),
    (STRING, 'format(12332.1234567, 4,"en_US")', "12,332.1235"),
    (OBJECT, 'object_construct("a", 1, "b", 2)', {"a": 1, "b": 2}),
])
def test_reference_examples_as_written(page: str, expr: str, expected: Any) -> None:
    assert value(expr) == expected


@pytest.mark.parametrize(("duration", "delta"), [
    ("1h", dt.timedelta(hours=1)),
    ("1h30m", dt.timedelta(hours=1, minutes=30)),
    ("1h30m10s", dt.timedelta(hours=1, minutes=30, seconds=10)),
    ("1h30m10s100ms", dt.timedelta(hours=1, minutes=30, seconds=10)),  # shown to the second
    ("1h30m10s100ms200us300ns", dt.timedelta(hours=1, minutes=30, seconds=10)),
    ("-1h30m", -dt.timedelta(hours=1, minutes=30)),
])
def test_date_calc_durations(duration: str, delta: dt.timedelta) -> None:
    """datetime_functions.md's ``date_calc('2019-01-01', ...)`` examples. A string literal as the
    date is refused by eKuiper's validator (and ekws's), so the date is a field here."""
    expected = (dt.datetime(2019, 1, 1) + delta).strftime("%Y-%m-%d %H:%M:%S")
    assert call("date_calc", "2019-01-01", duration) == expected
    with pytest.raises(SQLError, match="date_calc: Expect datetime type for parameter 1"):
        value(f"date_calc('2019-01-01', '{duration}')")


def test_format_time_pattern_examples() -> None:
    """string_functions.md's pattern examples over Go's reference time, in the local zone
    (``S`` brings its dot, as Go's ``.000``; a zone offset of 0 is ``+00:00``, not ``Z``)."""
    ms = parse_iso("2006-01-02 15:04:05")
    offset = dt.datetime(2006, 1, 2, 15, 4, 5).astimezone().strftime("%z")  # e.g. -0700
    assert call("format_time", ms, "YYYY-MM-dd T HH:mm:ss") == "2006-01-02 T 15:04:05"
    assert call("format_time", ms, "YYYY/MM/dd HH:mm:ssSSS XXX") == \
        f"2006/01/02 15:04:05.000 {offset[:3]}:{offset[3:]}"
    assert call("format_time", ms, "yyyy-MM-ddTHH:mm:ssSS\\ZXX") == f"2006-01-02T15:04:05.00Z{offset}"
    assert call("format_time", ms, "ss.SSS") == "05.000"  # eKuiper: "05..000"; ekws adds no second dot
    assert call("format_time", ms, "X") == offset[:3]
