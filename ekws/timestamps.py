"""Event time from a record: ``TIMESTAMP`` and ``TIMESTAMP_FORMAT``, as eKuiper reads them.

With ``TIMESTAMP="ts"`` in ``CREATE STREAM``, a message's ``timestamp``
(``meta["timestamp"]``, ``int`` milliseconds since the epoch) is the record's
``ts`` field instead of the receive time. The field may hold:

* a number: milliseconds since the epoch (a ``float`` is truncated, as
  eKuiper's ``int64(f)``; booleans, NaN and infinities are refused);
* a string: parsed with ``TIMESTAMP_FORMAT`` when given, else as ISO 8601
  (``2024-05-01T12:00:00.250Z``, ``2024-05-01 12:00:00+02:00``,
  ``2024-05-01``; fractions of 1 to 9 digits).

A string without a zone offset is local time, as eKuiper uses its
configured (by default the local) time zone. A record without the field or
with a value that does not convert is a :class:`~ekws.errors.DecodeError`
naming the field; the stream drops that record and reports it.

``TIMESTAMP_FORMAT`` uses eKuiper's (Java-like) letters, which eKuiper turns
into a Go layout:

======================  ==================================================
``YYYY`` / ``yyyy``     4-digit year
``YY`` / ``yy``         2-digit year (69-99: 19xx, 00-68: 20xx, as Go)
``MMMM`` / ``MMM``      month name (``January``) / abbreviation (``Jan``)
``MM`` / ``M``          month, 2 digits / 1-2 digits
``dd`` / ``d``          day of month, 2 digits / 1-2 digits
``HH``                  hour 00-23 (a single ``H`` is refused, as in eKuiper)
``hh`` / ``h``          hour 01-12, 2 digits / 1-2 digits (with ``a``)
``a``                   ``AM`` / ``PM`` (any case)
``mm`` / ``m``          minute, 2 digits / 1-2 digits
``ss`` / ``s``          second, 2 digits / 1-2 digits; as in Go a fraction
                        (``.123``) may follow even if the format has none
``S`` ... ``SSSSSSSSS`` ``.`` and exactly that many fraction digits
                        (eKuiper's ``ssSSS`` reads ``24.913``)
``EEE`` / ``EEEE``      weekday name, abbreviated / full (checked, ignored)
``G``                   the era, ``AD``
``Z`` / ``XX``          zone offset ``+0800`` (or ``Z``)
``X`` / ``XXX``         zone offset ``+08`` / ``+08:00`` (or ``Z``)
``'text'``, ``\\c``      literal text; ``''`` is a quote
======================  ==================================================

Any other character stands for itself. ``z`` (zone names like ``CST``) is
refused: the abbreviations are ambiguous; use an offset. Names are English.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from typing import Any, Final

from .errors import DecodeError

__all__ = ["compile_format", "compile_formatter", "make_event_time", "parse_iso"]

EventTime = Callable[[dict[str, Any]], int]
Parser = Callable[[str], int]

_MONTHS: Final = ("january", "february", "march", "april", "may", "june", "july", "august",
                  "september", "october", "november", "december")
_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_OFFSET: Final = r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)"
_FRACTION: Final = r"(?:[.,](?P<frac>\d{1,9}))"

# letter -> {run length: regex}; a run length not listed is an error.
_TOKENS: Final[dict[str, dict[int, str]]] = {
    "Y": {4: r"(?P<year>\d{4})", 2: r"(?P<year2>\d{2})"},
    "y": {4: r"(?P<year>\d{4})", 2: r"(?P<year2>\d{2})"},
    "M": {1: r"(?P<month>\d{1,2})", 2: r"(?P<month>\d{2})",
          3: r"(?P<mon>[A-Za-z]{3})", 4: r"(?P<monthname>[A-Za-z]+)"},
    "d": {1: r"(?P<day>\d{1,2})", 2: r"(?P<day>\d{2})"},
    "H": {2: r"(?P<hour>\d{2})"},
    "h": {1: r"(?P<hour12>\d{1,2})", 2: r"(?P<hour12>\d{2})"},
    "m": {1: r"(?P<minute>\d{1,2})", 2: r"(?P<minute>\d{2})"},
    "s": {1: r"(?P<second>\d{1,2})", 2: r"(?P<second>\d{2})"},
    "E": {3: r"(?i:" + "|".join(day[:3] for day in _DAYS) + r")",
          4: r"(?i:" + "|".join(_DAYS) + r")"},
    "X": {1: r"(?P<tz>Z|z|[+-]\d{2})", 2: r"(?P<tz>Z|z|[+-]\d{4})", 3: r"(?P<tz>Z|z|[+-]\d{2}:\d{2})"},
}
_SINGLE: Final = {"a": r"(?P<ampm>[AaPp][Mm])", "G": "AD", "Z": r"(?P<tz>Z|z|[+-]\d{4})"}
_SAME: Final = {"year2": "year", "hour12": "hour", "mon": "month", "monthname": "month"}
_MAX_RUN: Final = {"Y": 4, "y": 4, "M": 4, "d": 2, "H": 2, "h": 2, "m": 2, "s": 2, "E": 4, "X": 3}

_ISO: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})" + _FRACTION + r"?)?)?"
    r"\s*" + _OFFSET + r"?"
)


def compile_format(fmt: str) -> Parser:
    """Compile an eKuiper ``TIMESTAMP_FORMAT`` into a parser of strings to epoch ms.

    Raises:
        ValueError: the format uses a letter run eKuiper refuses (``YYY``,
            ``H``, ``E``) or ``z``; the message says which.
    """
    pattern: list[str] = []
    seen: set[str] = set()
    index, end = 0, len(fmt)
    while index < end:
        char = fmt[index]
        if char == "\\":
            if index + 1 >= end:
                raise ValueError("a format may not end with a lone backslash")
            pattern.append(re.escape(fmt[index + 1]))
            index += 2
            continue
        if char == "'":
            if fmt.startswith("''", index):
                pattern.append("'")
                index += 2
                continue
            close = fmt.find("'", index + 1)
            close = end if close < 0 else close  # unterminated: the rest is text, as eKuiper
            pattern.append(re.escape(fmt[index + 1 : close]))
            index = close + 1
            continue
        if char == "S":
            run = _run_length(fmt, index, char, 9)
            _check_once(seen, "frac")
            pattern.append(r"[.,](?P<frac>\d{" + str(run) + "})")
            index += run
            continue
        if char == "z":
            raise ValueError("zone names (z) are ambiguous and not supported: use Z or XXX (an offset)")
        if char in _SINGLE:
            pattern.append(_SINGLE[char])
            index += 1
            _check_once(seen, "tz" if char == "Z" else char)
            continue
        if char in _TOKENS:
            run = _run_length(fmt, index, char, _MAX_RUN[char])
            token = _TOKENS[char].get(run)
            if token is None:
                raise ValueError(f"{char * run!r} is not a valid field: "
                                 f"use {' or '.join(char * n for n in sorted(_TOKENS[char]))}")
            group = re.match(r"\(\?P<(\w+)>", token)
            if group is not None:
                _check_once(seen, _SAME.get(group.group(1), group.group(1)))
            pattern.append(token)
            index += run
            if char == "s" and "S" not in fmt:
                pattern.append(_FRACTION + "?")  # Go accepts a fraction after the seconds
            continue
        pattern.append(re.escape(char))
        index += 1
    if "year" not in seen:
        raise ValueError("the format has no year (YYYY or YY)")
    regex = re.compile("".join(pattern))

    def parse(text: str) -> int:
        match = regex.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"does not match TIMESTAMP_FORMAT {fmt!r}")
        return _epoch_ms(match.groupdict())

    return parse


def parse_iso(text: str) -> int:
    """Parse an ISO 8601 date or date-time into epoch ms (local time without an offset)."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected an ISO 8601 time like 2024-05-01T12:00:00Z (or set TIMESTAMP_FORMAT)")
    return _epoch_ms(match.groupdict())


