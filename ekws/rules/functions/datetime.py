"""Date and time functions: eKuiper's ``funcs_datetime.go`` (docs ``datetime_functions.md``).

A time argument is epoch milliseconds (a number, as ``event_time()`` and
``tstamp()`` give) or a string (ISO 8601, ``2024-05-01 12:00:00``, read by
:func:`ekws.timestamps.parse_iso`); times are shown in the local zone, as
eKuiper uses its configured (by default the local) zone. Formats use
eKuiper's letters (``yyyy-MM-dd HH:mm:ss.SSS``, see :mod:`ekws.timestamps`);
a literal format is compiled once, when the rule is created.

Times have millisecond precision (as a message's timestamp). As in eKuiper,
``format_time`` of a null is null, while the other functions of a null time
fail the record (Go's ``unsupported type to convert to timestamp <nil>``).

ekws has no time type: ``now()``, ``date_calc`` and the like give eKuiper's
formatted strings, ``date_diff`` gives nanoseconds (Go's ``Duration``), and a
literal number or string where eKuiper wants a datetime is refused at rule
creation, as eKuiper does (pass a field or ``event_time()``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from ...timestamps import compile_formatter, parse_iso
from ..expr import EvalError, kind_of
from .args import INT, STRING, go_str, to_int
from .registry import NOT_CONST, Arg, register

DATETIME = "datetime"


def _datetime_args(*positions: int, string: Sequence[int] = ()) -> Callable[[Sequence[Arg]], None]:
    def validate(args: Sequence[Arg]) -> None:
        for i in positions:
            value = args[i].value if i < len(args) else NOT_CONST
            if value is not NOT_CONST and value is not None:
                raise ValueError(f"Expect {DATETIME} type for parameter {i + 1}")
        for i in string:
            value = args[i].value if i < len(args) else NOT_CONST
            if type(value) in (int, float, bool):
                raise ValueError(f"Expect {STRING} type for parameter {i + 1}")
    return validate


_FRACTION = re.compile(r":\d\d[.,](\d+)")


def to_time(value: Any) -> dt.datetime:
    """eKuiper's ``cast.InterfaceToTime``: epoch ms or a time string, as a local aware datetime."""
    kind = type(value)
    if kind is int or kind is float:
        ms = int(value)
    elif kind is str:
        try:
            ms = parse_iso(value)
        except ValueError as exc:
            raise EvalError(f"cannot parse time {value!r:.40}: {exc}") from None
    else:
        shown = "<nil>" if value is None else f"{kind_of(value)} {value!r:.40}"
        raise EvalError(f"unsupported type to convert to timestamp {shown}")
    try:
        when = (dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc)
                + dt.timedelta(milliseconds=ms % 1000)).astimezone()
        if kind is str:
            fraction = _FRACTION.search(value)  # keep microseconds the ms parse dropped
            if fraction is not None and len(fraction.group(1)) > 3:
                when = when.replace(microsecond=int(fraction.group(1)[:6].ljust(6, "0")))
        return when
    except (OverflowError, OSError, ValueError) as exc:
        raise EvalError(f"time {value!r:.40} out of range: {exc}") from None


@functools.lru_cache(maxsize=64)
def _formatter(fmt: str) -> Callable[[dt.datetime], str]:
    try:
        return compile_formatter(fmt)
    except ValueError as exc:
        raise EvalError(str(exc)) from None


_DEFAULT = _formatter("yyyy-MM-dd HH:mm:ss")
_DATE = _formatter("yyyy-MM-dd")


def _now_check(args: Sequence[Arg]) -> None:
    if args and args[0].value is not NOT_CONST and type(args[0].value) is not int:
        raise ValueError(f"Expect {INT} type for parameter 1")


def _now(time_only: bool) -> Callable[..., str]:
    def now(fsp: Any = 0) -> str:
        digits = to_int(fsp, "now") if fsp is not None else 0
        fmt = "yyyy-MM-dd HH:mm:ss" + ("." + "S" * digits if 1 <= digits <= 6 else "")
        text = _formatter(fmt)(dt.datetime.now().astimezone())
        return text.split(" ", 1)[1] if time_only else text
    return now


for _name in ("now", "current_timestamp", "local_time", "local_timestamp"):
    register(_name, 0, 1, nulls="pass", validate=_now_check, family="datetime")(_now(False))
for _name in ("cur_time", "current_time"):
    register(_name, 0, 1, nulls="pass", validate=_now_check, family="datetime")(_now(True))
for _name in ("cur_date", "current_date"):
    register(_name, 0, family="datetime")(lambda: _DATE(dt.datetime.now().astimezone()))


