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

Not provided: ``changed_cols`` (many output columns), the ``acc_*`` forms with
begin/reset conditions, ``unnest`` and ``row_number``; each is refused by name.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..expr import EvalError, Fn, Record, kind_of
from .registry import NOT_CONST, Arg, FunctionError

__all__ = ["ANALYTIC", "MAX_PARTITIONS", "Analytic", "make"]

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
        raise EvalError(f"error converting second arg {size!r:.40} to int")
    default = args[2] if len(args) > 2 else None
    return collections.deque([default] * size)


def _lag(queue: State, args: Sequence[Any], valid: bool) -> Any:
    ignore_null = args[3] if len(args) > 3 else True
    if type(ignore_null) is not bool:
        raise EvalError(f"The fourth arg is not a bool but got {ignore_null!r:.40}")
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
        raise EvalError(f"first arg is not a bool but got {value!r:.40}")
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
    raise EvalError(f"the value should be number, got {kind_of(value)} {value!r:.40}")


def _acc(update: Callable[[list[Any], float], None], result: Callable[[list[Any]], Any]) -> Step:
    def step(state: State, args: Sequence[Any], valid: bool) -> Any:
        if valid and args[0] is not None:
            update(state, _number(args[0]))
        return result(state)
    return step


def _acc_count(state: State, args: Sequence[Any], valid: bool) -> int:
    if valid and args[0] is not None:
        state[0] += 1
    return int(state[0])


def _set(state: list[Any], value: float, pick: Callable[[float, float], float]) -> None:
    state[0] = value if state[0] is None else pick(state[0], value)


def _add(state: list[Any], value: float) -> None:
    state[0] += value
    state[1] += 1


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
    "acc_sum": (1, 1, None, lambda args: [0.0],
                _acc(lambda s, v: s.__setitem__(0, s[0] + v), lambda s: s[0])),
    "acc_max": (1, 1, None, lambda args: [None],
                _acc(lambda s, v: _set(s, v, max), lambda s: 0.0 if s[0] is None else s[0])),
    "acc_min": (1, 1, None, lambda args: [None],
                _acc(lambda s, v: _set(s, v, min), lambda s: 0.0 if s[0] is None else s[0])),
    "acc_count": (1, 1, None, lambda args: [0], _acc_count),
    "acc_avg": (1, 1, None, lambda args: [0.0, 0], _acc(_add, lambda s: s[0] / s[1] if s[1] else 0.0)),
}
ANALYTIC = frozenset(_STEPS)


def _partition_key(values: list[Any]) -> Any:
    return tuple(v if type(v) in (str, int, float, bool) or v is None else repr(v) for v in values)


class Analytic:
    """One analytic call of a rule: argument closures, its partitions' state, its last value."""

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
