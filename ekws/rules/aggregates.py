"""Aggregate functions of the rule SQL, over the rows of one window group.

Each function takes the values its first argument has in the group's rows
(one per row, in arrival order, nulls included) and the values of its
further arguments read from the group's first row (they are constants in
practice: ``percentile(x, 0.5)``, ``last_value(x, true)``).

Null handling is eKuiper's (``internal/binder/function/funcs_agg.go`` and
``common_array_funcs.go``): nulls are skipped; ``count`` counts the non-null
values (``count(*)`` counts rows); ``avg``, ``sum``, ``max``, ``min`` and the
statistics of no value are null; ``median`` of no value is 0. A value of the
wrong kind (a string in ``sum``) is an :class:`EvalError` for the window, as
eKuiper's run error is.

One difference, on purpose: ``avg`` divides as a float even when every value
is an integer. eKuiper truncates only for ``bigint`` typed fields; a JSON
number in a schemaless eKuiper stream is a float64, so ``avg(temperature)``
over ``25`` and ``30`` is ``27.5`` there, as it is here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .expr import EvalError, kind_of

__all__ = ["AGGREGATES", "aggregate"]

Values = Sequence[Any]


def _numbers(name: str, values: Values) -> list[Any]:
    out = []
    for v in values:
        if v is None:
            continue
        if type(v) is not int and type(v) is not float:
            raise EvalError(f"{name}() needs numbers, got {kind_of(v)} {v!r:.40}")
        out.append(v)
    return out


def _fsum(numbers: list[Any]) -> float:
    try:
        return math.fsum(numbers)  # exact: the order the rows came in does not change the sum
    except (ValueError, OverflowError):  # inf + -inf, or past the float range: what Go's += gives
        return float(sum(float(v) for v in numbers))


def _sum(values: Values) -> Any:
    numbers = _numbers("sum", values)
    if not numbers:
        return None
    return _fsum(numbers) if any(type(v) is float for v in numbers) else sum(numbers)


def _avg(values: Values) -> Any:
    numbers = _numbers("avg", values)
    return _fsum(numbers) / len(numbers) if numbers else None


def _extreme(name: str, pick: Callable[..., Any]) -> Callable[[Values], Any]:
    def extreme(values: Values) -> Any:
        present = [v for v in values if v is not None]
        if not present:
            return None
        first = kind_of(present[0])
        if first not in ("number", "string") or any(kind_of(v) != first for v in present):
            bad = next(v for v in present if kind_of(v) != first or first not in ("number", "string"))
            raise EvalError(f"{name}() needs numbers or strings, got {kind_of(bad)} {bad!r:.40}")
        return pick(present)
    return extreme


def _count(values: Values) -> int:
    return sum(1 for v in values if v is not None)


def _median(values: Values) -> Any:
    numbers = sorted(_numbers("median", values))
    n = len(numbers)
    if n == 0:
        return 0
    if n % 2:
        return numbers[n // 2]
    return (numbers[n // 2 - 1] + numbers[n // 2]) / 2


def _variance(values: Values, sample: bool) -> Optional[float]:
    # Welford's one pass: numerically stable, the same as the two-pass formula.
    n, mean, m2 = 0, 0.0, 0.0
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    if n == 0 or (sample and n == 1):
        return None
    return m2 / (n - 1 if sample else n)


def _stat(name: str, sample: bool, root: bool) -> Callable[[Values], Any]:
    def stat(values: Values) -> Any:
        var = _variance(_numbers(name, values), sample)
        return None if var is None else math.sqrt(var) if root else var
    return stat


def _fraction(name: str, p: Any) -> float:
    if type(p) not in (int, float) or not 0 <= p <= 1:
        raise EvalError(f"{name}() needs a fraction between 0 and 1, got {p!r:.40}")
    return float(p)


def _percentile(values: Values, p: Any = 1) -> Any:
    # montanaflynn/stats Percentile, which eKuiper's percentile_cont calls with p*100.
    numbers = sorted(float(v) for v in _numbers("percentile", values))
    percent = _fraction("percentile", p) * 100
    if not numbers:
        return None
    n = len(numbers)
    if n == 1:
        return numbers[0]
    index = percent / 100 * n
    if percent > 0 and index == int(index):
        return numbers[int(index) - 1]
    if index > 1:
        i = int(index)
        return (numbers[i - 1] + numbers[i]) / 2
    raise EvalError(f"percentile() of {p!r} is out of bounds for {n} values")


def _percentile_disc(values: Values, p: Any = 1) -> Any:
    # montanaflynn/stats PercentileNearestRank.
    numbers = sorted(float(v) for v in _numbers("percentile_disc", values))
    percent = _fraction("percentile_disc", p) * 100
    if not numbers:
        return None
    if percent == 0:
        return numbers[0]
    if percent == 100:
        return numbers[-1]
    rank = int(math.ceil(percent / 100 * len(numbers)))
    return numbers[max(rank - 1, 0)]


def _collect(values: Values) -> list[Any]:
    return list(values)


def _merge_agg(values: Values) -> Any:
    out: dict[str, Any] = {}
    for v in values:
        if type(v) is dict:
            out.update(v)
    return out or None


def _last_value(values: Values, ignore_null: Any = True) -> Any:
    if type(ignore_null) is not bool:
        raise EvalError(f"last_value() needs a boolean second argument, got {ignore_null!r:.40}")
    if not values:
        return None
    if ignore_null:
        return next((v for v in reversed(values) if v is not None), None)
    return values[-1]


def _key(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def deduplicate(rows: Sequence[Any], column: Values, all_rows: Any) -> Any:
    """eKuiper's ``deduplicate(col, all)``: the rows whose ``col`` was not seen before in
    the window (``all``), or the last row if its ``col`` is new (else null)."""
    if type(all_rows) is not bool:
        raise EvalError(f"deduplicate() needs a boolean second argument, got {all_rows!r:.40}")
    seen: set[str] = set()
    result = []
    for i, value in enumerate(column):
        key = _key(value)
        if key not in seen:
            if all_rows or i == len(column) - 1:
                result.append(rows[i])
            seen.add(key)
    if all_rows:
        return result
    return result[0] if result else None


# name -> (function of the values and the further arguments, min args, max args)
AGGREGATES: dict[str, tuple[Callable[..., Any], int, int]] = {
    "avg": (_avg, 1, 1),
    "count": (_count, 1, 1),
    "max": (_extreme("max", max), 1, 1),
    "min": (_extreme("min", min), 1, 1),
    "sum": (_sum, 1, 1),
    "collect": (_collect, 1, 1),
    "merge_agg": (_merge_agg, 1, 1),
    "last_value": (_last_value, 2, 2),
    "median": (_median, 1, 1),
    "stddev": (_stat("stddev", False, True), 1, 1),
    "stddevs": (_stat("stddevs", True, True), 1, 1),
    "var": (_stat("var", False, False), 1, 1),
    "vars": (_stat("vars", True, False), 1, 1),
    "percentile": (_percentile, 2, 2),
    "percentile_cont": (_percentile, 2, 2),
    "percentile_disc": (_percentile_disc, 2, 2),
    "deduplicate": (deduplicate, 2, 2),
}


def aggregate(name: str, values: Values, *extra: Any) -> Any:
    """Run the aggregate ``name`` over ``values`` (``deduplicate``: rows, values, all)."""
    return AGGREGATES[name][0](values, *extra)