def make_event_time(field: str | None, fmt: str | None = None) -> EventTime | None:
    """The event-time function for ``TIMESTAMP=field`` (and its format); None without a field.

    Raises:
        ValueError: ``fmt`` is not a valid format (see :func:`compile_format`).
    """
    if field is None:
        return None
    parse = compile_format(fmt) if fmt else parse_iso

    def event_time(record: dict[str, Any]) -> int:
        try:
            value = record[field]
        except KeyError:
            raise DecodeError(f"TIMESTAMP field '{field}' is missing") from None
        kind = type(value)
        if kind is int:
            return int(value)
        if kind is float and math.isfinite(value):
            return int(value)
        if kind is str:
            try:
                return parse(value)
            except ValueError as exc:
                raise DecodeError(f"TIMESTAMP field '{field}': {value[:64]!r} {exc}") from None
        raise DecodeError(f"TIMESTAMP field '{field}': expected milliseconds since the epoch or a "
                          f"time string, got {_kind(value)}")

    return event_time


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"{value}"
    return "null" if value is None else type(value).__name__


def _run_length(fmt: str, index: int, char: str, limit: int) -> int:
    run = 1
    while index + run < len(fmt) and fmt[index + run] == char:
        run += 1
    if run > limit:
        raise ValueError(f"{char * run!r} is not a valid field")
    return run


