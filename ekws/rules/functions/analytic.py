"""Analytic functions: eKuiper's ``funcs_analytic.go`` and ``funcs_acc.go`` (docs
``analytic_functions.md``): ``lag latest changed_col had_changed acc_sum acc_min acc_max
acc_count acc_avg``, each with an optional ``OVER ([PARTITION BY expr, ...] [WHEN expr])``.

Each call in a rule keeps its own state, per partition. As in eKuiper they are
evaluated first, for every record, before the WHERE: a record the WHERE drops
still moves ``lag`` on. A record where ``WHEN`` is not true leaves the state as
it was (and ``lag``/``latest`` answer from it). State lives as long as the
running rule: it starts empty when the rule starts or restarts, as eKuiper's
does without checkpoints.

Partitions are bounded: at most :data:`MAX_PARTITIONS` per call; beyond that
the least recently created partition is dropped and counted
(:attr:`Analytic.evicted`; the rule's status shows the sum as
``op_<n>_project_0_analytic_partitions_evicted``).

The ``acc_*`` functions also take eKuiper's begin and reset conditions,
``acc_sum(x, onBegin, onReset)``: they accumulate from a record where ``onBegin``
is true up to and including one where ``onReset`` is, and answer 0 outside.

:class:`ChangedCols` (``changed_cols``) keeps state too but runs in the
projection, after the WHERE, as eKuiper's does.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from ..expr import EvalError, Fn, Record
from .args import go_str
from .registry import NOT_CONST, Arg, FunctionError

__all__ = ["ANALYTIC", "MAX_PARTITIONS", "Analytic", "ChangedCols", "Hits", "Stateful", "make"]

MAX_PARTITIONS = 10_000
_MISSING: Any = object()

State = Any
# name -> (min args, max args, validate, new state(args), step(state, args, valid) -> value)
Step = Callable[[State, Sequence[Any], bool], Any]


def _same(a: Any, b: Any) -> bool:
    """reflect.DeepEqual for JSON values: the same type and value (1 and 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _lag_state(args: Sequence[Any]) -> State:
    size = args[1] if len(args) > 1 else 1
    if type(size) is not int or size < 0:
        raise EvalError(f"error converting second arg {go_str(size):.40} to int")
    default = args[2] if len(args) > 2 else None
    return collections.deque([default] * size)


def _lag(queue: State, args: Sequence[Any], valid: bool) -> Any:
    ignore_null = args[3] if len(args) > 3 else True
    if type(ignore_null) is not bool:
        raise EvalError(f"The fourth arg is not a bool but got {go_str(ignore_null):.40}")
    value = args[0]
    result = queue[0] if queue else value
    if valid and (not ignore_null or value is not None) and queue:
        result = queue.popleft()
        queue.append(value)
    return result


def _latest(state: State, args: Sequence[Any], valid: bool) -> Any:
    if valid and args[0] is not None:
        state[0] = args[0]
        return args[0]
    if state[0] is None:
        return args[1] if len(args) > 1 else None
    return state[0]


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise EvalError(f"first arg is not a bool but got {go_str(value):.40}")
    return bool(value)


def _changed_col(state: State, args: Sequence[Any], valid: bool) -> Any:
    ignore_null, value = _flag(args[0]), args[1]
    if (ignore_null and value is None) or not valid:
        return None
    if not _same(value, state[0]):
        state[0] = value
        return value
    return None


def _had_changed(state: State, args: Sequence[Any], valid: bool) -> bool:
    if not valid:
        return False
    ignore_null, changed = _flag(args[0]), False
    for i, value in enumerate(args[1:]):
        if ignore_null and value is None:
            continue
        if not _same(value, state.get(i)):
            changed = True
            state[i] = value
    return changed


def _number(value: Any) -> float:
    if type(value) is int or type(value) is float:
        return float(value)
    raise EvalError("the value should be number")


# The accumulators, as eKuiper's ``funcs_acc.go``: state [value, count, begun]. ``acc_sum``
# and ``acc_count`` pass over a null; ``acc_min``, ``acc_max`` and ``acc_avg`` fail the
# record on one (Go's type switch has no nil case), as on any non-number.
def _acc_reset(state: State) -> None:
    state[0] = 0 if state[3] == "count" else 0.0 if state[3] == "sum" else None
    state[1] = 0


def _acc_exec(state: State, value: Any, valid: bool) -> None:
    if not valid:
        return
    kind = state[3]
    if kind == "count":
        if value is not None:
            state[0] += 1
        return
    if kind == "sum":
        if value is not None:
            state[0] += _number(value)
        return
    number = _number(value)
    if kind == "avg":
        state[0] = number if state[0] is None else state[0] + number
        state[1] += 1
    elif state[0] is None:
        state[0] = number
    else:
        state[0] = min(state[0], number) if kind == "min" else max(state[0], number)


def _acc_result(state: State) -> Any:
    kind, value = state[3], state[0]
    if kind == "count":
        return int(value)
    if kind == "avg":
        return value / state[1] if state[1] else 0.0
    return 0.0 if value is None else value


def _acc_state(kind: str) -> Callable[[Sequence[Any]], State]:
    def new(args: Sequence[Any]) -> State:
        state = [None, 0, False, kind]
        _acc_reset(state)
        return state
    return new


def _acc(state: State, args: Sequence[Any], valid: bool) -> Any:
    """``acc_x(value)``, or ``acc_x(value, onBegin, onReset)``: accumulate from a row where
    ``onBegin`` is true up to and including one where ``onReset`` is (eKuiper's accFuncWithCond)."""
    if len(args) == 1:
        _acc_exec(state, args[0], valid)
        return _acc_result(state)
    on_begin, on_reset = args[1], args[2]
    if type(on_begin) is not bool:
        raise EvalError("onBegin should be boolean")
    if type(on_reset) is not bool:
        raise EvalError("onReset should be boolean")
    if not state[2]:
        _acc_reset(state)
        state[2] = on_begin
    if state[2]:
        _acc_exec(state, args[0], valid)
    if on_reset:
        state[2] = False
    return _acc_result(state)


def _acc_arity(args: Sequence[Arg]) -> None:
    if len(args) not in (1, 3):
        raise ValueError(f"Expect 1/3 arguments but found {len(args)}.")


def _lag_check(args: Sequence[Arg]) -> None:
    if len(args) > 1 and args[1].value is NOT_CONST:
        raise ValueError("Expect int type for parameter 2")
    if len(args) > 1 and (type(args[1].value) is not int):
        raise ValueError("Expect int type for parameter 2")
    if len(args) > 1 and args[1].value < 0:
        raise ValueError("the index should not be a nagtive integer")


def _bool_first(args: Sequence[Arg]) -> None:
    if type(args[0].value) in (int, float, str):
        raise ValueError("Expect boolean type for parameter 1")


_STEPS: dict[str, tuple[int, Optional[int], Optional[Callable[[Sequence[Arg]], None]],
                        Callable[[Sequence[Any]], State], Step]] = {
    "lag": (1, 4, _lag_check, _lag_state, _lag),
    "latest": (1, 2, None, lambda args: [None], _latest),
    "changed_col": (2, 2, _bool_first, lambda args: [None], _changed_col),
    "had_changed": (2, None, _bool_first, lambda args: {}, _had_changed),
    "acc_sum": (1, 3, _acc_arity, _acc_state("sum"), _acc),
    "acc_max": (1, 3, _acc_arity, _acc_state("max"), _acc),
    "acc_min": (1, 3, _acc_arity, _acc_state("min"), _acc),
    "acc_count": (1, 3, _acc_arity, _acc_state("count"), _acc),
    "acc_avg": (1, 3, _acc_arity, _acc_state("avg"), _acc),
}
ANALYTIC = frozenset(_STEPS)


def _partition_key(values: list[Any]) -> Any:
    return tuple(v if type(v) in (str, int, float, bool) or v is None else repr(v) for v in values)


class Analytic:
    """One analytic call of a rule: argument closures, its partitions' state, its last value."""

    first = True  # updated on every record, before the WHERE

    def __init__(self, name: str, args: Sequence[Fn], partition: Sequence[Fn], when: Optional[Fn],
                 limit: Optional[int] = None) -> None:
        _, _, _, self._new, self._step = _STEPS[name]
        self.name = name
        self._args = tuple(args)
        self._partition = tuple(partition)
        self._when = when
        self._limit = MAX_PARTITIONS if limit is None else limit
        self._states: collections.OrderedDict[Any, State] = collections.OrderedDict()
        self.value: Any = None
        self.evicted = 0

    def reset(self) -> None:
        self._states.clear()
        self.value = None

    def update(self, d: Record, m: Any) -> None:
        args = [f(d, m) for f in self._args]
        valid = True if self._when is None else self._when(d, m) is True
        key = _partition_key([f(d, m) for f in self._partition]) if self._partition else ()
        states = self._states
        state = states.get(key, _MISSING)
        if state is _MISSING:
            state = self._new(args)
            if len(states) >= self._limit:
                states.popitem(last=False)
                self.evicted += 1
            states[key] = state
        self.value = self._step(state, args, valid)


class ChangedCols:
    """``changed_cols(prefix, ignoreNull, col, ...)``: the columns whose value changed since the
    last output record, each as ``prefix + name`` (eKuiper's ``funcs_cols.go``).

    Unlike the analytic functions it runs in the projection, after the WHERE: it compares
    with what was last sent, as eKuiper's does. ``*`` stands for every field of the record.
    The columns it remembers are bounded as partitions are (``*`` takes its names from the
    records): beyond :data:`MAX_PARTITIONS` the oldest is forgotten and counted.
    """

    first = False  # not updated before the WHERE: it is called by the projection
    name = "changed_cols"

    def __init__(self, prefix: Fn, ignore_null: Fn, columns: Sequence[tuple[str, Optional[Fn]]],
                 limit: Optional[int] = None) -> None:
        self._prefix = prefix
        self._ignore_null = ignore_null
        self._columns = tuple(columns)  # (name, closure); closure None: ``*``
        self._limit = MAX_PARTITIONS if limit is None else limit
        self._last: dict[str, Any] = {}
        self.evicted = 0

    def reset(self) -> None:
        self._last.clear()

    def update(self, d: Record, m: Any) -> None:  # pragma: no cover - never called (first is False)
        pass

    def __call__(self, d: Record, m: Any) -> dict[str, Any]:
        prefix, ignore_null = self._prefix(d, m), self._ignore_null(d, m)
        if type(prefix) is not str:
            raise EvalError(f"first arg is not a string but got {go_str(prefix):.40}")
        if type(ignore_null) is not bool:
            raise EvalError(f"second arg is not a bool but got {go_str(ignore_null):.40}")
        out: dict[str, Any] = {}
        last = self._last
        for name, fn in self._columns:
            pairs = d.items() if fn is None else ((name, fn(d, m)),)
            for key, value in pairs:
                if ignore_null and value is None:
                    continue
                if key in last:
                    if _same(value, last[key]):
                        continue
                elif value is None:
                    continue  # nothing seen is null too: no change (eKuiper's state starts nil)
                elif len(last) >= self._limit:
                    del last[next(iter(last))]
                    self.evicted += 1
                last[key] = value
                out[prefix + key] = value
        return out


class Hits:
    """``last_hit_count()`` and ``last_hit_time()`` (eKuiper's ``funcs_global_state.go``): how many
    records the rule has sent, and the event time of the last, as they were before this record.
    The rule's query moves them on after a record passed its WHERE."""

    first = False
    name = "last_hit"
    evicted = 0  # one counter, nothing to bound

    def __init__(self) -> None:
        self.count = 0
        self.time = 0

    def reset(self) -> None:
        self.count = 0
        self.time = 0

    def update(self, d: Record, m: Any) -> None:  # pragma: no cover - never called (first is False)
        pass

    def hit(self, timestamp: int) -> None:
        self.count += 1
        self.time = timestamp


Stateful = Union[Analytic, ChangedCols, Hits]  # what a query resets when its rule starts again


def make(name: str, args: Sequence[Fn], literals: Sequence[Arg], partition: Sequence[Fn],
         when: Optional[Fn]) -> Analytic:
    """The analytic call ``name(args) OVER (...)``, checked as eKuiper checks it.

    Raises:
        FunctionError: a wrong argument count or literal, with eKuiper's message.
    """
    least, most, validate, _, _ = _STEPS[name]
    count = len(args)
    if count < least or (most is not None and count > most):
        shown = f"{least}" if least == most else f"{least} to {most}" if most else f"at least {least}"
        raise FunctionError(f"{name}: Expect {shown} arguments but found {count}.")
    if validate is not None:
        try:
            validate(literals)
        except ValueError as exc:
            raise FunctionError(f"{name}: {exc}") from None
    return Analytic(name, args, partition, when)
