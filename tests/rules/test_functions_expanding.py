"""Select items that expand: ``changed_cols`` (columns), ``unnest``/``extract`` (rows) and
``row_number()``. Ported from eKuiper's ``internal/topo/operator/cols_func_test.go``
(TestChangedColsFunc_Apply1), ``internal/topo/topotest/rule_test.go`` (TestSRFSQL,
TestChanged13, TestRowNumber1 over ``mocknode/mock_data.go``'s rows),
``internal/xsql/parser_validate_test.go`` and the docs ``multi_row_functions.md`` and
``analytic_functions.md``; rules run over a real socket where a rule's sending matters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.server import Collector, wait_until, ws_connect

import ekws
from ekws.rules.functions import analytic
from ekws.rules.manager import RuleManager
from ekws.rules.sql import EvalError, SQLError, parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)
OUT = Collector()
# mock_data.go: "demo" (color, size) and "demoArr"
DEMO = [{"color": "red", "size": 3}, {"color": "blue", "size": 6}, {"color": "blue", "size": 2},
        {"color": "yellow", "size": 4}, {"color": "red", "size": 1}]
DEMO_ARR = {"arr": [1, 2, 3, 4, 5], "x": 1, "y": 2, "arr2": [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "a": 6,
            "arr3": [1, 2, 3]}


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


def send(runtime: ekws.Runtime, *records: Any) -> None:
    address = runtime.server_address
    assert address is not None
    with ws_connect(f"ws://127.0.0.1:{address[1]}/api/data") as ws:
        for record in records:
            ws.send(json.dumps(record))


# ------------------------------------------------------------------------- changed_cols

CHANGES = [{"a": "a1", "b": "b1", "c": "c1"}, {"a": "a1", "b": "b2", "c": "c1"}, {"a": "a1", "c": "c1"},
           {"a": "a1", "b": "b2", "c": "c2"}]


def test_changed_cols_apply1() -> None:
    """cols_func_test.go: each record gives the columns that changed ({} when none did)."""
    out = run_all('SELECT changed_cols("", true, a, b, c) FROM test', CHANGES)
    assert out == [{"a": "a1", "b": "b1", "c": "c1"}, {"b": "b2"}, {}, {"c": "c2"}]


def test_changed_cols_of_star() -> None:
    rows = [{"a": "a1", "b": "b1"}, *CHANGES[1:]]
    out = run_all('SELECT changed_cols("", true, *, c) FROM test', rows)
    assert out == [{"a": "a1", "b": "b1"}, {"b": "b2", "c": "c1"}, {}, {"c": "c2"}]


def test_changed_cols_prefix_beside_other_items_and_nulls() -> None:
    """TestChanged13's columns; ignoreNull false: a null after a value is a change."""
    out = run_all('SELECT changed_cols("tt_", true, color, size) FROM demo', DEMO)
    assert out == [{"tt_color": "red", "tt_size": 3}, {"tt_color": "blue", "tt_size": 6}, {"tt_size": 2},
                   {"tt_color": "yellow", "tt_size": 4}, {"tt_color": "red", "tt_size": 1}]
    out = run_all('SELECT id, changed_cols("c_", false, v, upper(s)) FROM demo',
                  [{"id": 1, "s": "x"}, {"id": 2, "v": 1, "s": "x"}, {"id": 3, "s": "y"}])
    assert out == [{"id": 1, "c_upper": "X"}, {"id": 2, "c_v": 1}, {"id": 3, "c_v": None, "c_upper": "Y"}]


def test_changed_cols_runs_after_the_where() -> None:
    """It compares with what was last sent: a record the WHERE drops does not count."""
    rows = [{"k": 1, "v": 1}, {"k": 0, "v": 2}, {"k": 1, "v": 2}, {"k": 1, "v": 2}]
    out = run_all('SELECT changed_cols("", true, v) FROM demo WHERE k = 1', rows)
    assert out == [{"v": 1}, None, {"v": 2}, {}]


def test_changed_cols_remembers_a_bounded_number_of_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analytic, "MAX_PARTITIONS", 2)
    query = parse_query('SELECT changed_cols("", true, *) FROM demo')
    for row in [{"a": 1}, {"b": 1}, {"c": 1}, {"a": 1}]:
        out = query.run(ekws.Message(row, PEER, 0))
    assert out == {"a": 1}  # forgotten when c came: a change again
    assert query.analytics[0].evicted == 2


