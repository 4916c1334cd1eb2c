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

Incremental: when the query is aggregated and every aggregate has an
accumulator (:data:`~ekws.rules.aggregates.INCREMENTAL`, with constant further
arguments), a tumbling, hopping or count window (its interval its count)
keeps no rows: each row goes straight into its window's :class:`Groups` (per
group: its first row and one accumulator per aggregate, O(groups) memory; a
hopping window's row goes into each of the ``size / hop`` windows open that
hold it, as eKuiper's ``HoppingWindowIncAggOp`` does), and the aggregate expressions
read the accumulators when the window fires (``WindowContext.accs``). Any
other query keeps the rows and computes at the end; both give the same rows.
A sliding window keeps its rows: eKuiper's incremental sliding window
(``SlidingWindowIncAggOp``) opens a set of accumulators for every row, which
holds more than the rows do.

A window holds at most ``max_groups`` groups (:class:`GroupLimit`, the rule
option ``maxWindowGroups``): a row that would open one more is dropped,
counted and logged once, in both ways of computing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Optional

from ..message import Message
from .aggregates import AGGREGATES, INCREMENTAL, Accumulator, deduplicate
from .expr import MAX_INLINE, EvalError, Expr, Fn, Record, inline
from .window import Emission, StateConditions, WindowSpec

__all__ = ["AggSpec", "GroupLimit", "Grouping", "Groups", "HitState", "WindowContext", "aggregate_expr",
           "event_time_expr", "hit_expr", "window_bound_expr"]

logger = logging.getLogger(__name__)


class WindowContext(Message):
    """The message an expression sees in a window: a group's rows and the window's bounds."""

    __slots__ = ("rows", "window_start", "window_end", "accs", "hits", "analytic")

    def __init__(self, first: Message, rows: Sequence[Message], start: int, end: int,
                 timestamp: Optional[int] = None,
                 accs: Optional[Sequence[Accumulator]] = None) -> None:
        super().__init__(first.data, first.peer, first.timestamp if timestamp is None else timestamp)
        self.rows = rows
        self.window_start = start
        self.window_end = end
        self.accs = accs  # incremental: the group's accumulators, by AggSpec slot
        self.hits: Optional[tuple[int, int]] = None  # last_agg_hit_count()/_time() for this row
        # lag() ... outside an aggregate: the values they had for the group's first row
        self.analytic: Optional[dict[int, Any]] = getattr(first, "analytic", None)


class HitState:
    """eKuiper's ``last_agg_hit_count()`` and ``last_agg_hit_time()`` (funcs_global_state.go):
    a rule's count of rows emitted and the time (window end) of the last one. A row reads the
    values before it counts; used in HAVING, only a row that passes counts."""

    def __init__(self) -> None:
        self.count = 0
        self.time = 0

    def reset(self) -> None:
        self.count = self.time = 0

    def hit(self, at: int) -> tuple[int, int]:
        before = (self.count, self.time)
        self.count += 1
        self.time = at
        return before


def hit_expr(name: str, hits: HitState) -> Expr:
    """``last_agg_hit_count()`` / ``last_agg_hit_time()``: the row's values, or (in HAVING,
    before the row counts) the rule's."""
    index = 0 if name == "last_agg_hit_count" else 1

    def hit(d: Record, m: Message) -> Any:
        values = getattr(m, "hits", None)
        return (values if values is not None else (hits.count, hits.time))[index]
    return Expr(hit, name, False)


class AggSpec(NamedTuple):
    """One aggregate call of the query, numbered (``slot``) in the order the parser met it."""

    name: str
    arg: Optional[Expr]  # None: ``*``
    extras: tuple[Any, ...]  # the further arguments' values, or None where one is not a literal
    incremental: bool

    def accumulator(self) -> Accumulator:
        return INCREMENTAL[self.name](self.arg is None, self.extras)


class GroupLimit:
    """A rule's limit of groups per window, and the rows it refused (logged once)."""

    def __init__(self, max_groups: int = 10_000) -> None:
        self.max_groups = max_groups
        self.dropped = 0

    def refuse(self) -> None:
        if not self.dropped:
            logger.warning("a window holds %d groups, its limit (maxWindowGroups): rows of further "
                           "groups are dropped (and counted) until it fires", self.max_groups)
        self.dropped += 1


class _Group:
    __slots__ = ("first", "first_at", "first_seq", "accs")

    def __init__(self, first: Message, at: int, seq: int, accs: list[Accumulator]) -> None:
        self.first = first
        self.first_at = at
        self.first_seq = seq
        self.accs = accs


