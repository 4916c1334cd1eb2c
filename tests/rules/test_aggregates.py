"""Aggregate functions over a window group's values (ekws.rules.aggregates).

Cases ported from eKuiper's internal/binder/function/funcs_agg_test.go (the
statistics table, the percentile table and the nil-handling test), plus the
SQL form over a window group.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import ekws
from ekws.rules.aggregates import aggregate, deduplicate
from ekws.rules.expr import EvalError
from ekws.rules.sql import SQLError, parse_query
from ekws.rules.window import Emission

STATS = [  # funcs_agg_test.go, TestAggExec cases 1-5: values, avg, max, min, stddev, stddevs, var, vars
    ([100, 150, 200], 150, 200, 100, 40.824829046386306, 50.0, 1666.6666666666667, 2500.0),
    ([100.0, 150.0, 200.0], 150.0, 200.0, 100.0, 40.824829046386306, 50.0, 1666.6666666666667, 2500.0),
    ([], None, None, None, None, None, None, None),
    ([100, 150, None, 200, None], 150, 200, 100, 40.824829046386306, 50.0, 1666.6666666666667, 2500.0),
]


@pytest.mark.parametrize("values, avg, high, low, stddev, stddevs, var, vars_", STATS)
def test_statistics_skip_nulls_as_ekuiper(values: list[Any], avg: Any, high: Any, low: Any, stddev: Any,
                                          stddevs: Any, var: Any, vars_: Any) -> None:
    assert aggregate("avg", values) == avg
    assert aggregate("max", values) == high and aggregate("min", values) == low
    for name, expected in (("stddev", stddev), ("stddevs", stddevs), ("var", var), ("vars", vars_)):
        got = aggregate(name, values)
        assert got == expected if expected is None else got == pytest.approx(expected), name


def test_statistics_of_strings_are_errors() -> None:
    # funcs_agg_test.go case 0: ["foo", "bar", "self"]
    for name in ("avg", "sum", "stddev", "stddevs", "var", "vars", "median"):
        with pytest.raises(EvalError, match=name):
            aggregate(name, ["foo", "bar", "self"])
    assert aggregate("max", ["foo", "bar", "self"]) == "self"  # max and min order strings
    assert aggregate("min", ["foo", "bar", "self"]) == "bar"
    with pytest.raises(EvalError, match="max"):
        aggregate("max", [1, "a"])


@pytest.mark.parametrize("values, cont, disc", [  # funcs_agg_test.go, TestPercentileExec cases 2-6
    ([100, 150, 200], 125.0, 150.0),
    ([100.0, 150.0, 200.0], 125.0, 150.0),
    ([], None, None),
    ([100, 150, None, 200], 125.0, 150.0),
])
def test_percentiles(values: list[Any], cont: Any, disc: Any) -> None:
    assert aggregate("percentile", values, 0.5) == cont
    assert aggregate("percentile_cont", values, 0.5) == cont
    assert aggregate("percentile_disc", values, 0.5) == disc


def test_nulls_as_funcs_agg_test_checks_them() -> None:
    # funcs_agg_test.go, TestAggFuncNil
    assert aggregate("avg", [None]) is None and aggregate("avg", [1, None]) == 1
    assert aggregate("count", [None]) == 0 and aggregate("count", [1, None]) == 1
    assert aggregate("max", [None]) is None and aggregate("max", [1, 2, None]) == 2
    assert aggregate("min", [None]) is None and aggregate("min", [1, 2, None]) == 1
    assert aggregate("sum", [None]) is None and aggregate("sum", [1, 2, None]) == 3
    assert aggregate("merge_agg", []) is None
    assert aggregate("last_value", [None], False) is None
    assert aggregate("last_value", [1, 2, None], True) == 2
    assert aggregate("last_value", [1, 2, None], False) is None
    assert aggregate("median", []) == 0


def test_sum_keeps_integers_and_avg_divides_as_float() -> None:
    assert aggregate("sum", [1, 2]) == 3 and type(aggregate("sum", [1, 2])) is int
    assert aggregate("sum", [1, 2.5]) == 3.5
    assert aggregate("avg", [25, 30]) == 27.5  # a schemaless eKuiper JSON number is a float64


def test_median_collect_merge_and_deduplicate() -> None:
    assert aggregate("median", [3, 1, 2]) == 2 and aggregate("median", [4, 1, 2, 3]) == 2.5
    assert aggregate("collect", [1, None, 2]) == [1, None, 2]
    assert aggregate("merge_agg", [{"a": 1}, {"b": 2}, 3, {"a": 4}]) == {"a": 4, "b": 2}
    rows = [{"c": "red"}, {"c": "blue"}, {"c": "red"}]
    assert deduplicate(rows, ["red", "blue", "red"], True) == [{"c": "red"}, {"c": "blue"}]
    assert deduplicate(rows, ["red", "blue", "red"], False) is None  # the last one was seen before
    assert deduplicate(rows[:2], ["red", "blue"], False) == {"c": "blue"}


def _window(sql: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    query = parse_query(sql)
    assert query.grouping is not None
    peer = ekws.Peer("demo", "", "", 0)
    rows = [ekws.Message(r, peer, 1000 + n) for n, r in enumerate(records)]
    return [record for record, _ in query.grouping.evaluate(Emission(0, 5000, rows))]


def test_unnamed_aggregate_columns_are_named_by_function_as_ekuiper() -> None:
    out = _window("SELECT count(*), avg(t), max(h), min(h), sum(t), collect(t), median(t), "
                  "last_value(t, true), percentile_disc(t, 0.5) FROM demo GROUP BY COUNTWINDOW(3)",
                  [{"t": 1, "h": 5}, {"t": None, "h": 7}, {"t": 3}])
    assert out == [{"count": 3, "avg": 2.0, "max": 7, "min": 5, "sum": 4, "collect": [1, None, 3],
                    "median": 2.0, "last_value": 3, "percentile_disc": 1.0}]


def test_count_of_a_field_counts_its_non_null_values() -> None:
    out = _window("SELECT count(t) AS n, count(*) AS all_rows, deduplicate(c, true) AS d, merge_agg(*) AS m "
                  "FROM demo GROUP BY COUNTWINDOW(3)", [{"t": 1, "c": 1}, {"c": 1}, {"t": 2, "c": 2}])
    assert out == [{"n": 2, "all_rows": 3, "d": [{"t": 1, "c": 1}, {"t": 2, "c": 2}],
                    "m": {"t": 2, "c": 2}}]


def test_aggregate_arguments_are_checked_when_parsed() -> None:
    with pytest.raises(SQLError, match=r"percentile\(\) takes 2 arguments, got 1"):
        parse_query("SELECT percentile(a) FROM demo GROUP BY COUNTWINDOW(2)")
    with pytest.raises(SQLError, match=r"avg\(\*\) is not supported"):
        parse_query("SELECT avg(*) FROM demo GROUP BY COUNTWINDOW(2)")
    with pytest.raises(SQLError, match=r"count\(\) takes 1 argument, got 2"):
        parse_query("SELECT count(a, b) FROM demo GROUP BY COUNTWINDOW(2)")


def test_sums_past_the_float_range_are_what_go_gives() -> None:
    assert aggregate("sum", [1e308, 1e308]) == float("inf")
    assert math.isnan(aggregate("sum", [float("inf"), float("-inf")]))
