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
eKuiper's run error is. ``sum`` and ``avg`` add floats in the rows' order, as
eKuiper's ``float64 +=`` does (so the last digit is eKuiper's, not ``math.fsum``'s);
a sum of integers only is exact.

One difference, on purpose: ``avg`` divides as a float even when every value
is an integer. eKuiper truncates only for ``bigint`` typed fields; a JSON
number in a schemaless eKuiper stream is a float64, so ``avg(temperature)``
over ``25`` and ``30`` is ``27.5`` there, as it is here.

Incremental state (:data:`INCREMENTAL`): ``count sum avg min max stddev
stddevs var vars last_value`` also exist as accumulators that take one value
at a time and keep O(1) state, so a window that needs no rows keeps none
(:mod:`ekws.rules.grouping` decides). They give the results the row-based
functions give over the same values in the same order, errors included (a
wrong value is remembered and raised when the window fires): ``sum`` and
``avg`` keep Shewchuk's exact partials, whose ``fsum`` is the ``fsum`` of all
the values; ``stddev``/``var`` are the same Welford steps. Only ``last_value``
needs the row's time (event time may bring a row older than the last).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .expr import EvalError, kind_of

__all__ = ["AGGREGATES", "INCREMENTAL", "Accumulator", "aggregate"]

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


def _total(numbers: list[Any]) -> float:
    # eKuiper's sliceFloatTotal: float64 additions in the rows' order (an int is made a float
    # as it is added), so a sum of 0.1, 0.2 and 0.3 is 0.6000000000000001 here as there.
    total = 0.0
    for v in numbers:
        total += v
    return total


def _sum(values: Values) -> Any:
    numbers = _numbers("sum", values)
    if not numbers:
        return None
    return _total(numbers) if any(type(v) is float for v in numbers) else sum(numbers)


def _avg(values: Values) -> Any:
    numbers = _numbers("avg", values)
    return _total(numbers) / len(numbers) if numbers else None


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


# --------------------------------------------------------------------------- incremental


class Accumulator:
    """One aggregate of one group, a value at a time; ``result`` raises what the row-based
    function would have raised over the same values."""

    __slots__ = ("bad",)

    def __init__(self) -> None:
        self.bad: Optional[Exception] = None

    def add(self, value: Any, at: int) -> None:
        raise NotImplementedError

    def fail(self, exc: Exception) -> None:
        """The argument's expression raised on a row: the window fails with the first."""
        if self.bad is None:
            self.bad = exc

    def result(self) -> Any:
        if self.bad is not None:
            raise self.bad
        return self.value()

    def value(self) -> Any:
        raise NotImplementedError


def _not_number(name: str, v: Any) -> EvalError:
    return EvalError(f"{name}() needs numbers, got {kind_of(v)} {v!r:.40}")


class _Count(Accumulator):
    __slots__ = ("n", "star")

    def __init__(self, star: bool) -> None:
        super().__init__()
        self.n = 0
        self.star = star

    def add(self, value: Any, at: int) -> None:
        if self.star or value is not None:
            self.n += 1

    def value(self) -> Any:
        return self.n


class _Sum(Accumulator):
    """``sum`` and ``avg``: the exact int sum, and the float sum in the rows' order."""

    __slots__ = ("name", "n", "ints", "floats", "total", "overflow")

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.n = 0
        self.ints = 0
        self.floats = False
        self.total = 0.0
        self.overflow: Optional[OverflowError] = None  # an int past the float range

    def add(self, value: Any, at: int) -> None:
        if value is None or self.bad is not None:
            return
        kind = type(value)
        if kind is float:
            self.floats = True
        elif kind is int:
            self.ints += value
        else:
            self.bad = _not_number(self.name, value)
            return
        self.n += 1
        try:
            self.total += value
        except OverflowError as exc:  # raised if the float sum is asked for, as row-based
            if self.overflow is None:
                self.overflow = exc

    def value(self) -> Any:
        if self.n == 0:
            return None
        if self.overflow is not None and (self.floats or self.name == "avg"):
            raise self.overflow
        if self.name == "avg":
            return self.total / self.n
        return self.total if self.floats else self.ints


class _Extreme(Accumulator):
    __slots__ = ("name", "greater", "best", "kind")

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.greater = name == "max"
        self.best: Any = None
        self.kind = ""

    def add(self, value: Any, at: int) -> None:
        if value is None or self.bad is not None:
            return
        plain = type(value)
        if (plain is float or plain is int) and self.kind == "number":  # the common case, first
            if (value > self.best) if self.greater else (value < self.best):
                self.best = value
            return
        kind = kind_of(value)
        if not self.kind:
            self.kind = kind
            self.best = value
            if kind not in ("number", "string"):
                self.bad = EvalError(f"{self.name}() needs numbers or strings, got {kind} {value!r:.40}")
            return
        if kind != self.kind:
            self.bad = EvalError(f"{self.name}() needs numbers or strings, got {kind} {value!r:.40}")
            return
        if (value > self.best) if self.greater else (value < self.best):
            self.best = value

    def value(self) -> Any:
        return self.best


class _Welford(Accumulator):
    __slots__ = ("name", "sample", "root", "n", "mean", "m2")

    def __init__(self, name: str, sample: bool, root: bool) -> None:
        super().__init__()
        self.name, self.sample, self.root = name, sample, root
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, value: Any, at: int) -> None:
        if value is None or self.bad is not None:
            return
        if type(value) is not int and type(value) is not float:
            self.bad = _not_number(self.name, value)
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def value(self) -> Any:
        if self.n == 0 or (self.sample and self.n == 1):
            return None
        var = self.m2 / (self.n - 1 if self.sample else self.n)
        return math.sqrt(var) if self.root else var


class _LastValue(Accumulator):
    """The value of the latest row (by time; of equal times, the last to come)."""

    __slots__ = ("ignore_null", "seen", "last", "last_at", "present", "present_at")

    def __init__(self, ignore_null: Any) -> None:
        super().__init__()
        self.ignore_null = ignore_null
        self.seen = False
        self.last: Any = None
        self.last_at = 0
        self.present: Any = None
        self.present_at: Optional[int] = None

    def add(self, value: Any, at: int) -> None:
        if not self.seen or at >= self.last_at:
            self.seen, self.last, self.last_at = True, value, at
        if value is not None and (self.present_at is None or at >= self.present_at):
            self.present, self.present_at = value, at

    def value(self) -> Any:
        if type(self.ignore_null) is not bool:
            raise EvalError(f"last_value() needs a boolean second argument, got {self.ignore_null!r:.40}")
        return self.present if self.ignore_null else self.last


# name -> a new accumulator, from (star, the further arguments' constant values)
INCREMENTAL: dict[str, Callable[[bool, Sequence[Any]], Accumulator]] = {
    "count": lambda star, extra: _Count(star),
    "sum": lambda star, extra: _Sum("sum"),
    "avg": lambda star, extra: _Sum("avg"),
    "max": lambda star, extra: _Extreme("max"),
    "min": lambda star, extra: _Extreme("min"),
    "stddev": lambda star, extra: _Welford("stddev", False, True),
    "stddevs": lambda star, extra: _Welford("stddevs", True, True),
    "var": lambda star, extra: _Welford("var", False, False),
    "vars": lambda star, extra: _Welford("vars", True, False),
    "last_value": lambda star, extra: _LastValue(extra[0]),
}
