"""Analytic functions (``lag latest changed_col had_changed acc_*``) in window queries, as eKuiper
runs them: evaluated before the window on every record (the WHERE drops none of their updates),
and each row keeps its own value for the window's projection, aggregates and HAVING
(eKuiper's ``internal/topo/operator/analyticfuncs_operator.go``, placed before the window by
``internal/topo/planner/planner.go``). Real rules, fed by a real WebSocket client; count windows
and event time, so nothing waits on the clock."""

from __future__ import annotations

import json
import logging
import queue
from typing import Any

import pytest
from helpers.rules import send
from helpers.server import wait_until, ws_connect

import ekws
from ekws.rules.manager import RuleManager
from ekws.rules.sql import SQLError, parse_query

DEMO = [  # internal/topo/topotest/mocknode/mock_data.go "demo"
    {"color": "red", "size": 3, "ts": 1541152486013},
    {"color": "blue", "size": 6, "ts": 1541152486822},
    {"color": "blue", "size": 2, "ts": 1541152487632},
    {"color": "yellow", "size": 4, "ts": 1541152488442},
    {"color": "red", "size": 1, "ts": 1541152489252},
]


def _windows(caplog: pytest.LogCaptureFixture, rule_id: str) -> list[list[dict[str, Any]]]:
    # eKuiper's log sink logs a window's rows as one JSON array (sendSingle false).
    prefix = f"sink result for rule {rule_id}: "
    return [json.loads(r.getMessage()[len(prefix):]) for r in caplog.records
            if r.name == "ekws.actions.log" and r.getMessage().startswith(prefix)]


def _rule(rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture, sql: str,
          windows: int, records: list[dict[str, Any]] = DEMO) -> list[list[dict[str, Any]]]:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    rules.create({"id": "a", "sql": sql, "actions": [{"log": {}}]})
    send(runtime, *records)
    assert wait_until(lambda: len(_windows(caplog, "a")) >= windows, timeout=5)
    assert wait_until(lambda: rules.status("a")["source_demo_0_records_in_total"] == len(records), timeout=5)
    return _windows(caplog, "a")


