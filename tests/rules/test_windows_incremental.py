"""Incremental windows: O(groups) memory, the limits, and agreement with the row-based way.

A query whose aggregates all have accumulators (count sum avg min max stddev
stddevs var vars last_value) over a tumbling or count window keeps groups of
accumulators, not rows (eKuiper's IncAggWindow, internal/topo/node/window_inc_agg_op.go,
there behind ``planOptimizeStrategy.enableIncrementalWindow``, here automatic).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
import tracemalloc
from typing import Any, Optional

import pytest
from helpers.rules import send
from helpers.server import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ekws
from ekws.rules.grouping import GroupLimit
from ekws.rules.manager import RuleManager
from ekws.rules.sql import parse_query
from ekws.rules.window import Emission, WindowState

START = 1_000_000_000_000  # a multiple of every window size used here
PEER = ekws.Peer("s", "", "", 0)


def _state(sql: str, incremental: bool, limit: Optional[GroupLimit] = None,
           max_rows: int = 100_000) -> tuple[Any, WindowState, GroupLimit]:
    grouping = parse_query(sql).grouping
    assert grouping is not None
    limit = limit or GroupLimit()
    factory = (lambda: grouping.new_groups(limit)) if incremental else None
    return grouping, WindowState(grouping.window, START, max_rows, groups=factory), limit


@pytest.mark.parametrize("sql, incremental", [
    ("SELECT avg(t) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", True),
    ("SELECT d, count(*), sum(t), min(t), max(t), stddev(t), vars(t), last_value(t, true) FROM s "
     "GROUP BY d, TUMBLINGWINDOW(ss, 1) HAVING avg(t) > 1 ORDER BY d DESC LIMIT 3", True),
    ("SELECT *, count(*) FROM s GROUP BY COUNTWINDOW(5)", True),
    ("SELECT count(*) FROM s GROUP BY COUNTWINDOW(5, 2)", False),  # overlapping: rows
    # eKuiper's IncAggWindow covers hopping windows too: one set of groups per open window
    ("SELECT avg(t) FROM s GROUP BY HOPPINGWINDOW(ss, 10, 5)", True),
    # ... and sliding windows, with one set per row (more than the rows): ekws keeps the rows
    ("SELECT avg(t) FROM s GROUP BY SLIDINGWINDOW(ss, 10)", False),
    ("SELECT collect(t) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", False),
    ("SELECT median(t), avg(t) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", False),
    ("SELECT t FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", False),  # one row per record
    ("SELECT last_value(t, b) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", False),  # not a literal
])
def test_which_queries_keep_no_rows(sql: str, incremental: bool) -> None:
    grouping = parse_query(sql).grouping
    assert grouping is not None and grouping.incremental is incremental


def test_avg_over_10000_groups_and_1000000_records_holds_o_groups_memory() -> None:
    # 1,000,000 records in three phases, so tracemalloc (which slows every allocation ~10x)
    # traces 130,000 of them: A (traced) opens every group; B (untraced, 870,000) must leave
    # no Python object behind; C (traced, 100,000) must not grow the traced memory.
    grouping, state, limit = _state(
        "SELECT deviceId, avg(temperature) AS t FROM s GROUP BY deviceId, TUMBLINGWINDOW(ss, 10)", True)
    msgs = [ekws.Message({"deviceId": n % 10_000, "temperature": 20 + n % 7 + (n % 3) / 4}, PEER, START)
            for n in range(70_000)]  # built first: the state's own memory is what is traced
    add = state.add
    tracemalloc.start()
    try:
        for n in range(30_000):
            add(msgs[n % 70_000], START + 1)
        after_a = tracemalloc.get_traced_memory()[0]
        gc.collect()
        objects_a = len(gc.get_objects())
        tracemalloc.stop()
        for n in range(30_000, 900_000):
            add(msgs[n % 70_000], START + 1)
        gc.collect()
        objects_b = len(gc.get_objects())
        tracemalloc.start()
        for n in range(900_000, 1_000_000):
            add(msgs[n % 70_000], START + 1)
        grown_c = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert state.held == 10_000
    assert after_a < 16_000_000  # ~1 KB a group: its key, first row reference and accumulator
    assert abs(objects_b - objects_a) < 100  # 870,000 records later: no row, no tuple kept
    assert grown_c < 200_000  # a row-based window would hold 100,000 more (t, row) pairs here
    [emission] = state.fire(START + 10_000)
    rows = [row for row, _ in grouping.evaluate(emission, limit)]
    assert len(rows) == 10_000 and limit.dropped == 0
    # device 0 got the messages n % 70,000 for n = 0, 10000, 20000, ...: their exact fsum
    expected = [msgs[n % 70_000].data["temperature"] for n in range(0, 1_000_000, 10_000)]
    assert rows[0] == {"deviceId": 0, "t": math.fsum(expected) / len(expected)}


def test_collect_over_the_row_limit_is_bounded_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    grouping, state, limit = _state("SELECT collect(*) AS rows FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
                                    False, max_rows=1000)
    with caplog.at_level(logging.WARNING, logger="ekws.rules.window"):
        for n in range(5000):
            state.add(ekws.Message({"n": n}, PEER, START), START + 1)
    assert state.held == 1000 and state.dropped == 4000
    assert len([r for r in caplog.records if "limit" in r.getMessage()]) == 1  # logged once
    [emission] = state.fire(START + 1000)
    [(row, _)] = grouping.evaluate(emission, limit)
    assert row["rows"] == [{"n": n} for n in range(1000)]  # the first 1000, in order


@pytest.mark.parametrize("incremental", [True, False])
def test_groups_over_the_limit_are_dropped_and_counted_both_ways(
        incremental: bool, caplog: pytest.LogCaptureFixture) -> None:
    sql = ("SELECT d, count(*) AS n FROM s GROUP BY d, TUMBLINGWINDOW(ss, 1)" if incremental else
           "SELECT d, collect(x) AS n FROM s GROUP BY d, TUMBLINGWINDOW(ss, 1)")
    grouping, state, limit = _state(sql, incremental, GroupLimit(3))
    with caplog.at_level(logging.WARNING, logger="ekws.rules.grouping"):
        for n in range(10):
            state.add(ekws.Message({"d": n % 5, "x": n}, PEER, START), START + 1)
        [emission] = state.fire(START + 1000)
        rows = [row["d"] for row, _ in grouping.evaluate(emission, limit)]
    assert rows == [0, 1, 2]
    assert limit.dropped == 4  # d = 3 and 4, twice each
    assert len([r for r in caplog.records if "maxWindowGroups" in r.getMessage()]) == 1


def test_event_time_out_of_order_rows_keep_time_order_semantics() -> None:
    # last_value is the latest row by time, a group's first row is its earliest, and the
    # groups come in the order of their first rows, as the row-based window (rows sorted).
    sql = "SELECT d, first, last_value(v, true) AS v FROM s GROUP BY d, TUMBLINGWINDOW(ss, 1)"
    rows = [(START + 500, {"d": "a", "first": 1, "v": 1}), (START + 100, {"d": "b", "first": 2, "v": 2}),
            (START + 50, {"d": "a", "first": 3, "v": 3}), (START + 400, {"d": "a", "first": 4, "v": 4})]
    results = []
    for incremental in (True, False):
        grouping, state, limit = _state(sql, incremental)
        for at, record in rows:
            state.add(ekws.Message(record, PEER, at), at)
        [emission] = state.fire(START + 1000)
        results.append([row for row, _ in grouping.evaluate(emission, limit)])
    assert results[0] == results[1] == [{"d": "a", "first": 3, "v": 1}, {"d": "b", "first": 2, "v": 2}]


# --------------------------------------------------------------------------- agreement

_INCREMENTAL_SQL = [
    "SELECT count(*) AS n, count(x) AS c, sum(x) AS s, avg(x) AS a FROM s GROUP BY TUMBLINGWINDOW(ms, 100)",
    "SELECT k, min(x) AS lo, max(x) AS hi, last_value(x, true) AS l, last_value(x, false) AS lf FROM s "
    "GROUP BY k, TUMBLINGWINDOW(ms, 100)",
    "SELECT k, stddev(x) AS sd, stddevs(x) AS sds, var(x) AS v, vars(x) AS vs FROM s "
    "GROUP BY k, TUMBLINGWINDOW(ms, 100) HAVING count(*) > 1 ORDER BY sum(x) DESC, k LIMIT 2",
    "SELECT *, avg(x) / 2 AS h, window_start() AS ws, window_end() AS we FROM s GROUP BY k, COUNTWINDOW(4)",
    "SELECT k, sum(x) AS s, max(k) AS m FROM s WHERE x IS NOT NULL GROUP BY k, COUNTWINDOW(3)",
    "SELECT k, count(*) AS n, sum(x) AS s, min(x) AS lo, window_start() AS ws, window_end() AS we FROM s "
    "GROUP BY k, HOPPINGWINDOW(ms, 100, 30) HAVING count(*) > 1 ORDER BY k",
    "SELECT *, avg(x) AS a, stddev(x) AS sd FROM s GROUP BY HOPPINGWINDOW(ms, 60, 60)",
]
_NUMBERS = st.integers(-10 ** 6, 10 ** 6) | st.floats(-1e6, 1e6, allow_nan=False)
_X = st.none() | _NUMBERS | _NUMBERS | _NUMBERS | st.sampled_from(["s", True, [1]])
_RECORDS = st.lists(st.tuples(st.integers(0, 60), st.sampled_from(["a", "b", "c", 1, None]), _X),
                    max_size=40)


def _outputs(sql: str, records: list[tuple[int, Any, Any]], incremental: bool) -> list[Any]:
    query = parse_query(sql)
    grouping, state, limit = _state(sql, incremental)
    out: list[Any] = []
    at = START
    emissions: list[Emission] = []
    for step, k, x in records:
        at += step
        emissions += state.fire(at - 1)
        msg = ekws.Message({"k": k, "x": x}, PEER, at)
        if query.run(msg) is not None:
            emissions += state.add(msg, at)
    emissions += state.fire(at + 1000)
    for emission in emissions:
        try:
            out.append([row for row, _ in grouping.evaluate(emission, limit)])
        except Exception as exc:  # both ways must fail alike
            out.append((type(exc).__name__, str(exc)))
    return [o for o in out if o != []]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_INCREMENTAL_SQL), _RECORDS)
def test_incremental_and_row_based_agree_on_random_data(sql: str,
                                                        records: list[tuple[int, Any, Any]]) -> None:
    assert parse_query(sql).grouping.incremental  # type: ignore[union-attr]
    assert _outputs(sql, records, True) == _outputs(sql, records, False)


# --------------------------------------------------------------------------- a real rule


def _logged(caplog: pytest.LogCaptureFixture, rule_id: str) -> list[dict[str, Any]]:
    # eKuiper's log sink logs a window's rows as one JSON array (sendSingle false): the rows, in order.
    prefix = f"sink result for rule {rule_id}: "
    return [row for r in caplog.records if r.name == "ekws.actions.log" and r.getMessage().startswith(prefix)
            for row in json.loads(r.getMessage()[len(prefix):])]


def test_a_rule_counts_rows_and_groups_over_its_limits(rules: RuleManager, runtime: ekws.Runtime,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    rules.create({"id": "g", "sql": "SELECT d, count(*) AS n FROM demo GROUP BY d, COUNTWINDOW(6)",
                  "actions": [{"log": {}}], "options": {"maxWindowGroups": 2}})
    rules.create({"id": "r", "sql": "SELECT collect(d) AS ds FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)",
                  "actions": [{"log": {}}], "options": {"maxWindowRows": 2}})
    if time.time() % 1 > 0.5:  # early in a second, so the tumbling window holds all six
        time.sleep(1 - time.time() % 1 + 0.01)
    send(runtime, *[{"d": n % 3} for n in range(6)])
    assert wait_until(lambda: _logged(caplog, "g") and _logged(caplog, "r"), timeout=5)
    assert _logged(caplog, "g") == [{"d": 0, "n": 2}, {"d": 1, "n": 2}]
    assert _logged(caplog, "r") == [{"ds": [0, 1]}]
    assert rules.status("g")["op_2_window_0_groups_dropped_total"] == 2
    assert rules.status("r")["op_2_window_0_dropped_total"] == 4
    with pytest.raises(ValueError, match="maxWindowGroups"):
        rules.create({"id": "bad", "sql": "SELECT count(*) FROM demo GROUP BY COUNTWINDOW(2)",
                      "actions": [{"log": {}}], "options": {"maxWindowGroups": 0}})


def test_the_window_op_has_ekuipers_metrics_and_ekws_limits(rules: RuleManager, runtime: ekws.Runtime,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    # eKuiper's op metrics: internal/topo/node/metric/stats_manager.go MetricNames (no connection_*
    # for an op), as window_rule_test.go expects them under op_2_window_0_ without a WHERE.
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    rules.create({"id": "m", "sql": "SELECT d, avg(t) AS a FROM demo WHERE t > 0 GROUP BY d, COUNTWINDOW(2)",
                  "actions": [{"log": {}}]})
    send(runtime, {"d": 1, "t": 1}, {"d": 2, "t": 0}, {"d": 1, "t": 3}, {"d": 3, "t": 5})
    assert wait_until(lambda: rules.status("m")["op_3_window_0_records_in_total"] == 3, timeout=5)
    status = rules.status("m")
    window = {k[len("op_3_window_0_"):]: v for k, v in status.items() if k.startswith("op_3_window_0_")}
    assert list(window) == ["records_in_total", "records_out_total", "messages_processed_total",
                            "process_latency_us", "buffer_length", "last_invocation", "exceptions_total",
                            "last_exception", "last_exception_time", "dropped_total",
                            "groups_dropped_total", "late_total", "held_rows", "held_groups"]
    assert window["records_out_total"] == 1 and window["messages_processed_total"] == 3
    assert window["held_groups"] == 1 and window["held_rows"] == 0  # d = 3 waits, as an accumulator
    assert window["last_invocation"] > 0 and window["exceptions_total"] == 0
    assert status["op_2_filter_0_records_out_total"] == 3
    assert _logged(caplog, "m") == [{"d": 1, "a": 2.0}]


def test_a_hopping_window_keeps_groups_per_open_window_not_rows() -> None:
    # HOPPINGWINDOW(ss, 10, 5): a row is in the two windows that hold it, so two sets of groups
    sql = "SELECT k, avg(x) AS a, count(*) AS n FROM s GROUP BY k, HOPPINGWINDOW(ss, 10, 5)"
    grouping, state, limit = _state(sql, True)
    assert state.incremental
    at, emissions = START, []
    for n in range(10_000):  # 10 s of records, 3 groups
        at = START + n
        emissions += state.fire(at)
        state.add(ekws.Message({"k": n % 3, "x": n}, PEER, at), at)
        assert state.held <= 3 * 2
    assert state.rows == []
    emissions += state.fire(START + 20_000)
    out = [[row for row, _ in grouping.evaluate(e, limit)] for e in emissions]
    # windows end on the hop (5 s): [-5, 5) [0, 10) [5, 15): 5000, 10000, 5000 rows
    assert [sum(r["n"] for r in rows) for rows in out] == [5000, 10_000, 5000]
    assert out[0][0] == {"k": 0, "a": 2499.0, "n": 1667}