# ------------------------------------------------------------------------- unnest, extract

@pytest.mark.parametrize(("sql", "rows"), [
    ("SELECT unnest(arr2) FROM demoArr WHERE x=1", [{"a": 1, "b": 2}, {"a": 3, "b": 4}]),  # Rule18
    # Rule19: the object's columns cover the column of the same name
    ("SELECT unnest(arr2), a FROM demoArr WHERE x=1", [{"a": 1, "b": 2}, {"a": 3, "b": 4}]),
    ("SELECT unnest(arr3) as col FROM demoArr WHERE x=1", [{"col": 1}, {"col": 2}, {"col": 3}]),  # Rule20
    ("SELECT unnest(arr2),x FROM demoArr WHERE x=1", [{"a": 1, "b": 2, "x": 1}, {"a": 3, "b": 4, "x": 1}]),
    ("SELECT unnest(arr3) FROM demoArr WHERE x=2", None),
])
def test_unnest_srf_sql(sql: str, rows: Any) -> None:
    assert run_all(sql, [DEMO_ARR]) == [rows]


def test_unnest_and_extract_docs_examples() -> None:
    assert run_all("SELECT unnest(a) FROM demo", [{"a": [1, 2], "b": 3}]) == [[{"unnest": 1}, {"unnest": 2}]]
    assert run_all("SELECT unnest(a), b FROM demo", [{"a": [1, 2], "b": 3}]) == \
        [[{"unnest": 1, "b": 3}, {"unnest": 2, "b": 3}]]
    objects = {"x": [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "c": 5}
    assert run_all("SELECT unnest(x), c FROM demo", [objects]) == \
        [[{"a": 1, "b": 2, "c": 5}, {"a": 3, "b": 4, "c": 5}]]
    assert run_all("SELECT extract(data) FROM demo", [{"data": {"k1": "v1", "k2": "v2"}}]) == \
        [[{"k1": "v1", "k2": "v2"}]]
    assert run_all("SELECT unnest(a) FROM demo", [{"a": []}]) == [[]]  # no rows


@pytest.mark.parametrize(("sql", "row", "error"), [
    # TestSingleSQLRule24
    ("SELECT unnest(a) FROM demoArr", DEMO_ARR, "the argument for the unnest function should be array"),
    ("SELECT unnest(a) FROM demo", {}, "the argument for the unnest function should be array"),
    ("SELECT extract(a) FROM demo", {"a": [1]}, "extract should use map"),
])
def test_a_set_returning_function_of_the_wrong_kind_fails_the_record(sql: str, row: Any, error: str) -> None:
    with pytest.raises(EvalError, match=error):
        run_all(sql, [row])


# ------------------------------------------------------------------------- row_number

def test_row_number_of_a_record_is_1() -> None:
    """TestRowNumber1: without a window every record is its own set."""
    assert run_all("SELECT size, row_number() FROM demo", DEMO[:2]) == \
        [{"size": 3, "row_number": 1}, {"size": 6, "row_number": 1}]
    assert run_all("SELECT row_number() + 1 AS d FROM demo", DEMO[:1]) == [{"d": 2}]


# ------------------------------------------------------------------------- refusals

@pytest.mark.parametrize(("sql", "error"), [
    # parser_validate_test.go
    ("select a from demo group by id having unnest(a)", "select statement shouldn't has srf except fields"),
    ("select a,b from demo where unnest(a)", "select statement shouldn't has srf except fields"),
    ("select unnest(unnest(arr)) from demo", "select clause shouldn't has nested set-returning-functions"),
    ("select abs(unnest(arr)) from demo", "select clause shouldn't has nested set-returning-functions"),
    ("select unnest(arr1), unnest(arr2) from demo",
     "select clause shouldn't has multi set-returning-functions"),
    ("select * from demo where row_number() > 1", "window functions can only be in select fields"),
    # funcs_cols.go's validator and parser.go
    ("SELECT a FROM demo WHERE changed_cols('', true, a, b, c) > 3",
     "function changed_cols can only be used inside the select clause"),
    ("SELECT changed_cols('', true) FROM demo", "changed_cols: expect more than two args but got 2"),
    ("SELECT changed_cols(1, true, a) FROM demo", "changed_cols: Expect string type for parameter 1"),
    ("SELECT changed_cols('', 'x', a) FROM demo", "changed_cols: Expect bool type for parameter 2"),
    # ekws's own limits
    ("SELECT to_json(changed_cols('', true, a)) FROM demo", "changed_cols must be a select item of its own"),
    ("SELECT changed_cols('', true, a) AS c FROM demo", "name its columns with its prefix, not AS"),
    ("SELECT unnest(a) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)", "unnest\\(\\) in a window query"),
    ("SELECT row_number() FROM demo GROUP BY COUNTWINDOW(2)", "row_number\\(\\) in a window query"),
    ("SELECT changed_cols('', true, a) FROM demo GROUP BY COUNTWINDOW(2)", "changed_cols\\(\\) in a window"),
])
def test_refused_at_rule_creation(sql: str, error: str) -> None:
    with pytest.raises(SQLError, match=error):
        parse_query(sql)


# ------------------------------------------------------------------------- in a running rule

def test_unnest_sends_a_record_per_row(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "un", "sql": "SELECT unnest(arr3) AS col, x FROM demo",
                  "actions": [{"python": {"callable": "test_functions_expanding:collect"}}],
                  "options": {"sendError": True}})
    send(runtime, DEMO_ARR, {"arr3": [], "x": 2}, {"arr3": 7, "x": 3}, {"arr3": [9], "x": 4})
    assert OUT.wait_for(5)
    assert OUT.data[:3] == [{"col": 1, "x": 1}, {"col": 2, "x": 1}, {"col": 3, "x": 1}]
    assert "the argument for the unnest function should be array" in OUT.data[3]["error"]
    assert OUT.data[4] == {"col": 9, "x": 4}
    status = rules.status("un")
    assert status["op_2_project_0_records_out_total"] == 4
    assert status["op_2_project_0_exceptions_total"] == 1


