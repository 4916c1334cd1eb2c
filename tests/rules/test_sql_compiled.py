"""The query compiled into one generated function (``Query.run``) agrees with its parts.

Pure: no sockets. ``run`` is what a rule calls per record; ``matches`` and
``project`` are the separately compiled WHERE and projection the other SQL
tests check against eKuiper's documented results.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sql import _RECORDS, _VALID

import ekws
from ekws.rules import expr as sqlexpr
from ekws.rules.sql import EvalError, parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)

QUERIES = [*_VALID,
           "SELECT a, b * 1.0 AS h FROM demo WHERE b > 50 AND s = 'ok'",
           "SELECT a + b AS p, a - 1 AS q, 2 * b AS r FROM demo WHERE a < b OR NOT (s != 'x')",
           "SELECT * FROM demo WHERE a IS NOT NULL AND b IS NULL",
           "SELECT *, a * b AS ab FROM demo WHERE 1 < a",
           "SELECT a FROM demo WHERE a = TRUE OR s = NULL OR s + 1 > 2",
           "SELECT s FROM demo WHERE s >= 'b' AND 'x' > s"]


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except EvalError as exc:
        return ("error", str(exc))


@settings(max_examples=300, deadline=None)
@given(_RECORDS, st.sampled_from(QUERIES))
def test_run_agrees_with_matches_and_project(record: dict[str, Any], sql: str) -> None:
    query = parse_query(sql)

    def parts() -> Any:
        msg = ekws.Message(record, PEER, 0)
        return query.project(msg) if query.matches(msg) else None

    assert _outcome(lambda: query.run(ekws.Message(record, PEER, 0))) == _outcome(parts)


@pytest.mark.parametrize(("data", "out"), [
    ({"a": 60, "s": "ok", "d": "x"}, {"d": "x", "h": 60.0}),
    ({"a": 60.5, "s": "ok"}, {"d": None, "h": 60.5}),
    ({"a": 40, "s": "ok"}, None),
    ({"a": 60, "s": "no"}, None),
    ({"a": True, "s": "ok"}, None),  # a boolean is no number: unequal kinds never pass
    ({"s": "ok"}, None),  # a missing field is null: the comparison is false
])
def test_the_bench_query(data: dict[str, Any], out: Any) -> None:
    query = parse_query("SELECT d, a * 1.0 AS h FROM demo WHERE a > 50 AND s = 'ok'")
    if data.get("a") is True:
        with pytest.raises(EvalError, match="cannot compare boolean"):
            query.run(ekws.Message(data, PEER, 0))
        return
    assert query.run(ekws.Message(data, PEER, 0)) == out


def test_names_and_literals_are_values_never_code() -> None:
    """Field names, aliases and strings that look like Python stay data in the generated source."""
    evil = "x'); import os; os._exit(3); ('"
    sql = (f'SELECT `{evil}` * 2 AS `k{evil}`, `{evil}` AS `{evil}` FROM demo '
           f'WHERE `{evil}` > 1 AND s = "{evil}" AND `d}}{{` IS NULL')
    query = parse_query(sql)
    record = {evil: 2, "s": evil}
    assert query.run(ekws.Message(record, PEER, 0)) == {f"k{evil}": 4, evil: 2}
    assert query.run(ekws.Message({evil: 0, "s": evil}, PEER, 0)) is None


def test_long_conditions_fall_back_to_calls_and_agree() -> None:
    """Beyond MAX_INLINE characters of source, pieces are called, with the same results."""
    terms = " AND ".join(f"a{n} = {n}" for n in range(400))
    query = parse_query(f"SELECT a0 FROM demo WHERE {terms}")
    record = {f"a{n}": n for n in range(400)}
    assert query.run(ekws.Message(record, PEER, 0)) == {"a0": 0}
    record["a399"] = "x"
    assert query.run(ekws.Message(record, PEER, 0)) is None
    assert query.matches(ekws.Message(record, PEER, 0)) is False
    short = parse_query("SELECT a FROM demo WHERE a = 1 AND b = 2")
    assert short.condition is not None and short.condition.__name__ == "_fn"  # generated inline
    assert len(terms) * 5 > sqlexpr.MAX_INLINE