class Groups:
    """One window's groups, aggregated as its rows come (the incremental window's rows).

    ``add(msg, at)`` is the query's own function (:func:`_adder`), bound to this window."""

    __slots__ = ("add", "_specs", "_limit", "groups", "error", "first", "_seq", "_sorted", "_latest")

    def __init__(self, adder: Callable[[Groups, Message, int], None], specs: tuple[AggSpec, ...],
                 limit: GroupLimit) -> None:
        self.add: Callable[[Message, int], None] = partial(adder, self)
        self._specs = specs
        self._limit = limit
        self.groups: dict[Any, _Group] = {}
        self.error: Optional[Exception] = None  # a GROUP BY key raised: the window fails, as row-based
        self.first: Optional[Message] = None  # a row of the window (its peer for sendError)
        self._seq = 0
        self._sorted = True  # groups are in the order of their first rows' times
        self._latest = 0  # the latest first row's time

    def __len__(self) -> int:
        return len(self.groups)

    def key_failed(self, msg: Message, exc: Exception) -> None:
        if self.first is None:
            self.first = msg
        self.error = exc

    def open(self, key: Any, msg: Message, at: int) -> Optional[_Group]:
        """The slow path of ``add``: a new group (None over the limit), or an older first row."""
        if self.first is None:
            self.first = msg
        self._seq += 1
        group = self.groups.get(key)
        if group is not None:  # event time: an older row is the group's first
            group.first, group.first_at, group.first_seq = msg, at, self._seq
            self._sorted = False
            return group
        if len(self.groups) >= self._limit.max_groups:
            self._limit.refuse()
            return None
        group = self.groups[key] = _Group(msg, at, self._seq, [s.accumulator() for s in self._specs])
        if at < self._latest:
            self._sorted = False
        else:
            self._latest = at
        return group

    def ordered(self) -> list[_Group]:
        groups = list(self.groups.values())
        if not self._sorted:
            groups.sort(key=lambda g: (g.first_at, g.first_seq))
        return groups


def _adder(keys: Sequence[Expr], specs: Sequence[AggSpec]) -> Callable[[Groups, Message, int], None]:
    """The hot path of an incremental window, generated once per query as the projection is
    (:func:`~ekws.rules.expr.query_fns`): the key and each aggregate's argument inline, one
    dict lookup, one ``add`` per aggregate. Only generated names reach the source."""
    namespace: dict[str, Any] = {"_h": _hashable}
    codes: list[str] = []
    for expr in keys:
        code, env = inline(expr)
        if len(code) > MAX_INLINE:
            code, env = f"_kf{len(codes)}(d, m)", {f"_kf{len(codes)}": expr.fn}
        namespace.update(env)
        codes.append(f"_h({code})")
    key = "()" if not codes else codes[0] if len(codes) == 1 else f"({', '.join(codes)},)"
    lines = ["def add(g, m, at):",
             "    if g.error is not None:",
             "        return",
             "    d = m.data",
             "    try:",
             f"        key = {key}",
             "    except Exception as exc:",
             "        g.key_failed(m, exc)",
             "        return",
             "    group = g.groups.get(key)",
             "    if group is None or at < group.first_at:",
             "        group = g.open(key, m, at)",
             "        if group is None:",
             "            return",
             "    a = group.accs"]
    for n, spec in enumerate(specs):
        if spec.arg is None:
            code = "d"
        else:
            code, env = inline(spec.arg)
            if len(code) > MAX_INLINE:
                code, env = f"_af{n}(d, m)", {f"_af{n}": spec.arg.fn}
            namespace.update(env)
        lines += ["    try:",
                  f"        a[{n}].add({code}, at)",
                  "    except Exception as exc:",
                  f"        a[{n}].fail(exc)"]
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - generated from the fixed template above
    return namespace["add"]  # type: ignore[no-any-return]


def _key_fn(keys: tuple[Fn, ...]) -> Callable[[Record, Message], Any]:
    """A group's key from its GROUP BY expressions (one: the value itself, made hashable)."""
    if not keys:
        return lambda d, m: ()
    if len(keys) == 1:
        only = keys[0]
        return lambda d, m: _hashable(only(d, m))
    return lambda d, m: tuple([_hashable(k(d, m)) for k in keys])


def _rows(m: Message, name: str) -> Sequence[Message]:
    rows = getattr(m, "rows", None)
    if rows is None:
        raise EvalError(f"the aggregate function {name} needs a window")
    return rows  # type: ignore[no-any-return]


def aggregate_expr(name: str, args: Sequence[Expr], star: bool, slot: int = -1) -> Expr:
    """``name(args)`` over the group's rows; ``star``: the argument is ``*`` (the whole row).

    ``slot``: its :class:`AggSpec`'s number; an incremental window's context carries the
    accumulators, and the expression reads its own."""
    expr = _row_aggregate_expr(name, args, star)
    if slot < 0 or name not in INCREMENTAL:
        return expr
    rows_fn = expr.fn

    def incremental(d: Record, m: Message) -> Any:
        accs = getattr(m, "accs", None)
        if accs is not None:
            return accs[slot].result()
        return rows_fn(d, m)
    return Expr(incremental, name, False)