def test_lag_in_a_count_window_keeps_each_rows_value(rules: RuleManager, runtime: ekws.Runtime,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # rule_test.go TestSingleSQL "TestAnalyzeFuncAlias1": SELECT lag(size,1,0) as temp INVISIBLE,
    # temp + 1 as b, lag(b,1,0), size FROM demo Group by COUNTWINDOW(5). ekws refuses select
    # aliases in later columns, so the aliases are written out; the rows are eKuiper's.
    out = _rule(rules, runtime, caplog, "SELECT lag(size, 1, 0) + 1 AS b, lag(lag(size, 1, 0) + 1, 1, 0) "
                "AS lag, size FROM demo GROUP BY COUNTWINDOW(5)", 1)
    assert out == [[{"b": 1, "lag": 0, "size": 3}, {"b": 4, "lag": 1, "size": 6},
                    {"b": 7, "lag": 4, "size": 2}, {"b": 3, "lag": 7, "size": 4},
                    {"b": 5, "lag": 3, "size": 1}]]


def test_aggregates_over_analytic_values_incremental_and_row_based(
        rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # lag(size, 1, 0): 0 3 6 2 4; acc_sum(size): 3 9 11 15 16
    sql = ("SELECT sum(lag(size, 1, 0)) AS s, max(acc_sum(size)) AS a, avg(lag(size, 1, 0)) AS m "
           "FROM demo GROUP BY COUNTWINDOW(5)")
    assert parse_query(sql).grouping.incremental  # type: ignore[union-attr]
    rows = [{"s": 15, "a": 16.0, "m": 3.0}]
    rules.create({"id": "r", "sql": sql.replace("avg(", "median("), "actions": [{"log": {}}]})
    assert parse_query(sql.replace("avg(", "median(")).grouping.needs_rows  # type: ignore[union-attr]
    assert _rule(rules, runtime, caplog, sql, 1) == [rows]
    assert wait_until(lambda: _windows(caplog, "r"), timeout=5)
    assert _windows(caplog, "r") == [rows]


def test_analytic_calls_move_on_records_the_where_drops(rules: RuleManager, runtime: ekws.Runtime,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # As eKuiper: the analytic op runs before the filter, so lag() sees size 2 though WHERE drops it.
    out = _rule(rules, runtime, caplog, "SELECT collect(lag(size)) AS l, collect(size) AS s FROM demo "
                "WHERE size > 2 GROUP BY COUNTWINDOW(3)", 1)
    assert out == [[{"l": [None, 3, 2], "s": [3, 6, 4]}]]


def test_partition_and_when_in_a_grouped_window(rules: RuleManager, runtime: ekws.Runtime,
                                                caplog: pytest.LogCaptureFixture) -> None:
    # rule_test.go's acc_sum(size) over (partition by color) and over (when color = "red"), in a window
    out = _rule(rules, runtime, caplog, "SELECT color, collect(acc_sum(size) OVER (PARTITION BY color)) "
                "AS p, collect(acc_sum(size) OVER (WHEN color = \"red\")) AS w FROM demo "
                "GROUP BY color, COUNTWINDOW(5) ORDER BY color", 1)
    assert out == [[{"color": "blue", "p": [6.0, 8.0], "w": [3.0, 3.0]},
                    {"color": "red", "p": [3.0, 4.0], "w": [3.0, 4.0]},
                    {"color": "yellow", "p": [4.0], "w": [3.0]}]]


def test_outside_an_aggregate_and_in_having_the_groups_first_row(
        rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # A non-aggregate column of a group reads its first row, an analytic call as a field does.
    out = _rule(rules, runtime, caplog, "SELECT lag(size, 1, 0) AS first_lag, had_changed(true, color) "
                "AS hc, count(*) AS n FROM demo GROUP BY COUNTWINDOW(2) HAVING latest(color) != \"red\"", 1)
    # windows: (3 red, 6 blue): its first row red, dropped by HAVING; (2 blue, 4 yellow): its first
    # row blue, size 2 after 6 and unchanged, though yellow came after it (latest() is now yellow).
    assert out == [[{"first_lag": 6, "hc": False, "n": 2}]]


def test_event_time_windows_keep_the_rows_values(rules: RuleManager, runtime: ekws.Runtime,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    runtime.create_stream('CREATE STREAM ev() WITH (DATASOURCE="/ev", FORMAT="json", TYPE="websocket", '
                          'TIMESTAMP="ts")')
    rules.create({"id": "e", "sql": "SELECT collect(lag(ts)) AS l, collect(changed_col(true, v)) AS c "
                  "FROM ev GROUP BY TUMBLINGWINDOW(ss, 1)", "actions": [{"log": {}}],
                  "options": {"isEventTime": True}})
    address = runtime.server_address
    assert address is not None
    with ws_connect(f"ws://127.0.0.1:{address[1]}/ev") as ws:
        for ts, v in ((1000, 1), (1500, 1), (2300, 2), (3100, 2)):
            ws.send(json.dumps({"ts": ts, "v": v}))
    assert wait_until(lambda: len(_windows(caplog, "e")) == 2, timeout=5)
    assert _windows(caplog, "e") == [[{"l": [None, 1000], "c": [1, None]}], [{"l": [1500], "c": [2]}]]


def test_a_restarted_rule_starts_its_analytic_state_and_windows_empty(
        rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # As eKuiper without checkpoints: a restart forgets lag()'s last value and the window's rows.
    out = _rule(rules, runtime, caplog, "SELECT collect(lag(size)) AS l FROM demo GROUP BY COUNTWINDOW(2)", 2)
    assert out == [[{"l": [None, 3]}], [{"l": [6, 2]}]]  # size 1 waits in the window
    rules.restart("a")
    assert wait_until(lambda: rules.is_running("a"), timeout=5)
    send(runtime, {"size": 7}, {"size": 8})
    assert wait_until(lambda: len(_windows(caplog, "a")) == 3, timeout=5)
    assert _windows(caplog, "a")[2] == [{"l": [None, 7]}]


def test_in_a_device_script_query_with_a_sliding_window(runtime: ekws.Runtime) -> None:
    # rt.query runs the same engine: the trigger, the CASE and collect() read each row's lag()
    got: queue.Queue[ekws.Message] = queue.Queue()
    sql = ("SELECT collect(lag(t)) AS l, sum(CASE WHEN t > lag(t) THEN 1 ELSE 0 END) AS rises FROM demo "
           "GROUP BY SLIDINGWINDOW(ss, 10) OVER (WHEN t > lag(t, 1, 0) + 1)")
    with runtime.query(sql, got.put):
        send(runtime, {"t": 1}, {"t": 3}, {"t": 2}, {"t": 5}, {"t": 6})
        first, second = got.get(timeout=5), got.get(timeout=5)
    # t 1 3 2 5 6, lag(t) None 1 3 2 5: t=1 (1 > 0 + 1 is false) and t=6 do not trigger
    assert first.data == {"l": [None, 1], "rises": 1}
    assert second.data == {"l": [None, 1, 3, 2], "rises": 2}
    assert got.empty()


def test_what_stays_refused_in_a_window() -> None:
    with pytest.raises(SQLError, match="last_hit_count"):
        parse_query("SELECT last_hit_count() AS n, count(*) FROM demo GROUP BY COUNTWINDOW(2)")
    with pytest.raises(SQLError, match="changed_cols"):
        parse_query("SELECT changed_cols(\"\", true, a) FROM demo GROUP BY COUNTWINDOW(2)")
