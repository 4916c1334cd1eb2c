"""``Runtime.query``: a rule's SQL in a device script, fed by a real WebSocket peer."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import pytest
from helpers.rules import send
from helpers.server import ws_connect

import ekws
from ekws.rules.continuous import ContinuousQuery
from ekws.rules.sql import SQLError
from ekws.rules.window import TIMERS


def _early_in_a_window(ms: int) -> None:
    """Wait, if needed, for the first half of a window of ``ms``: what is sent next shares one."""
    phase = time.time() * 1000 % ms
    if phase > ms / 2:
        time.sleep((ms - phase) / 1000 + 0.01)


def test_a_tumbling_window_gives_one_message_per_group_with_the_bounds_in_meta(
        runtime: ekws.Runtime) -> None:
    got: queue.Queue[ekws.Message] = queue.Queue()
    sql = "SELECT d, avg(temperature) AS t, count(*) AS n FROM demo GROUP BY d, TUMBLINGWINDOW(ms, 500)"
    with runtime.query(sql, got.put) as q:
        assert isinstance(q, ContinuousQuery)
        _early_in_a_window(500)
        send(runtime, {"d": "a", "temperature": 20}, {"d": "b", "temperature": 31.5},
             {"d": "a", "temperature": 25})
        first, second = got.get(timeout=5), got.get(timeout=5)
    assert (first.data, second.data) == ({"d": "a", "t": 22.5, "n": 2}, {"d": "b", "t": 31.5, "n": 1})
    meta = first.meta
    assert meta["window_end"] - meta["window_start"] == 500 and meta["window_end"] % 500 == 0
    assert first.timestamp == meta["window_end"] and meta["stream"] == "demo"
    assert q.closed and q.records_in == 3 and q.results == 2


def test_without_a_window_each_record_the_where_passes_is_a_result(runtime: ekws.Runtime) -> None:
    got: queue.Queue[ekws.Message] = queue.Queue()
    with runtime.query("SELECT *, upper(s) AS u FROM demo WHERE n > 1", got.put):
        send(runtime, {"n": 1, "s": "x"}, {"n": 2, "s": "y"})
        result = got.get(timeout=5)
    assert result.data == {"n": 2, "s": "y", "u": "Y"}
    assert result.meta["window_start"] is None and got.empty()


def test_errors_go_to_on_error(runtime: ekws.Runtime) -> None:
    errors: queue.Queue[ekws.EkwsError] = queue.Queue()

    def on_result(msg: ekws.Message) -> None:
        raise RuntimeError("boom")
    with runtime.query("SELECT n / 0 AS x FROM demo", lambda m: None, errors.put), \
            runtime.query("SELECT n FROM demo", on_result, errors.put):
        send(runtime, {"n": 1})
        received = [errors.get(timeout=5), errors.get(timeout=5)]
    callback = next(e for e in received if isinstance(e, ekws.CallbackError))
    assert callback.callback == "on_result" and isinstance(callback.__cause__, RuntimeError)
    assert callback.item.data == {"n": 1}
    assert any("division by zero" in str(e) or "divide" in str(e) for e in received)


def test_closing_drops_the_open_window_and_leaves_no_timer(runtime: ekws.Runtime) -> None:
    before = TIMERS.pending()
    got: list[ekws.Message] = []
    q = runtime.query("SELECT count(*) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)", got.append)
    assert TIMERS.pending() == before + 1
    send(runtime, {"n": 1})
    q.close()
    q.close()  # idempotent
    assert TIMERS.pending() == before and got == []


def test_event_time_windows_fire_on_the_records_time(runtime: ekws.Runtime) -> None:
    runtime.create_stream('CREATE STREAM ev() WITH (DATASOURCE="/ev", FORMAT="json", TYPE="websocket", '
                          'TIMESTAMP="ts")')
    got: list[ekws.Message] = []
    done = threading.Event()

    def on_result(msg: ekws.Message) -> None:
        got.append(msg)
        if len(got) == 2:
            done.set()
    with runtime.query("SELECT sum(v) AS s FROM ev GROUP BY TUMBLINGWINDOW(ss, 1)", on_result,
                       is_event_time=True, late_tolerance=200) as q:
        address = runtime.server_address
        assert address is not None
        with ws_connect(f"ws://127.0.0.1:{address[1]}/ev") as ws:
            for ts, v in [(1000, 1), (1900, 2), (2100, 4), (1500, 8), (3300, 16)]:
                ws.send(json.dumps({"ts": ts, "v": v}))
        assert done.wait(5)
    assert [(m.data, m.meta["window_start"], m.meta["window_end"]) for m in got] == [
        ({"s": 3}, 1000, 2000), ({"s": 4}, 2000, 3000)]
    assert q.late == 1  # 1500 came after 2100 moved the watermark to 1900


def test_bad_sql_and_unknown_streams_raise_at_once(runtime: ekws.Runtime) -> None:
    with pytest.raises(SQLError, match="needs a window"):
        runtime.query("SELECT count(*) FROM demo", print)
    with pytest.raises(ekws.StreamNotFound):
        runtime.query("SELECT * FROM nope", print)
    before = TIMERS.pending()
    with pytest.raises(ekws.StreamNotFound):
        runtime.query("SELECT count(*) FROM nope GROUP BY TUMBLINGWINDOW(ss, 1)", print)
    assert TIMERS.pending() == before  # the window made for it was stopped


def test_results_are_plain_data(runtime: ekws.Runtime) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with runtime.query("SELECT * FROM demo", lambda m: got.put(m.data)):
        send(runtime, {"a": [1, {"b": None}]})
        assert got.get(timeout=5) == {"a": [1, {"b": None}]}
