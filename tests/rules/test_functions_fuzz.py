"""Hypothesis: random calls over the whole built-in function set (analytic ones too), nested,
with literal and field arguments over random records, raise only the rule-SQL error types
(SQLError at rule creation, EvalError per record) and finish in bounded time."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ekws
from ekws.rules.functions import REGISTRY
from ekws.rules.functions.analytic import ANALYTIC
from ekws.rules.sql import EvalError, SQLError, parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)
BUILTINS = sorted(name for name, fn in REGISTRY.items() if fn.family != "custom")
BUILTINS += sorted(ANALYTIC)
FIELDS = ["a", "b", "s", "arr", "obj"]

_LITERALS = st.sampled_from(["1", "-3", "0", "2.5", "1e300", "'a/b/c'", "'yyyy-MM-dd'", "'base64'",
                             "'[0-9]+'", "'2024-05-01 12:00:00'", "'bigint'", "'zlib'", "''", "NULL",
                             "TRUE", "'(a'",
                             "'24h'", "'UTC'", "'%'", "'key'"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=6)
_RECORDS = st.fixed_dictionaries({}, optional={name: _JSON for name in FIELDS})


def _calls(depth: int) -> st.SearchStrategy[str]:
    leaf = _LITERALS | st.sampled_from(FIELDS)
    if depth == 0:
        return leaf
    inner = leaf | _calls(depth - 1)
    over = st.sampled_from(["", " OVER (PARTITION BY a)", " OVER (WHEN b > 1)",
                            " OVER (PARTITION BY s WHEN a)"])

    def call(name: str, args: list[str], tail: str) -> str:
        return f"{name}({', '.join(args)})" + (tail if name in ANALYTIC else "")
    return st.builds(call, st.sampled_from(BUILTINS), st.lists(inner, max_size=4), over)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_calls(2), st.lists(_RECORDS, min_size=1, max_size=3))
def test_random_function_calls_raise_only_rule_sql_errors(expr: str, records: list[dict[str, Any]]) -> None:
    started = time.monotonic()
    try:
        query = parse_query(f"SELECT {expr} AS v FROM demo WHERE isnull(a) OR NOT isnull(a)")
    except SQLError:
        return
    for record in records:
        try:
            query.run(ekws.Message(record, PEER, 0))
        except EvalError:
            pass
    assert time.monotonic() - started < 5, expr


def test_huge_arguments_are_bounded_record_errors_not_crashes() -> None:
    from helpers.functions import call

    for name, args in [("lpad", ("a", 1e300)), ("rpad", ("a", 10 ** 9)), ("format", (1.5, 10 ** 6)),
                       ("repeat", ("a", 10 ** 12)), ("sequence", (0, 10 ** 12)), ("from_days", (10 ** 12,)),
                       ("date_calc", ("2024-01-01", "99999999999999h")), ("chr", (10 ** 12,))]:
        try:
            call(name, *args)
        except EvalError:
            continue
        raise AssertionError(f"{name}{args} did not fail the record")
    assert call("round", 1.5, 10 ** 6) == 1.5
    assert call("trunc", 1.5, 10 ** 6) == 1.5
