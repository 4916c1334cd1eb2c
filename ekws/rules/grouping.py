"""What a fired window becomes: groups, aggregates, HAVING, ORDER BY, LIMIT, the output rows.

The parser (:mod:`ekws.rules.sql`) compiles these clauses into a
:class:`Grouping` once; a window's :class:`~ekws.rules.window.Emission`
then runs through :meth:`Grouping.evaluate`. Every expression still is a
closure over ``(record, message)``: here the message is a
:class:`WindowContext`, which carries the group's rows (what an aggregate
reads) and the window's bounds (``window_start()``, ``window_end()``), and
whose ``data`` is the group's first row, so a plain field beside an
aggregate reads that row, as eKuiper's does.

With an aggregate or a ``GROUP BY`` field, a window gives one row per group
(in the order the groups first appeared); without, one row per record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .. import Message
from .aggregates import AGGREGATES, deduplicate
from .expr import EvalError, Expr, Fn, Record
from .window import Emission, StateConditions, WindowSpec

__all__ = ["Grouping", "WindowContext", "aggregate_expr", "event_time_expr", "window_bound_expr"]


class WindowContext(Message):
    """The message an expression sees in a window: a group's rows and the window's bounds."""

    __slots__ = ("rows", "window_start", "window_end")

    def __init__(self, first: Message, rows: Sequence[Message], start: int, end: int,
                 timestamp: Optional[int] = None) -> None:
        super().__init__(first.data, first.peer, first.timestamp if timestamp is None else timestamp)
        self.rows = rows
        self.window_start = start
        self.window_end = end


def _rows(m: Message, name: str) -> Sequence[Message]:
    rows = getattr(m, "rows", None)
    if rows is None:
        raise EvalError(f"the aggregate function {name} needs a window")
    return rows  # type: ignore[no-any-return]


def aggregate_expr(name: str, args: Sequence[Expr], star: bool) -> Expr:
    """``name(args)`` over the group's rows; ``star``: the argument is ``*`` (the whole row)."""
    fn = AGGREGATES[name][0]
    extras = [a.fn for a in args[1:]]
    if name == "count" and star:
        return Expr(lambda d, m: len(_rows(m, name)), name, False)
    first: Fn = (lambda d, m: d) if star else args[0].fn

    if name == "deduplicate":
        def dedup(d: Record, m: Message) -> Any:
            rows = _rows(m, name)
            return deduplicate([r.data for r in rows], [first(r.data, r) for r in rows],
                               *[e(d, m) for e in extras])
        return Expr(dedup, name, False)

    def agg(d: Record, m: Message) -> Any:
        values = [first(r.data, r) for r in _rows(m, name)]
        return fn(values, *[e(d, m) for e in extras])
    return Expr(agg, name, False)


def window_bound_expr(name: str) -> Expr:
    """``window_start()`` / ``window_end()``: ms since the epoch; null outside a window."""
    return Expr(lambda d, m: getattr(m, name, None), name, False)


def event_time_expr() -> Expr:
    """``event_time()``: the record's time (ms; its TIMESTAMP field, else its receive time),
    a group's window end in an aggregate query."""
    return Expr(lambda d, m: m.timestamp, "event_time", False)


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return (type(value) is bool, value)  # True and 1 are different groups


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nulls last; numbers before strings before anything else, so mixed kinds still sort.
    if value is None:
        return (3, 0)
    if type(value) in (int, float):
        return (0, value)
    if type(value) is str:
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class Grouping:
    """The window part of a query, compiled once."""

    window: WindowSpec
    keys: tuple[Fn, ...]  # GROUP BY expressions besides the window
    aggregated: bool  # one row per group (aggregates or GROUP BY fields), else one per record
    having: Optional[Fn]
    order: tuple[tuple[Fn, bool], ...]  # (key, descending)
    limit: Optional[int]
    project: Callable[[Message], Record]
    trigger: Optional[Fn] = None  # SLIDINGWINDOW ... OVER (WHEN cond)
    state: Optional[StateConditions] = None  # STATEWINDOW's conditions

    def triggers(self, msg: Message) -> bool:
        """Whether a row triggers a sliding window (every row, without OVER (WHEN ...))."""
        return self.trigger is None or self.trigger(msg.data, msg) is True

    def evaluate(self, emission: Emission) -> list[tuple[Record, Message]]:
        """The output rows of one fired window, each with the context it was computed in."""
        start, end, rows = emission
        if not rows:
            return []
        if self.aggregated:
            # A group's time (event_time(), meta(timestamp)) is the window's end, as in eKuiper.
            contexts: list[Message] = [WindowContext(group[0], group, start, end, end)
                                       for group in self._groups(rows)]
        else:
            contexts = [WindowContext(row, (row,), start, end) for row in rows]
        if self.having is not None:
            having = self.having
            contexts = [c for c in contexts if having(c.data, c) is True]
        for key, descending in reversed(self.order):
            contexts.sort(key=lambda c: _sort_key(key(c.data, c)), reverse=descending)
        if self.limit is not None:
            contexts = contexts[:self.limit]
        return [(self.project(c), c) for c in contexts]

    def _groups(self, rows: Sequence[Message]) -> list[list[Message]]:
        if not self.keys:
            return [list(rows)]
        groups: dict[tuple[Any, ...], list[Message]] = {}
        keys = self.keys
        for row in rows:
            key = tuple(_hashable(k(row.data, row)) for k in keys)
            groups.setdefault(key, []).append(row)
        return list(groups.values())
