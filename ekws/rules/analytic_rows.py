"""Analytic functions (``lag latest changed_col had_changed acc_*``) in a window query.

eKuiper evaluates them before the window, on every record (its planner puts the
``AnalyticFuncsOp`` between the source and the window, see
``internal/topo/planner/planner.go``), and caches each call's value on the row
(``$$a_lag_1``...): the projection, the aggregates, ``HAVING`` and ``ORDER BY``
of the fired window then read the value the call had for that row, not the
latest one. Here the rule's query updates the calls first (as for a per-record
query, :func:`~ekws.rules.sql_query.analytics_first`); the window's
``capture`` (:func:`capture`) wraps the record it takes in an
:class:`AnalyticRow` holding those values; a call's expression
(:func:`reader`) reads them from the row it is evaluated on, and the current
value on a record that is not in a window (the ``WHERE``, a per-record query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..message import Message
from .expr import Fn, Record
from .functions import analytic

__all__ = ["AnalyticRow", "capture", "reader"]


class AnalyticRow(Message):
    """A record a window holds, with the value each analytic call had for it."""

    __slots__ = ("analytic",)

    def __init__(self, msg: Message, values: dict[int, Any]) -> None:
        super().__init__(msg.data, msg.peer, msg.timestamp)
        self.analytic = values  # id(call) -> its value for this record


def reader(node: analytic.Analytic) -> Fn:
    """The expression of one analytic call: its value for the row evaluated (in a window),
    else its current value."""
    key = id(node)

    def read(d: Record, m: Message) -> Any:
        values: Optional[dict[int, Any]] = getattr(m, "analytic", None)
        return node.value if values is None else values.get(key)
    return read


def capture(stateful: Sequence[analytic.Stateful]) -> Optional[Callable[[Message], Message]]:
    """What a window does with a record it takes: keep the analytic calls' values with it
    (None when the query has none). Called right after the query ran on that record."""
    nodes = tuple(node for node in stateful if isinstance(node, analytic.Analytic))
    if not nodes:
        return None

    def take(m: Message) -> Message:
        return AnalyticRow(m, {id(node): node.value for node in nodes})
    return take
