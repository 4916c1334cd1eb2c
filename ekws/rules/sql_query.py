"""A compiled rule query (:class:`Query`) and the field references it records (:class:`FieldRef`).

What :func:`ekws.rules.sql.parse_query` returns; see that module for the language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, cast

from ..message import Message
from .expr import Fn, Record, unnest_rows
from .functions import analytic
from .grouping import Grouping


class FieldRef(NamedTuple):
    """A field the SQL reads: its path (names, and integer indexes) and 1-based position."""

    path: tuple[Any, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Query:
    """A compiled rule query.

    ``run`` is what a rule calls: it updates the analytic functions (``lag`` ...)
    first, then filters and projects. ``matches`` and ``project`` only read the
    analytic values ``run`` left. They are closures built once; they raise
    :class:`EvalError` (or, for a record of unexpected shape, another
    exception the caller counts) for one record, never for the rule.
    """

    sql: str
    stream: str
    alias: Optional[str]
    select_all: bool
    fields: tuple[str, ...]  # output keys of the select items, in order
    has_where: bool
    condition: Optional[Fn]  # the WHERE closure over (record, message); a record passes on ``is True``
    projector: Optional[Callable[[Message], Record]]  # None for ``SELECT *`` alone
    # The WHERE and the projection as one function: the output record, or None when
    # the WHERE drops the message (``SELECT *``: the message's own record).
    run: Callable[[Message], Optional[Record]]
    references: tuple[FieldRef, ...] = ()  # every field read, in the order written (not meta())
    # lag(), acc_sum() ... and changed_cols(): state, updated by run()
    analytics: tuple[analytic.Stateful, ...] = ()
    # GROUP BY a window: the window, groups, HAVING, ORDER BY and LIMIT (``run`` is then
    # the WHERE alone: the record, or None); None for a per-record query.
    grouping: Optional[Grouping] = None

    def reset(self) -> None:
        """Empty the analytic functions' state (a rule starting again starts from nothing)."""
        for node in self.analytics:
            node.reset()
        if self.grouping is not None and self.grouping.hits is not None:
            self.grouping.hits.reset()  # last_agg_hit_count() starts from 0 again

    def matches(self, msg: Message) -> bool:
        """True when the record passes the WHERE clause (always, without one)."""
        return True if self.condition is None else self.condition(msg.data, msg) is True

    def project(self, msg: Message) -> dict[str, Any]:
        """The output record; ``SELECT *`` alone returns ``msg.data`` itself."""
        return msg.data if self.projector is None else self.projector(msg)


def unnested(projector: Optional[Callable[[Message], Record]], run: Callable[[Message], Optional[Record]],
              key: str, name: str
              ) -> tuple[Callable[[Message], Record], Callable[[Message], Optional[Record]]]:
    """The query with its ``unnest`` item expanded: each record gives :class:`~ekws.rules.expr.Rows`
    (typed as a record: a rule tells them apart by ``type(out) is Rows``)."""
    project = projector if projector is not None else (lambda m: m.data)

    def project_rows(m: Message) -> Record:
        return cast(Record, unnest_rows(project(m), key, name))

    def run_rows(m: Message) -> Optional[Record]:
        record = run(m)
        return None if record is None else cast(Record, unnest_rows(record, key, name))
    return project_rows, run_rows


def counting_hits(hits: analytic.Hits, run: Callable[[Message], Optional[Record]]
                   ) -> Callable[[Message], Optional[Record]]:
    """A record that passed the WHERE moves ``last_hit_count()`` and ``last_hit_time()`` on."""
    def run_counted(m: Message) -> Optional[Record]:
        record = run(m)
        if record is not None:
            hits.hit(m.timestamp)
        return record
    return run_counted


def analytics_first(stateful: tuple[analytic.Stateful, ...], run: Callable[[Message], Optional[Record]]
                     ) -> Callable[[Message], Optional[Record]]:
    """eKuiper evaluates analytic functions first, on every record, WHERE or not
    (``changed_cols`` is left to the projection)."""
    nodes = tuple(node for node in stateful if node.first)
    if not nodes:
        return run

    def run_analytics(m: Message) -> Optional[Record]:
        d = m.data
        for node in nodes:
            node.update(d, m)
        return run(m)
    return run_analytics