def _format_bind(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
    fmt = args[1].value
    if fmt is NOT_CONST or fmt is None:
        return format_time
    text = go_str(fmt)
    try:
        compiled = compile_formatter(text)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    # Records come many to a second: without fractions (S) the text changes once a
    # second, so the last second's text is kept (one tuple, replaced whole: thread-safe).
    unit = 1 if "S" in text else 1000
    last: list[tuple[int, str]] = [(-1, "")]

    def format_fixed(value: Any, _fmt: Any) -> str:
        if type(value) is int:
            key = value // unit
            seen = last[0]
            if seen[0] == key:
                return seen[1]
            formatted = compiled(to_time(value))
            last[0] = (key, formatted)
            return formatted
        return compiled(to_time(value))
    return format_fixed


@register("format_time", 2, validate=_datetime_args(0, string=(1,)), bind=_format_bind, family="datetime")
def format_time(value: Any, fmt: Any) -> str:
    return _formatter(go_str(fmt))(to_time(value))


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-3, "us": 1, "µs": 1, "μs": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_duration(text: str) -> dt.timedelta:
    """Go's ``time.ParseDuration``: ``1h30m``, ``-10s``, ``1.5h``, ``100ms``."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if body == "0":
        return dt.timedelta(0)
    micros, pos = 0.0, 0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        micros += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise EvalError(f'time: invalid duration "{text}"')
    if micros > 2 ** 63 / 1000:  # Go's Duration is int64 nanoseconds
        raise EvalError(f'time: invalid duration "{text}"')
    return dt.timedelta(microseconds=sign * micros)


@register("date_calc", 2, validate=_datetime_args(0, string=(1,)), nulls="pass", family="datetime")
def date_calc(value: Any, duration: Any) -> str:
    moment, delta = to_time(value), parse_duration(go_str(duration))
    try:
        return _DEFAULT(moment + delta)
    except OverflowError:
        raise EvalError(f"date_calc: {go_str(duration)} from {value!r:.40} is out of range") from None


@register("date_diff", 2, validate=_datetime_args(0, 1), nulls="pass", family="datetime")
def date_diff(a: Any, b: Any) -> int:
    delta = to_time(b) - to_time(a)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) * 1000


def _part(name: str, fn: Callable[[dt.datetime], Any]) -> None:
    register(name, 1, validate=_datetime_args(0), nulls="pass", family="datetime")(
        lambda value: fn(to_time(value)))


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_part("day_name", lambda t: _DAYS[t.weekday()])
_part("day_of_month", lambda t: t.day)
_part("day", lambda t: t.day)
_part("day_of_week", lambda t: (t.weekday() + 1) % 7)  # Go's Weekday: Sunday is 0
_part("day_of_year", lambda t: t.timetuple().tm_yday)
_part("hour", lambda t: t.hour)
_part("minute", lambda t: t.minute)
_part("second", lambda t: t.second)
_part("microsecond", lambda t: t.microsecond)
_part("month", lambda t: t.month)
_part("month_name", lambda t: ("January", "February", "March", "April", "May", "June", "July", "August",
                               "September", "October", "November", "December")[t.month - 1])


def _last_day(t: dt.datetime) -> str:
    first_next = dt.date(t.year + t.month // 12, t.month % 12 + 1, 1)
    return (first_next - dt.timedelta(days=1)).isoformat()


_part("last_day", _last_day)


@register("from_days", 1, validate=lambda a: None, family="datetime")
def from_days(days: Any) -> Any:
    n = to_int(days, "from_days")
    if n == 0:
        return None
    try:
        return (dt.date(1970, 1, 1) + dt.timedelta(days=n - 1)).isoformat()
    except OverflowError:
        raise EvalError(f"from_days: {n} days is out of range") from None


@register("from_unix_time", 1, family="datetime")
def from_unix_time(seconds: Any) -> Any:
    n = to_int(seconds, "from_unix_time")
    if n == 0:
        return None
    return _DEFAULT(to_time(n * 1000))


@register("to_seconds", 1, nulls="pass", family="datetime")
def to_seconds(value: Any) -> int:
    return int(to_time(value).timestamp())


@register("convert_tz", 2, validate=_datetime_args(0, string=(1,)), family="datetime")
def convert_tz(value: Any, zone: Any) -> str:
    """The time in ``zone`` (``UTC``, ``Local`` or an offset ``+08:00``; IANA names need
    Python 3.9's zoneinfo and its data), formatted ``yyyy-MM-dd HH:mm:ss``."""
    moment, name = to_time(value), go_str(zone)
    if name in ("UTC", ""):
        return _DEFAULT(moment.astimezone(dt.timezone.utc))
    if name == "Local":
        return _DEFAULT(moment)
    found = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if found is not None:
        offset = dt.timedelta(hours=int(found.group(2)), minutes=int(found.group(3)))
        return _DEFAULT(moment.astimezone(dt.timezone(-offset if found.group(1) == "-" else offset)))
    try:
        from zoneinfo import ZoneInfo
        return _DEFAULT(moment.astimezone(ZoneInfo(name)))
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError, a missing tz database
        raise EvalError(f"unknown time zone {name}: {exc}") from None

