"""Analytic functions, from eKuiper's ``docs/en_US/sqls/functions/analytic_functions.md`` examples and
``internal/binder/function/funcs_analytic_test.go``/``funcs_acc_test.go`` behaviour: state per
call and partition, updated before the WHERE, WHEN, the partition bound, and restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.server import Collector, wait_until, ws_connect

import ekws
from ekws.rules.functions import analytic
from ekws.rules.manager import RuleManager
from ekws.rules.sql import SQLError, parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)
OUT = Collector()

# The docs' input for the change-detection examples.
DOCS_ROWS = [
    {"ts": 1, "temperature": 23, "humidity": 88}, {"ts": 2, "temperature": 23, "humidity": 88},
    {"ts": 3, "temperature": 23, "humidity": 88}, {"ts": 4, "temperature": 25, "humidity": 88},
    {"ts": 5, "temperature": 25, "humidity": 90}, {"ts": 6, "temperature": 25, "humidity": 91},
    {"ts": 7, "temperature": 25, "humidity": 91}, {"ts": 8, "temperature": 25, "humidity": 91},
]


def collect(msg: ekws.Message) -> None:
    OUT(msg)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    OUT.messages.clear()
    yield
    OUT.messages.clear()


def run_all(sql: str, rows: list[dict[str, Any]]) -> list[Any]:
    query = parse_query(sql)
    return [query.run(ekws.Message(dict(row), PEER, 0)) for row in rows]


def test_had_changed_in_where_docs_example() -> None:
    out = run_all("SELECT ts, temperature, humidity FROM demo "
                  "WHERE HAD_CHANGED(true, temperature, humidity) = true", DOCS_ROWS)
    assert [r["ts"] for r in out if r is not None] == [1, 4, 5, 6]


def test_had_changed_of_one_but_not_the_other_docs_example() -> None:
    out = run_all("SELECT ts FROM demo WHERE HAD_CHANGED(true, temperature) = true "
                  "AND HAD_CHANGED(true, humidity) = false", DOCS_ROWS)
    assert [r for r in out if r is not None] == [{"ts": 4}]


def test_changed_col_docs_examples() -> None:
    out = run_all("SELECT CHANGED_COL(true, temperature) AS myTemp, CHANGED_COL(true, humidity) AS myHum "
                  "FROM demo", DOCS_ROWS)
    assert out[0] == {"myTemp": 23, "myHum": 88}
    assert out[3] == {"myTemp": 25, "myHum": None} and out[4] == {"myTemp": None, "myHum": 90}
    out = run_all("SELECT ts FROM demo WHERE CHANGED_COL(true, temperature) > 24", DOCS_ROWS)
    assert [r for r in out if r is not None] == [{"ts": 4}]


@pytest.mark.parametrize(("fn", "results"), [
    ("acc_sum(a)", [1.0, 3.0, 6.0]), ("acc_max(a)", [1.0, 2.0, 3.0]), ("acc_min(a)", [1.0, 1.0, 1.0]),
    ("acc_count(a)", [1, 2, 3]), ("acc_avg(a)", [1.0, 1.5, 2.0]),
])
def test_acc_functions_docs_examples(fn: str, results: list[Any]) -> None:
    out = run_all(f"SELECT {fn} AS v FROM demo", [{"a": 1}, {"a": 2}, {"a": 3}])
    assert [r["v"] for r in out] == results


def test_lag_latest_and_nulls() -> None:
    rows = [{"a": 1}, {"a": None}, {"a": 3}, {}]
    out = run_all("SELECT lag(a) AS l, lag(a, 2, 0) AS l2, lag(a, 1, -1, false) AS ln, latest(a, 9) AS lt "
                  "FROM demo", rows)
    assert [r["l"] for r in out] == [None, 1, 1, 3]  # ignore null (the default): nulls are skipped
    assert [r["l2"] for r in out] == [0, 0, 0, 1]
    assert [r["ln"] for r in out] == [-1, 1, None, 3]
    assert [r["lt"] for r in out] == [1, 1, 3, 3]


def test_analytics_run_before_where_and_per_partition() -> None:
    rows = [{"d": "a", "t": 1}, {"d": "b", "t": 10}, {"d": "a", "t": 2}, {"d": "b", "t": 20},
            {"d": "a", "t": 3}]
    out = run_all("SELECT t, lag(t) OVER (PARTITION BY d) AS prev FROM demo WHERE d = 'a'", rows)
    assert [r for r in out if r is not None] == [{"t": 1, "prev": None}, {"t": 2, "prev": 1},
                                                 {"t": 3, "prev": 2}]
    out = run_all("SELECT lag(t) AS prev FROM demo WHERE d = 'a'", rows)
    assert [r["prev"] for r in out if r is not None] == [None, 10, 20]  # b's records moved lag on


def test_when_keeps_the_state_docs_duration_example() -> None:
    rows = [{"ts": 1, "s": "on"}, {"ts": 5, "s": "on"}, {"ts": 9, "s": "off"}, {"ts": 12, "s": "off"},
            {"ts": 20, "s": "on"}]
    out = run_all("SELECT ts - lag(ts, 1, ts, true) OVER (WHEN had_changed(true, s)) AS duration "
                  "FROM demo", rows)
    assert [r["duration"] for r in out] == [0, 4, 8, 3, 11]  # time since the status last changed
    out = run_all("SELECT acc_sum(ts) OVER (WHEN s = 'on') AS v FROM demo", rows)
    assert [r["v"] for r in out] == [1.0, 6.0, 6.0, 6.0, 26.0]


def test_partitions_are_bounded_and_evictions_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analytic, "MAX_PARTITIONS", 3)
    query = parse_query("SELECT acc_count(x) OVER (PARTITION BY k) AS n FROM demo")
    node = query.analytics[0]
    for k in ["a", "b", "c", "d", "a"]:
        query.run(ekws.Message({"k": k, "x": 1}, PEER, 0))
    assert node.evicted == 2  # d pushed a out, then a (new again) pushed b out
    assert query.run(ekws.Message({"k": "a", "x": 1}, PEER, 0)) == {"n": 2}


@pytest.mark.parametrize(("sql", "error"), [
    ("SELECT lag(a, b) FROM demo", "lag: Expect int type for parameter 2"),
    ("SELECT lag(a, -1) FROM demo", "lag: the index should not be a nagtive integer"),
    ("SELECT lag() FROM demo", "lag: Expect 1 to 4 arguments but found 0."),
    ("SELECT changed_col('x', a) FROM demo", "changed_col: Expect boolean type for parameter 1"),
    ("SELECT acc_sum(a, b) FROM demo", "acc_sum: Expect 1/3 arguments but found 2."),
    ("SELECT acc_sum(a, b, c, d) FROM demo", "acc_sum: Expect 1 to 3 arguments but found 4."),
    ("SELECT lag(a) OVER (PARTITION a) FROM demo", "expected BY"),
])
def test_refused_at_rule_creation(sql: str, error: str) -> None:
    with pytest.raises(SQLError, match=error.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_query(sql)


def test_state_starts_empty_when_the_rule_restarts(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "acc", "sql": "SELECT acc_sum(a) AS s, lag(a) AS p FROM demo",
                  "actions": [{"python": {"callable": "test_functions_analytic:collect"}}]})

    def send(*records: Any) -> None:
        address = runtime.server_address
        assert address is not None
        with ws_connect(f"ws://127.0.0.1:{address[1]}/api/data") as ws:
            for record in records:
                ws.send(json.dumps(record))
    send({"a": 1}, {"a": 2})
    assert OUT.wait_for(2)
    assert OUT.data == [{"s": 1.0, "p": None}, {"s": 3.0, "p": 1}]
    rules.restart("acc")
    assert wait_until(lambda: rules.is_running("acc"))
    send({"a": 5})
    assert OUT.wait_for(3)
    assert OUT.data[2] == {"s": 5.0, "p": None}
    assert rules.status("acc")["op_2_project_0_analytic_partitions_evicted"] == 0
