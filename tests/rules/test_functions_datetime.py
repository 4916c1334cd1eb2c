"""Date and time functions, ported from eKuiper's ``internal/binder/function/funcs_datetime_test.go``
(TestDateTimeFunctions, TestValidateFsp) and ``docs/en_US/sqls/functions/datetime_functions.md``.

Times without a zone are local, as in eKuiper; expectations are computed in the local zone too,
so the tests hold in any TZ.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import EvalError, SQLError
from ekws.timestamps import compile_formatter, parse_iso

JAN1 = "2019-01-01 00:00:00"  # a Tuesday


def local_ms(text: str) -> int:
    return parse_iso(text)


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("date_calc", (JAN1, "24h"), "2019-01-02 00:00:00"),  # "add 1 day (24h)"
    ("date_calc", (JAN1, "-24h"), "2018-12-31 00:00:00"),  # "sub 1 day (24h)"
    ("date_calc", (JAN1, "1h30m10s"), "2019-01-01 01:30:10"),  # the reference's durations
    ("date_diff", (JAN1, "2019-01-02 00:00:00"), 24 * 3600 * 1000 * 1_000_000),  # ns, Go's Duration
    ("day_name", (JAN1,), "Tuesday"),
    ("day_of_month", ("2019-01-15 00:00:00",), 15), ("day", ("2019-01-15 00:00:00",), 15),
    ("day_of_week", (JAN1,), 2),  # Go's time.Tuesday
    ("day_of_year", ("2019-02-01 00:00:00",), 32),
    ("from_days", (1,), "1970-01-01"), ("from_days", (0,), None),
    ("hour", ("2019-01-01 13:14:15",), 13), ("minute", ("2019-01-01 13:14:15",), 14),
    ("second", ("2019-01-01 13:14:15",), 15),
    ("microsecond", ("2019-01-01 13:14:15.123456",), 123456),  # TestDateTimeFunctions
    ("microsecond", ("2019-01-01 13:14:15.5",), 500000),
    ("from_days", (100,), "1970-04-10"), ("last_day", ("2019-01-01 01:00:00",), "2019-01-31"),
    ("month", ("2019-03-01 00:00:00",), 3), ("month_name", ("2019-03-01 00:00:00",), "March"),
    ("last_day", ("2019-02-10 00:00:00",), "2019-02-28"),
    ("last_day", ("2020-12-10 00:00:00",), "2020-12-31"),
    ("from_unix_time", (0,), None),
    ("format_time", (JAN1, "yyyy-MM-dd"), "2019-01-01"),
    ("format_time", ("2019-01-01 13:04:05.250", "yyyy-MM-dd HH:mm:ss.SSS"), "2019-01-01 13:04:05.250"),
    ("format_time", ("2019-01-01 13:04:05", "yy/M/d h:mm a EEE"), "19/1/1 1:04 PM Tue"),
    ("format_time", ("2019-01-01 13:04:05", "MMMM dd 'at' HH"), "January 01 at 13"),
])
def test_datetime_functions(name: str, args: tuple[Any, ...], expected: Any) -> None:
    assert call(name, *args) == expected


def test_a_number_is_epoch_milliseconds_shown_in_the_local_zone() -> None:
    ms = local_ms("2024-05-01 12:30:00")
    assert call("format_time", ms, "yyyy-MM-dd HH:mm") == "2024-05-01 12:30"
    assert call("hour", ms) == 12
    assert call("to_seconds", ms) == ms // 1000
    assert value("format_time(event_time(), 'yyyy')", timestamp=ms) == "2024"
    assert call("from_unix_time", ms // 1000) == "2024-05-01 12:30:00"


def test_a_zone_offset_is_formatted() -> None:
    moment = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert compile_formatter("yyyy-MM-dd'T'HH:mm:ssXXX")(moment) == "2024-05-01T12:00:00+08:00"
    assert compile_formatter("Z")(moment) == "+0800"
    assert call("convert_tz", "2024-05-01T04:00:00Z", "+08:00") == "2024-05-01 12:00:00"
    assert call("convert_tz", "2024-05-01T04:00:00Z", "UTC") == "2024-05-01 04:00:00"


def test_now_and_friends_follow_their_documented_shapes() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value("now()"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", value("now(3)"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value("current_timestamp(6)"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", value("cur_date()"))
    assert re.fullmatch(r"\d\d:\d\d:\d\d", value("cur_time()"))
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d", value("current_time(1)"))
    for synonym in ("local_time", "local_timestamp"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value(f"{synonym}()"))
    assert value("format_time(now(), 'yyyy-MM-dd')") == value("current_date()")  # the example


@pytest.mark.parametrize(("expr", "error"), [
    ("format_time(a)", "format_time: Expect 2 arguments but found 1."),  # TestDateTimeFunctions
    ("format_time(1, 'yyyy-MM-dd')", "format_time: Expect datetime type for parameter 1"),
    ("date_calc(1, '24h')", "date_calc: Expect datetime type for parameter 1"),
    ("date_calc()", "date_calc: Expect 2 arguments but found 0."),
    ("date_diff(1, 2)", "date_diff: Expect datetime type for parameter 1"),
    ("day_of_week(1)", "day_of_week: Expect datetime type for parameter 1"),
    ("day_of_week()", "day_of_week: Expect 1 arguments but found 0."),
    ("now('a')", "now: Expect int type for parameter 1"),  # TestValidateFsp
    ("now(1, 2)", "now: Expect 0 to 1 arguments but found 2."),
    ("format_time(a, 'yyyy z')", "format_time: zone names (z) are ambiguous"),
])
def test_refused_at_rule_creation(expr: str, error: str) -> None:
    with pytest.raises(SQLError, match=re.escape(error)):
        value(expr)


@pytest.mark.parametrize(("name", "args", "error"), [
    ("format_time", ("yesterday", "yyyy"), "cannot parse time 'yesterday'"),
    ("format_time", (True, "yyyy"), "unsupported type to convert to timestamp"),
    ("date_calc", (JAN1, "1 day"), 'time: invalid duration "1 day"'),
    ("to_seconds", ([1],), "unsupported type to convert to timestamp"),
])
def test_errors_fail_the_record(name: str, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(EvalError, match=re.escape(error)):
        call(name, *args)


def test_a_null_time_is_null_for_format_time_and_an_error_elsewhere() -> None:
    """As eKuiper: only format_time has returnNilIfHasAnyNil; TestToSeconds's nil is an error."""
    assert call("format_time", None, "yyyy") is None
    for name in ("date_calc", "date_diff"):
        with pytest.raises(EvalError, match="unsupported type to convert to timestamp <nil>"):
            call(name, None, JAN1)
    for name in ("day_name", "hour", "month", "last_day", "to_seconds"):
        with pytest.raises(EvalError, match="unsupported type to convert to timestamp <nil>"):
            call(name, None)


def test_every_built_in_function_has_a_test() -> None:
    """Each registered built-in is called in at least one of the tests/rules/test_functions_*.py tables."""
    import pathlib

    from ekws.rules.functions import REGISTRY
    text = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_functions_*.py"))
    untested = [name for name, fn in sorted(REGISTRY.items()) if fn.family != "custom"
                and not re.search(r"[\"' (]" + name + r"[\"'(]", text)]
    assert untested == []
