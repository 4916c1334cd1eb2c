"""Windows on processing time, driven by a replaced clock (no sleeps), then one real rule.

The cases marked with an eKuiper test name are ported from
internal/topo/topotest/window_rule_test.go over the ``demo`` and
``sessionDemo`` records of internal/topo/topotest/mocknode/mock_data.go: the
records arrive at their timestamps and the mock clock starts at
1541152486000, as there. Differences from the Go expectations: an empty window
emits nothing here (eKuiper sends an empty list) and a null column stays in
the row (eKuiper drops it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from helpers.rules import send
from helpers.server import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ekws
from ekws.rules.aggregates import aggregate
from ekws.rules.expr import EvalError
from ekws.rules.grouping import GroupLimit
from ekws.rules.manager import RuleManager
from ekws.rules.sql import SQLError, parse_query
from ekws.rules.window import (
    Emission,
    EventWindowRunner,
    Timers,
    WindowRunner,
    WindowSpec,
    WindowState,
    aligned_end,
)

START = 1541152486000
DEMO = [  # mock_data.go "demo"
    (1541152486013, {"color": "red", "size": 3, "ts": 1541152486013}),
    (1541152486822, {"color": "blue", "size": 6, "ts": 1541152486822}),
    (1541152487632, {"color": "blue", "size": 2, "ts": 1541152487632}),
    (1541152488442, {"color": "yellow", "size": 4, "ts": 1541152488442}),
    (1541152489252, {"color": "red", "size": 1, "ts": 1541152489252}),
]
SESSION_DEMO = [(t, {"temp": temp}) for t, temp in [  # mock_data.go "sessionDemo"
    (1541152486013, 25.5), (1541152486823, 27.5), (1541152487932, 28.1), (1541152488442, 27.4),
    (1541152489252, 25.5), (1541152490062, 26.2), (1541152490872, 26.8), (1541152491682, 28.9),
    (1541152492492, 29.1), (1541152493202, 32.2), (1541152494112, 30.9)]]
PEER = ekws.Peer("demo", "", "", 0)


def run(sql: str, records: list[tuple[int, dict[str, Any]]], until: int,
        start: int = START) -> list[list[dict[str, Any]]]:
    """Each window's output rows: the records arrive at their times, the clock stops at ``until``.

    A query the window computes incrementally runs both ways, which must agree."""
    out = _run(sql, records, until, start, False)
    grouping = parse_query(sql).grouping
    if grouping is not None and grouping.incremental:
        assert _run(sql, records, until, start, True) == out
    return out


def _run(sql: str, records: list[tuple[int, dict[str, Any]]], until: int, start: int,
         incremental: bool) -> list[list[dict[str, Any]]]:
    query = parse_query(sql)
    assert query.grouping is not None
    grouping = query.grouping
    limit = GroupLimit()
    state = WindowState(grouping.window, start, trigger=grouping.triggers if grouping.trigger else None,
                        state=grouping.state,
                        groups=(lambda: grouping.new_groups(limit)) if incremental else None)
    emissions: list[Emission] = []
    for at, record in records:
        emissions += state.fire(at - 1)  # deadlines before this record
        msg = ekws.Message(dict(record), PEER, at)
        if query.run(msg) is not None:
            emissions += state.add(msg, at)
    emissions += state.fire(until)
    outputs = [[row for row, _ in query.grouping.evaluate(e)] for e in emissions]
    return [rows for rows in outputs if rows]  # HAVING may leave a window nothing to send


def test_sliding_with_filter_and_over_when() -> None:
    # TestWindowRule0
    sql = ('SELECT size,color FROM demo GROUP BY SlidingWindow(ss, 5) Filter (where color = "red") '
           'Over (when size = 1)')
    assert run(sql, DEMO, 1541152490000) == [[{"size": 3, "color": "red"}, {"size": 1, "color": "red"}]]


def test_hopping_with_filter() -> None:
    # TestWindowRule9
    sql = ("SELECT color, window_start(), window_end() FROM demo GROUP BY HOPPINGWINDOW(ss, 2, 1) "
           "FILTER( WHERE size > 2)")
    assert run(sql, DEMO, 1541152489100) == [
        [{"color": "red", "window_start": 1541152485000, "window_end": 1541152487000},
         {"color": "blue", "window_start": 1541152485000, "window_end": 1541152487000}],
        [{"color": "red", "window_start": 1541152486000, "window_end": 1541152488000},
         {"color": "blue", "window_start": 1541152486000, "window_end": 1541152488000}],
        [{"color": "yellow", "window_start": 1541152487000, "window_end": 1541152489000}]]


def test_sliding_with_filter_only() -> None:
    # TestWindowRule13
    sql = "SELECT color as c FROM demo GROUP BY SlidingWindow(ss, 3600) filter (where size = 3 )"
    assert run(sql, DEMO, 1541152490000) == [[{"c": "red"}]]


def test_sliding_delay_over_when() -> None:
    # TestSlidingDelay
    sql = "SELECT size,color FROM demo GROUP BY SlidingWindow(ss, 5, 1) Over (when size = 2)"
    assert run(sql, DEMO, 1541152490000) == [[
        {"size": 3, "color": "red"}, {"size": 6, "color": "blue"}, {"size": 2, "color": "blue"},
        {"size": 4, "color": "yellow"}]]


def test_state_window_begin_and_emit_per_partition() -> None:
    # eKuiper's docs/en_US/sqls/windows.md, "State Window Partitioning"
    sql = "SELECT * from demo group by statewindow(a = 1, a = 5) over (partition by b)"
    records = [(START + n, r) for n, r in enumerate([{"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 5, "b": 1}])]
    assert run(sql, records, START + 10) == [[{"a": 1, "b": 1}, {"a": 5, "b": 1}]]


def test_state_window_single_condition() -> None:
    # windows.md, "Single Conditional State Window", with a condition in place of had_changed(a)
    sql = "SELECT collect(a) AS a FROM demo GROUP BY STATEWINDOW(b = true)"
    rows = [{"a": 0, "b": False}, {"a": 1, "b": True}, {"a": 1}, {"a": 1}, {"a": 2, "b": True}, {"a": 2},
            {"a": 3, "b": True}]
    records = [(START + n, r) for n, r in enumerate(rows)]
    assert run(sql, records, START + 10) == [[{"a": [1, 1, 1]}], [{"a": [2, 2]}]]


def test_tumbling_with_where() -> None:
    # TestWindowRule2
    out = run("SELECT color, ts FROM demo where size > 2 GROUP BY tumblingwindow(ss, 1)", DEMO, 1541152489000)
    assert out == [[{"color": "red", "ts": 1541152486013}, {"color": "blue", "ts": 1541152486822}],
                   [{"color": "yellow", "ts": 1541152488442}]]


def test_hopping_select_star() -> None:
    # TestWindowRule1
    out = run("SELECT *, event_time() as et FROM demo GROUP BY HOPPINGWINDOW(ss, 2, 1)", DEMO, 1541152489100)
    d = [{**r, "et": r["ts"]} for _, r in DEMO]
    assert out == [[d[0], d[1]], [d[0], d[1], d[2]], [d[2], d[3]]]


def test_tumbling_count_having_and_window_bounds() -> None:
    # TestWindowRule8
    sql = ("SELECT color, window_end(), event_time() as et, ts, count(*) as c, window_start() FROM demo "
           "where size > 2 GROUP BY tumblingwindow(ss, 1) having c > 1")
    assert run(sql, DEMO, 1541152489000) == [[{
        "color": "red", "window_end": 1541152487000, "et": 1541152487000, "ts": 1541152486013, "c": 2,
        "window_start": 1541152486000}]]


def test_count_window_collect_star() -> None:
    # TestCountWindowRule1: window_end() is the time of the row that completed the window
    sql = "SELECT collect(*)[0]->color as c, window_end() as we FROM demo GROUP BY COUNTWINDOW(3)"
    assert run(sql, DEMO, 1541152490000) == [[{"c": "red", "we": 1541152487632}]]


def test_sliding_deduplicate() -> None:
    # TestWindowRule10 (the null column stays)
    sql = "SELECT deduplicate(color, false)->color as c FROM demo GROUP BY SlidingWindow(hh, 1)"
    assert run(sql, DEMO, 1541152490000) == [[{"c": "red"}], [{"c": "blue"}], [{"c": None}],
                                              [{"c": "yellow"}], [{"c": None}]]


def test_hopping_grouped_by_field_ordered() -> None:
    # TestWindowRule12
    sql = "SELECT collect(size) as allSize FROM demo GROUP BY HOPPINGWINDOW(ss, 2, 1), color ORDER BY color"
    assert run(sql, DEMO, 1541152489100) == [
        [{"allSize": [6]}, {"allSize": [3]}], [{"allSize": [6, 2]}, {"allSize": [3]}],
        [{"allSize": [2]}, {"allSize": [4]}]]


def test_session_window_by_timeout_and_by_max_duration_tick() -> None:
    # TestWindowRule5
    sql = ("SELECT count(temp), window_start() as ws, window_end(), event_time() as et FROM sessionDemo "
           "GROUP BY SessionWindow(ss, 2, 1)")
    assert run(sql, SESSION_DEMO, 1541152494000) == [
        [{"count": 2, "ws": 1541152486013, "window_end": 1541152487823, "et": 1541152487823}],  # timeout
        [{"count": 3, "ws": 1541152487932, "window_end": 1541152490000, "et": 1541152490000}],  # tick
        [{"count": 5, "ws": 1541152490000, "window_end": 1541152494000, "et": 1541152494000}],  # tick
    ]


def test_sliding_window_with_delay_sees_the_rows_after() -> None:
    out = run("SELECT collect(size) AS s FROM demo GROUP BY SLIDINGWINDOW(ss, 1, 1)", DEMO[:3], 1541152489000)
    assert out == [[{"s": [3, 6]}], [{"s": [3, 6, 2]}], [{"s": [6, 2]}]]


def test_count_window_with_interval() -> None:
    out = run("SELECT collect(size) AS s FROM demo GROUP BY COUNTWINDOW(3, 1)", DEMO, 1541152490000)
    assert out == [[{"s": [3, 6, 2]}], [{"s": [6, 2, 4]}], [{"s": [2, 4, 1]}]]


def test_group_by_order_desc_several_keys_and_limit() -> None:
    sql = ("SELECT color, count(*) AS n, max(size) AS top FROM demo GROUP BY TUMBLINGWINDOW(ss, 5), color "
           "ORDER BY n DESC, color ASC LIMIT 2")
    assert run(sql, DEMO, 1541152490000) == [[{"color": "blue", "n": 2, "top": 6},
                                               {"color": "red", "n": 2, "top": 3}]]


def test_without_aggregates_a_window_emits_each_row_ordered() -> None:
    sql = "SELECT color, size FROM demo GROUP BY TUMBLINGWINDOW(ss, 5) ORDER BY size DESC LIMIT 3"
    assert run(sql, DEMO, 1541152490000) == [[{"color": "blue", "size": 6}, {"color": "yellow", "size": 4},
                                               {"color": "red", "size": 3}]]


def test_getting_started_rule_one_record_per_window() -> None:
    # eKuiper's getting-started guide: HAVING reads a select alias.
    sql = ("SELECT count(*), avg(temperature) AS avg_temp, max(humidity) AS max_hum FROM demo "
           "GROUP BY TUMBLINGWINDOW(ss, 5) HAVING avg_temp > 30")
    start = 1700000000000  # a multiple of 5 s
    records = [(start + 100, {"temperature": 31, "humidity": 50}),
               (start + 900, {"temperature": 33, "humidity": 70}),
               (start + 5100, {"temperature": 20, "humidity": 90}),
               (start + 10100, {"temperature": 40.5, "humidity": 10})]
    assert run(sql, records, start + 15000, start) == [
        [{"count": 2, "avg_temp": 32.0, "max_hum": 70}], [{"count": 1, "avg_temp": 40.5, "max_hum": 10}]]


@pytest.mark.parametrize("now, raw, unit, end", [
    # getAlignedWindowEndTime in window_op.go: within the minute, hour, second, day
    (START, 1, "SS", 1541152487000),  # 09:54:46 -> :47
    (START, 5, "SS", 1541152490000),  # -> :50
    (START + 13, 100, "MS", START + 100),
    (START, 10, "MI", 1541152800000),  # 09:54 -> 10:00
    (START, 1, "DD", 1541203200000),  # the next midnight (UTC)
])
def test_windows_align_to_natural_time(now: int, raw: int, unit: str, end: int) -> None:
    assert aligned_end(now, raw, unit) == end


def test_window_rows_are_bounded_and_counted() -> None:
    state = WindowState(WindowSpec("tumbling", "SS", 1, 1000), START, max_rows=2)
    for n in range(5):
        state.add(ekws.Message({"n": n}, PEER, START), START + n)
    assert state.dropped == 3
    assert [len(e.rows) for e in state.fire(START + 1000)] == [2]


def test_a_stopped_runner_fires_nothing_and_leaves_no_timer() -> None:
    timers = Timers()
    fired: list[Emission] = []
    runner = WindowRunner(WindowSpec("tumbling", "MS", 50, 50), fired.append, timers=timers)
    assert timers.pending() == 1
    runner.add(ekws.Message({"a": 1}, PEER, 0))
    runner.stop()
    assert timers.pending() == 0
    time.sleep(0.12)  # two window lengths: nothing may fire after stop()
    assert fired == []


def test_window_sql_refusals() -> None:
    with pytest.raises(SQLError, match="GROUP BY takes one window"):
        parse_query("SELECT count(*) FROM demo GROUP BY COUNTWINDOW(2), TUMBLINGWINDOW(ss, 1)")


def _logged(caplog: pytest.LogCaptureFixture, rule_id: str) -> list[dict[str, Any]]:
    prefix = f"sink result for rule {rule_id}: "
    return [json.loads(r.getMessage()[len(prefix):]) for r in caplog.records
            if r.name == "ekws.actions.log" and r.getMessage().startswith(prefix)]


def test_a_real_rule_emits_a_short_tumbling_window(rules: RuleManager, runtime: ekws.Runtime,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    sql = "SELECT count(*) AS n, avg(t) AS a FROM demo GROUP BY TUMBLINGWINDOW(ms, 300)"
    rules.create({"id": "w", "sql": sql, "actions": [{"log": {}}]})
    if time.time() * 1000 % 300 > 150:  # send early in a window, so all three land in one
        time.sleep(0.3 - time.time() % 0.3 + 0.01)
    send(runtime, {"t": 1}, {"t": 2}, {"t": 6})
    assert wait_until(lambda: _logged(caplog, "w"), timeout=5)
    assert _logged(caplog, "w") == [{"n": 3, "a": 3.0}]
    status = rules.status("w")
    assert status["op_2_window_0_records_in_total"] == 3 and status["op_2_window_0_records_out_total"] == 1
    assert status["op_2_window_0_dropped_total"] == 0
    assert status["op_3_project_0_records_out_total"] == 1 and status["sink_log_0_0_records_out_total"] == 1
    rules.stop("w")


# --------------------------------------------------------------------------- event time

DEMO_E = [  # mock_data.go "demoE": the stream's TIMESTAMP is "ts"; they arrive in this order
    {"color": "red", "size": 3, "ts": 1541152486013}, {"color": "blue", "size": 2, "ts": 1541152487632},
    {"color": "red", "size": 1, "ts": 1541152489252}, {"color": "blue", "size": 6, "ts": 1541152486822},
    {"color": "yellow", "size": 4, "ts": 1541152488442}, {"color": "yellow", "size": 4, "ts": 1541152492342},
]


def run_event(sql: str, records: list[dict[str, Any]],
              tolerance: int) -> tuple[list[list[dict[str, Any]]], int]:
    """Event time as a rule runs it: every record moves the watermark, those the WHERE takes enter
    (both ways, when the query is incremental)."""
    out = _run_event(sql, records, tolerance, False)
    grouping = parse_query(sql).grouping
    if grouping is not None and grouping.incremental:
        assert _run_event(sql, records, tolerance, True) == out
    return out


def _run_event(sql: str, records: list[dict[str, Any]], tolerance: int,
               incremental: bool) -> tuple[list[list[dict[str, Any]]], int]:
    query = parse_query(sql)
    grouping = query.grouping
    assert grouping is not None
    out: list[list[dict[str, Any]]] = []

    def emit(emission: Emission) -> None:
        rows = [row for row, _ in grouping.evaluate(emission)]
        if rows:
            out.append(rows)
    limit = GroupLimit()
    runner = EventWindowRunner(grouping.window, emit, late_tolerance=tolerance,
                               trigger=grouping.triggers if grouping.trigger else None,
                               groups=(lambda: grouping.new_groups(limit)) if incremental else None)
    for record in records:
        msg = ekws.Message(dict(record), PEER, record["ts"])
        if query.run(msg) is None:
            runner.observe(msg)
        else:
            runner.add(msg)
    return out, runner.late


def test_event_time_tumbling_drops_the_late_record() -> None:
    # TestEventWindowRule2 (lateTolerance 1 s): blue 486822 comes after the watermark passed 488252
    sql = ("SELECT window_start(), window_end(), color, ts FROM demoE where size > 2 "
           "GROUP BY tumblingwindow(ss, 1)")
    out, late = run_event(sql, DEMO_E, 1000)
    assert out == [
        [{"window_start": 1541152486013, "window_end": 1541152487000, "color": "red",
          "ts": 1541152486013}],
        [{"window_start": 1541152488000, "window_end": 1541152489000, "color": "yellow",
          "ts": 1541152488442}]]
    assert late == 1


def test_event_time_out_of_order_within_the_tolerance_lands_in_its_window() -> None:
    records = [{"ts": t, "v": v} for t, v in [(10_100, 1), (11_200, 2), (10_900, 3), (12_500, 4), (10_950, 5),
                                               (14_000, 6)]]
    out, late = run_event("SELECT collect(v) AS v, window_end() AS e FROM s GROUP BY TUMBLINGWINDOW(ss, 1)",
                          records, 500)
    assert out == [[{"v": [1, 3], "e": 11_000}], [{"v": [2], "e": 12_000}], [{"v": [4], "e": 13_000}]]
    assert late == 1  # 10_950 came after 12_500 moved the watermark to 12_000


def test_event_time_count_of_a_session() -> None:
    records = [{"ts": t} for t in (1000, 1500, 1900, 5000, 5200, 9000)]
    out, _ = run_event("SELECT count(*) AS n, window_start() AS s, window_end() AS e FROM s "
                       "GROUP BY SESSIONWINDOW(ss, 10, 2)", records, 0)
    assert out == [[{"n": 3, "s": 1000, "e": 3900}], [{"n": 2, "s": 5000, "e": 7200}]]


def test_a_real_event_time_rule_counts_late_records(rules: RuleManager, runtime: ekws.Runtime,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    runtime.create_stream('CREATE STREAM ev() WITH (DATASOURCE="/ev", FORMAT="json", TYPE="websocket", '
                          'TIMESTAMP="ts")')
    rules.create({"id": "e", "sql": "SELECT count(*) AS n, window_end() AS e FROM ev "
                  "GROUP BY TUMBLINGWINDOW(ss, 1)", "actions": [{"log": {}}],
                  "options": {"isEventTime": True, "lateTolerance": 500}})
    address = runtime.server_address
    assert address is not None
    from helpers.server import ws_connect
    with ws_connect(f"ws://127.0.0.1:{address[1]}/ev") as ws:
        for ts in (1000, 1500, 1200, 2300, 1100, 3500):
            ws.send(json.dumps({"ts": ts}))
    assert wait_until(lambda: len(_logged(caplog, "e")) == 2, timeout=5)
    assert _logged(caplog, "e") == [{"n": 3, "e": 2000}, {"n": 1, "e": 3000}]
    status = rules.status("e")
    assert status["op_2_window_0_late_total"] == 1  # 1100 came after 2300 moved the watermark to 1800


# --------------------------------------------------------------------------- fuzzing

_WINDOW_SQL = [
    "SELECT count(*), avg(temperature) AS avg_temp, max(humidity) AS max_hum FROM demo "
    "GROUP BY TUMBLINGWINDOW(ss, 5) HAVING avg_temp > 30",
    "SELECT a, sum(x) + min(b) AS s, stddevs(x), last_value(s, false), last_agg_hit_count() FROM demo "
    "GROUP BY a, b, TUMBLINGWINDOW(ss, 1) HAVING var(x) > 0 ORDER BY s LIMIT 3",
    "SELECT a, collect(b)[0] AS c, sum(x) FROM demo WHERE x > 1 GROUP BY a, COUNTWINDOW(3, 1) "
    "ORDER BY c DESC LIMIT 2",
    "SELECT *, window_start() FROM demo GROUP BY SLIDINGWINDOW(ss, 5, 1) FILTER (WHERE a = 1) "
    "OVER (WHEN b > 1)",
    "SELECT median(x), stddev(x), percentile(x, 0.5), last_value(s, true), deduplicate(a, false) FROM demo "
    "GROUP BY SESSIONWINDOW(ms, 10, 2)",
]
_WINDOW_TOKENS = ["GROUP BY", "HAVING", "ORDER BY", "LIMIT", "DESC", "count(*)", "avg(", "collect(", "FILTER",
                  "OVER", "WHEN", "TUMBLINGWINDOW(ss, 1)", "COUNTWINDOW(", ",", "(", ")", "*", "1", "a", "-"]
_VALUES = (st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=3)
           | st.lists(st.integers(), max_size=2)
           | st.dictionaries(st.sampled_from("ab"), st.integers(), max_size=2))
_ROWS = st.lists(st.dictionaries(st.sampled_from(["a", "b", "s", "x", "temperature", "humidity"]), _VALUES,
                                 max_size=5), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_WINDOW_SQL),
       st.lists(st.tuples(st.integers(0, 300), st.sampled_from(_WINDOW_TOKENS)), max_size=3), _ROWS)
def test_mutated_window_queries_raise_only_rule_sql_errors(base: str, edits: list[tuple[int, str]],
                                                           rows: list[dict[str, Any]]) -> None:
    text = base
    for position, token in edits:
        at = position % (len(text) + 1)
        text = text[:at] + f" {token} " + text[at:]
    try:
        query = parse_query(text)
    except SQLError:
        return
    if query.grouping is None:
        return
    msgs = [ekws.Message(r, PEER, n) for n, r in enumerate(rows)]
    try:
        query.grouping.evaluate(Emission(0, 10, msgs))
    except EvalError:
        pass
    if query.grouping.incremental:  # the accumulators' way too, the same errors only
        groups = query.grouping.new_groups(GroupLimit())
        for msg in msgs:
            groups.add(msg, msg.timestamp)
        try:
            query.grouping.evaluate(Emission(0, 10, [], groups))
        except EvalError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6)), max_size=30))
def test_one_pass_statistics_agree_with_the_two_pass_formulas(values: list[Any]) -> None:
    numbers = [v for v in values if v is not None]
    got = aggregate("var", values)
    if not numbers:
        assert got is None
        return
    mean = sum(numbers) / len(numbers)
    expected = sum((x - mean) ** 2 for x in numbers) / len(numbers)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert aggregate("avg", values) == pytest.approx(mean, rel=1e-9, abs=1e-9)


def test_last_agg_hit_count_and_time_in_having() -> None:
    # TestEventWindowRule1 (window_rule_test.go; lateTolerance 1 s): the alias lc in HAVING counts
    # only the rows that pass; event_time() of a group is its window's end
    sql = ("SELECT count(*), last_agg_hit_time() as lt, last_agg_hit_count() as lc, event_time() as et "
           "FROM demoE GROUP BY HOPPINGWINDOW(ss, 2, 1) HAVING lc < 4")
    out, _ = run_event(sql, DEMO_E, 1000)
    assert out == [
        [{"count": 1, "lc": 0, "lt": 0, "et": 1541152487000}],
        [{"count": 2, "lc": 1, "lt": 1541152487000, "et": 1541152488000}],
        [{"count": 2, "lc": 2, "lt": 1541152488000, "et": 1541152489000}],
        [{"count": 2, "lc": 3, "lt": 1541152489000, "et": 1541152490000}]]


def test_last_agg_hit_time_against_the_last_value() -> None:
    # TestEventWindowRule0 (window_rule_test.go; lateTolerance 1 s)
    sql = ("SELECT count(*), event_time() as et FROM demoE GROUP BY HOPPINGWINDOW(ss, 2, 1) "
           "HAVING last_value(et, true) - last_agg_hit_time() > 1500")
    out, _ = run_event(sql, DEMO_E, 1000)
    assert out == [[{"count": 1, "et": 1541152487000}], [{"count": 2, "et": 1541152490000}]]


def test_last_agg_hit_count_in_select_counts_every_row_and_restarts_from_zero() -> None:
    sql = "SELECT d, last_agg_hit_count() AS n FROM s GROUP BY d, COUNTWINDOW(2)"
    records = [(START + n, {"d": n % 2}) for n in range(4)]
    assert run(sql, records, START + 10) == [[{"d": 0, "n": 0}, {"d": 1, "n": 1}],
                                             [{"d": 0, "n": 2}, {"d": 1, "n": 3}]]
    query = parse_query(sql)
    assert query.grouping is not None and query.grouping.hits is not None
    query.grouping.hits.hit(5)
    query.reset()
    assert (query.grouping.hits.count, query.grouping.hits.time) == (0, 0)
    with pytest.raises(SQLError, match="needs a window"):
        parse_query("SELECT last_agg_hit_count() FROM s")