def test_changed_cols_in_a_rule_starts_again_on_restart(rules: RuleManager, runtime: ekws.Runtime) -> None:
    """TestChanged13 over the socket, then a restart: the first record is all change again."""
    rules.create({"id": "cc", "sql": 'SELECT changed_cols("tt_", true, color, size) FROM demo',
                  "actions": [{"python": {"callable": "test_functions_expanding:collect"}}]})
    send(runtime, *DEMO)
    assert OUT.wait_for(5)
    assert OUT.data == [{"tt_color": "red", "tt_size": 3}, {"tt_color": "blue", "tt_size": 6}, {"tt_size": 2},
                        {"tt_color": "yellow", "tt_size": 4}, {"tt_color": "red", "tt_size": 1}]
    rules.restart("cc")
    assert wait_until(lambda: rules.is_running("cc"))
    send(runtime, {"color": "red", "size": 1})
    assert OUT.wait_for(6)
    assert OUT.data[5] == {"tt_color": "red", "tt_size": 1}


# ------------------------------------------------------------------------- last_hit_count, last_hit_time

def test_last_hit_count_in_select_and_where() -> None:
    """rule_test.go TestSingleSQLRule2 and TestSingleSQLRule5: the count before this record,
    moved on by each record the WHERE passes."""
    out = run_all("SELECT color, last_hit_count() + 1 as lc FROM demo where size > 3", DEMO)
    assert [r for r in out if r is not None] == [{"color": "blue", "lc": 1}, {"color": "yellow", "lc": 2}]
    out = run_all("SELECT size FROM demo WHERE last_hit_count() < 4", DEMO)
    assert [r is not None for r in out] == [True, True, True, True, False]


def test_last_hit_time_is_the_last_sent_records_time() -> None:
    query = parse_query("SELECT last_hit_time() AS lt, last_hit_count() AS lc FROM demo WHERE size < 3")
    out = [query.run(ekws.Message(dict(row), PEER, 1000 + i)) for i, row in enumerate(DEMO)]
    assert [r for r in out if r is not None] == [{"lt": 0, "lc": 0}, {"lt": 1002, "lc": 1}]
    query.reset()  # a restarted rule starts from nothing
    assert query.run(ekws.Message({"size": 1}, PEER, 5)) == {"lt": 0, "lc": 0}


def test_last_hit_is_refused_in_a_window_query() -> None:
    with pytest.raises(SQLError, match="last_hit_time\\(\\) in a window query is not supported"):
        parse_query("SELECT last_hit_time() FROM demo GROUP BY COUNTWINDOW(2)")