def _check_once(seen: set[str], name: str) -> None:
    if name in seen:
        raise ValueError(f"the format sets the {name} twice")
    seen.add(name)


def _epoch_ms(parts: dict[str, str | None]) -> int:
    """Epoch milliseconds from the named groups of a match (ValueError if out of range)."""
    year = parts.get("year")
    if year is not None:
        full_year = int(year)
    else:
        short = int(parts.get("year2") or 0)
        full_year = 1900 + short if short >= 69 else 2000 + short
    month = _month(parts)
    hour = int(parts.get("hour") or 0)
    hour12 = parts.get("hour12")
    if hour12 is not None:
        hour = int(hour12)
        ampm = (parts.get("ampm") or "").upper()
        if ampm and not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} is not 1-12")
        if ampm == "PM" and hour != 12:
            hour += 12
        elif ampm == "AM" and hour == 12:
            hour = 0
    fraction = (parts.get("frac") or "").ljust(6, "0")[:6]
    moment = datetime.datetime(full_year, month, int(parts.get("day") or 1), hour,
                               int(parts.get("minute") or 0), int(parts.get("second") or 0),
                               int(fraction))
    tz = parts.get("tz")
    if tz is None:  # local time, like eKuiper's default time zone
        whole = int(moment.replace(microsecond=0).timestamp())
        return whole * 1000 + moment.microsecond // 1000
    moment = moment.replace(tzinfo=_zone(tz))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (moment - epoch) // datetime.timedelta(milliseconds=1)


def _month(parts: dict[str, str | None]) -> int:
    if parts.get("month") is not None:
        return int(parts["month"] or 0)
    name = (parts.get("monthname") or parts.get("mon") or "").lower()
    if not name:
        return 1
    for number, month in enumerate(_MONTHS, 1):
        if name == month or (len(name) == 3 and month.startswith(name)):
            return number
    raise ValueError(f"unknown month name {name!r}")


def _zone(text: str) -> datetime.tzinfo:
    if text in ("Z", "z"):
        return datetime.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"zone offset {text} out of range")
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


Formatter = Callable[[datetime.datetime], str]


