"""TIMESTAMP / TIMESTAMP_FORMAT: meta.timestamp from the record, as eKuiper does."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers.server import Collector, ErrorLog, wait_until, write_etc, ws_connect

import ekws
from ekws.timestamps import compile_format, make_event_time, parse_iso

# 2022-04-13 06:22:32.233 at +08:00 (eKuiper's own test value, there in Asia/Shanghai)
SHANGHAI_MS = 1649802152233


def local_ms(*fields: int) -> int:
    """Epoch ms of a local wall-clock time (what eKuiper does without a zone)."""
    moment = datetime.datetime(*fields)  # type: ignore[arg-type]
    return int(moment.replace(microsecond=0).timestamp()) * 1000 + moment.microsecond // 1000


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        # eKuiper's own cases (pkg/cast/time_test.go), with an explicit zone where they rely on one
        ("YYYY-MM-dd HH:mm:ssSSSXXX", "2022-04-13 06:22:32.233+08:00", SHANGHAI_MS),
        ("YYYY-MM-dd HH:mm:ssSSS", "2022-04-13 06:22:32.233", local_ms(2022, 4, 13, 6, 22, 32, 233000)),
        ("YYYY-MM-dd HH:mm:ss", "2020-01-16 02:14:24", local_ms(2020, 1, 16, 2, 14, 24)),
        ("YYYY-MM-dd h:m:sS", "2022-04-13 6:22:32.2", local_ms(2022, 4, 13, 6, 22, 32, 200000)),
        ("YYYY-MM-dd EEE HH:m:ssSSS", "2022-04-13 Wed 06:22:32.233",
         local_ms(2022, 4, 13, 6, 22, 32, 233000)),
        ("YYYY-MM-dd EEEE HH:m:ssSSSZ", "2022-04-13 Wednesday 06:22:32.233+0800", SHANGHAI_MS),
        ("yyyy-MM-ddTHH:mm:ssSSSSSSS\\Z", "2025-06-04T08:54:00.7530000Z",
         local_ms(2025, 6, 4, 8, 54, 0, 753000)),  # \Z is a literal Z here, as in eKuiper
        # the other tokens
        ("yyyy-MM-dd'T'HH:mm:ssX", "2022-04-12T22:22:32Z", SHANGHAI_MS - 233),
        ("dd MMM yy hh:mm:ss a XX", "13 Apr 22 06:22:32 AM +0800", SHANGHAI_MS - 233),
        ("dd MMMM YYYY hh:mm:ss a XXX", "12 April 2022 10:22:32 pm -00:00", SHANGHAI_MS - 233),
        ("G YYYY/M/d HH:mm:ss XXX", "AD 2022/4/13 06:22:32 +08:00", SHANGHAI_MS - 233),
        ("YYYY-MM-dd HH:mm:ss XXX", "2022-04-13 06:22:32.233 +08:00", SHANGHAI_MS),  # Go: fraction after ss
        ("''YYYY''-MM-dd HH:mm:ss XXX", "'2022'-04-13 06:22:32 +08:00", SHANGHAI_MS - 233),
        ("yy-MM-dd HH:mm:ss XXX", "69-01-01 00:00:00 +00:00", -365 * 86_400_000),  # 69: 1969, as Go
    ],
)
def test_format_tokens(fmt: str, text: str, expected: int) -> None:
    assert compile_format(fmt)(text) == expected


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("YYY-MM-dd", "'YYY' is not a valid field: use YY or YYYY"),
        ("YYYY-MM-dd H:mm", "'H' is not a valid field: use HH"),
        ("YYYY-MM-dd HH:mm z", "zone names (z) are ambiguous"),
        ("YYYY-MM-dd E", "'E' is not a valid field: use EEE or EEEE"),
        ("YYYY\\", "lone backslash"),
        ("HH:mm:ss", "no year"),
        ("YYYY yy", "sets the year twice"),
        ("YYYYY", "'YYYYY' is not a valid field"),
    ],
)
def test_bad_formats_are_refused_with_a_reason(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_format(fmt)


def test_a_string_that_does_not_match_is_refused() -> None:
    parse = compile_format("YYYY-MM-dd HH:mm:ss")
    for text in ["2022-04-13", "2022-13-01 00:00:00", "2022-04-13 25:00:00", "13/04/2022 06:22:32"]:
        with pytest.raises(ValueError):
            parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-04-12T22:22:32.233Z", SHANGHAI_MS),
        ("2022-04-13T06:22:32.233+08:00", SHANGHAI_MS),
        ("2022-04-13 06:22:32.233456789+0800", SHANGHAI_MS),
        ("2022-04-13T06:22:32", local_ms(2022, 4, 13, 6, 22, 32)),
        ("2022-04-13", local_ms(2022, 4, 13)),
    ],
)
def test_iso_8601_without_a_format(text: str, expected: int) -> None:
    assert parse_iso(text) == expected


def test_event_time_values() -> None:
    event_time = make_event_time("ts")
    assert event_time is not None and make_event_time(None) is None
    assert event_time({"ts": SHANGHAI_MS}) == SHANGHAI_MS
    assert event_time({"ts": 1649802152233.9}) == SHANGHAI_MS  # truncated, as eKuiper's int64()
    assert event_time({"ts": "2022-04-12T22:22:32.233Z"}) == SHANGHAI_MS
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "TIMESTAMP field 'ts' is missing"),
        ({"ts": True}, "TIMESTAMP field 'ts': expected milliseconds since the epoch or a time string, "
                       "got a boolean"),
        ({"ts": None}, "got null"),
        ({"ts": math.nan}, "got nan"),
        ({"ts": [1]}, "got list"),
        ({"ts": "yesterday"}, "TIMESTAMP field 'ts': 'yesterday' expected an ISO 8601 time"),
    ]
    for record, message in bad:
        with pytest.raises(ekws.DecodeError, match=message.replace("(", r"\(")):
            event_time(record)


def test_a_stream_with_timestamp_sets_meta_timestamp_and_reports_bad_records(tmp_path: Path) -> None:
    got, errors = Collector(), ErrorLog()
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream('CREATE STREAM demo () WITH (DATASOURCE="/ws", TYPE="websocket", '
                         'TIMESTAMP="ts", TIMESTAMP_FORMAT="YYYY-MM-dd HH:mm:ssSSSXXX")')
        with rt.subscribe("demo", got, errors):
            port = rt.server_address[1]  # type: ignore[index]
            with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                ws.send(json.dumps([
                    {"n": 0, "ts": SHANGHAI_MS},
                    {"n": 1, "ts": "2022-04-13 06:22:32.233+08:00"},
                    {"n": 2},
                    {"n": 3, "ts": "2022-04-13T06:22:32"},
                    {"n": 4, "ts": 5.5},
                ]))
                assert got.wait_for(3)
                assert wait_until(lambda: len(errors.errors) == 2)
            assert [(m.data["n"], m.meta["timestamp"], m.timestamp) for m in got.messages] == [
                (0, SHANGHAI_MS, SHANGHAI_MS), (1, SHANGHAI_MS, SHANGHAI_MS), (4, 5, 5)]
            messages = [str(e) for e in errors.errors]
            assert "record from" in messages[0] and "TIMESTAMP field 'ts' is missing" in messages[0]
            assert "TIMESTAMP field 'ts': '2022-04-13T06:22:32' does not match TIMESTAMP_FORMAT" \
                in messages[1]
            metrics = rt.status("demo")
            assert metrics["decode_errors_total"] == 2 and metrics["records_in_total"] == 3