def agg_spec(name: str, args: Sequence[Expr], star: bool) -> AggSpec:
    """The :class:`AggSpec` of ``name(args)``: incremental when it has an accumulator and its
    further arguments are literals."""
    extras = tuple(a.fn({}, None) if a.const else None  # type: ignore[arg-type]
                   for a in args[1:])
    incremental = name in INCREMENTAL and all(a.const for a in args[1:])
    return AggSpec(name, None if star else args[0], extras, incremental)


def _row_aggregate_expr(name: str, args: Sequence[Expr], star: bool) -> Expr:
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
    kind = type(value)
    if kind is str or kind is int or kind is float or value is None:
        return value  # 1 and 1.0 are one group, as they are equal
    if kind is bool:
        return (True, value)  # True and 1 are different groups
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return ("other", value)


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
    aggs: tuple[AggSpec, ...] = ()  # every aggregate call, by slot
    needs_rows: bool = True  # False: aggregated, and every aggregate has an accumulator
    key_exprs: tuple[Expr, ...] = ()  # the GROUP BY expressions of ``keys``, for the incremental add
    hits: Optional[HitState] = field(default=None, compare=False)  # last_agg_hit_*() used
    hits_in_having: bool = False  # ... in HAVING: a row counts when it passes
    _add: Optional[Callable[[Groups, Message, int], None]] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.incremental:
            object.__setattr__(self, "_add", _adder(self.key_exprs, self.aggs))

    @property
    def incremental(self) -> bool:
        """Whether its window keeps groups of accumulators instead of rows."""
        window = self.window
        if self.needs_rows or len(self.key_exprs) != len(self.keys):
            return False
        return window.kind in ("tumbling", "hopping") or (
            window.kind == "count" and window.count == window.count_interval)

    def new_groups(self, limit: GroupLimit) -> Groups:
        """An empty incremental window (see :attr:`incremental`)."""
        assert self._add is not None, "not an incremental query"
        return Groups(self._add, self.aggs, limit)

    def triggers(self, msg: Message) -> bool:
        """Whether a row triggers a sliding window (every row, without OVER (WHEN ...))."""
        return self.trigger is None or self.trigger(msg.data, msg) is True

    def evaluate(self, emission: Emission, limit: Optional[GroupLimit] = None
                 ) -> list[tuple[Record, Message]]:
        """The output rows of one fired window, each with the context it was computed in.

        ``limit``: the groups a window may hold (row-based; an incremental window's
        :class:`Groups` applied it as rows came)."""
        start, end, rows = emission[:3]
        groups = emission.groups
        contexts: list[Message]
        if groups is not None:
            if groups.error is not None:
                raise groups.error
            # A group's time (event_time(), meta(timestamp)) is the window's end, as in eKuiper.
            contexts = [WindowContext(g.first, (), start, end, end, g.accs) for g in groups.ordered()]
        elif not rows:
            return []
        elif self.aggregated:
            contexts = [WindowContext(group[0], group, start, end, end)
                        for group in self._groups(rows, limit)]
        else:
            contexts = [WindowContext(row, (row,), start, end) for row in rows]
        hits = self.hits
        if self.having is not None:
            having = self.having
            if hits is not None and self.hits_in_having:
                kept = []
                for c in contexts:  # one at a time: a row that passes counts before the next
                    if having(c.data, c) is True:
                        c.hits = hits.hit(end)  # type: ignore[attr-defined]
                        kept.append(c)
                contexts = kept
            else:
                contexts = [c for c in contexts if having(c.data, c) is True]
        for key, descending in reversed(self.order):
            contexts.sort(key=lambda c: _sort_key(key(c.data, c)), reverse=descending)
        if self.limit is not None:
            contexts = contexts[:self.limit]
        if hits is not None and not self.hits_in_having:
            for c in contexts:
                c.hits = hits.hit(end)  # type: ignore[attr-defined]
        return [(self.project(c), c) for c in contexts]

    def _groups(self, rows: Sequence[Message], limit: Optional[GroupLimit]) -> list[list[Message]]:
        if not self.keys:
            return [list(rows)]
        groups: dict[Any, list[Message]] = {}
        key_of = _key_fn(self.keys)
        most = limit.max_groups if limit is not None else None
        for row in rows:
            key = key_of(row.data, row)
            group = groups.get(key)
            if group is None:
                if most is not None and len(groups) >= most:
                    assert limit is not None
                    limit.refuse()
                    continue
                group = groups[key] = []
            group.append(row)
        return list(groups.values())