def compile_formatter(fmt: str) -> Formatter:
    """The inverse of :func:`compile_format`: an aware or local ``datetime`` as text, with
    the same letters (``yyyy-MM-dd HH:mm:ss.SSS``; ``format_time`` in rule SQL).

    Raises:
        ValueError: a letter run eKuiper refuses, or ``z``.
    """
    parts: list[Formatter] = []
    index, end = 0, len(fmt)

    def text(value: str) -> Formatter:
        return lambda moment: value

    while index < end:
        char = fmt[index]
        if char == "\\":
            if index + 1 >= end:
                raise ValueError("a format may not end with a lone backslash")
            parts.append(text(fmt[index + 1]))
            index += 2
            continue
        if char == "'":
            if fmt.startswith("''", index):
                parts.append(text("'"))
                index += 2
                continue
            close = fmt.find("'", index + 1)
            close = end if close < 0 else close
            parts.append(text(fmt[index + 1 : close]))
            index = close + 1
            continue
        if char == "z":
            raise ValueError("zone names (z) are ambiguous and not supported: use Z or XXX (an offset)")
        if char == "S":
            # eKuiper's S is Go's ".000": the dot comes with it (``ssSSS`` is "05.250"); after a
            # written dot (``ss.SSS``, which gives "05..250" in eKuiper) ekws adds no second one.
            run = _run_length(fmt, index, char, 9)
            parts.append(_fraction(run, dot=not fmt.endswith(".", 0, index)))
            index += run
            continue
        if char in _SINGLE:
            parts.append(_FORMATS[char, 1])
            index += 1
            continue
        if char in _TOKENS:
            run = _run_length(fmt, index, char, _MAX_RUN[char])
            if run not in _TOKENS[char]:
                raise ValueError(f"{char * run!r} is not a valid field: "
                                 f"use {' or '.join(char * n for n in sorted(_TOKENS[char]))}")
            parts.append(_FORMATS[char.lower() if char == "Y" else char, run])
            index += run
            continue
        parts.append(text(char))
        index += 1

    def format_moment(moment: datetime.datetime) -> str:
        return "".join(part(moment) for part in parts)

    return format_moment


def _fraction(run: int, dot: bool) -> Formatter:
    lead = "." if dot else ""
    return lambda moment: lead + f"{moment.microsecond:06d}000"[:run]


def _offset(moment: datetime.datetime, colon: bool, minutes: bool = True) -> str:
    delta = moment.utcoffset() or datetime.timedelta(0)  # UTC is "+00:00", as Go's "-07:00"
    total = int(delta.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    hours, mins = divmod(abs(total), 60)
    if not minutes:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


def _hour12(moment: datetime.datetime) -> int:
    return moment.hour % 12 or 12


_FORMATS: Final[dict[tuple[str, int], Formatter]] = {
    ("y", 4): lambda t: f"{t.year:04d}", ("y", 2): lambda t: f"{t.year % 100:02d}",
    ("M", 1): lambda t: str(t.month), ("M", 2): lambda t: f"{t.month:02d}",
    ("M", 3): lambda t: _MONTHS[t.month - 1][:3].title(), ("M", 4): lambda t: _MONTHS[t.month - 1].title(),
    ("d", 1): lambda t: str(t.day), ("d", 2): lambda t: f"{t.day:02d}",
    ("H", 2): lambda t: f"{t.hour:02d}",
    ("h", 1): lambda t: str(_hour12(t)), ("h", 2): lambda t: f"{_hour12(t):02d}",
    ("m", 1): lambda t: str(t.minute), ("m", 2): lambda t: f"{t.minute:02d}",
    ("s", 1): lambda t: str(t.second), ("s", 2): lambda t: f"{t.second:02d}",
    ("E", 3): lambda t: _DAYS[t.weekday()][:3].title(), ("E", 4): lambda t: _DAYS[t.weekday()].title(),
    ("a", 1): lambda t: "AM" if t.hour < 12 else "PM", ("G", 1): lambda t: "AD",
    ("Z", 1): lambda t: _offset(t, False), ("X", 1): lambda t: _offset(t, False, False),
    ("X", 2): lambda t: _offset(t, False), ("X", 3): lambda t: _offset(t, True),
}
