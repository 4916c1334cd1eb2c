"""A rule's query in a device script: ``Runtime.query(sql, on_result)``, no service, no actions.

The same engine a rule runs (:mod:`ekws.rules.sql`, :mod:`ekws.rules.window`,
:mod:`ekws.rules.grouping`), fed by a plain subscription of the SQL's stream
and answering through a callback: each output row is a :class:`Result` (a
:class:`~ekws.Message` whose ``data`` is the row). A window's rows carry its
bounds in ``meta`` (``window_start``, ``window_end``: ms since the epoch) and
have the window's end as their ``timestamp``; a query without a window
answers once per record the WHERE lets through, at the record's time.

Threads: a record's result is delivered on the subscription's worker thread;
a time window's on the runtime's window timer thread (one for every window in
the process, see :class:`~ekws.rules.window.Timers`). One query's callbacks
never run at the same time (the window runner holds its lock while it emits).

Errors, as a subscription reports them: an expression failing on a record or a
window (an :class:`~ekws.rules.expr.EvalError`) and a raising ``on_result``
(a :class:`~ekws.CallbackError` whose ``__cause__`` is the exception, with
``callback="on_result"``) go to ``on_error``, or to this module's logger at
ERROR without one (rate-limited: the first in full, then a count every 10 s).
Closing drops what an open window holds, as a stopped rule does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from ..errors import CallbackError, EkwsError
from ..message import Message, Peer
from ..throttle import Throttle
from .expr import EvalError
from .grouping import GroupLimit
from .sql import parse_query
from .window import Emission, EventWindowRunner, Timers, WindowRunner

if TYPE_CHECKING:  # pragma: no cover
    from ..subscription import Subscription

__all__ = ["ContinuousQuery", "Result"]

logger = logging.getLogger(__name__)

OnResult = Callable[[Message], Any]
OnError = Callable[[EkwsError], Any]


class Subscriber(Protocol):
    """What a query needs of :class:`ekws.Runtime` (which makes it): a Protocol, so the engine
    does not import the runtime, and ``Runtime.query``'s lazy import makes no cycle."""

    def subscribe(self, name: str, on_message: Callable[[Message], Any],
                  on_error: Optional[Callable[[EkwsError], Any]] = None,
                  on_status: Optional[Callable[[Any], Any]] = None, *,
                  buffer_length: Optional[int] = None, overflow: Optional[str] = None,
                  delivery: Optional[str] = None) -> Subscription: ...


class Result(Message):
    """One output row of a query; ``meta`` adds the window's bounds (None without a window)."""

    __slots__ = ("window_start", "window_end")

    def __init__(self, data: dict[str, Any], peer: Peer, timestamp: int,
                 window_start: Optional[int] = None, window_end: Optional[int] = None) -> None:
        super().__init__(data, peer, timestamp)
        self.window_start = window_start
        self.window_end = window_end

    @property
    def meta(self) -> dict[str, Any]:
        meta = Message.meta.fget(self)  # type: ignore[attr-defined]
        meta["window_start"] = self.window_start
        meta["window_end"] = self.window_end
        return meta  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Result(data={self.data!r}, meta={self.meta!r})"


class ContinuousQuery:
    """A running query (see the module docstring); a context manager, ``close`` is idempotent.

    Made by :meth:`ekws.Runtime.query`, which documents the arguments.
    """

    def __init__(self, runtime: Subscriber, sql: str, on_result: OnResult, on_error: Optional[OnError] = None,
                 *, is_event_time: bool = False, late_tolerance: int = 0, max_window_rows: int = 100_000,
                 max_window_groups: int = 10_000, buffer_length: Optional[int] = None,
                 overflow: Optional[str] = None, timers: Optional[Timers] = None) -> None:
        self.query = query = parse_query(sql)
        self.sql = sql
        self._on_result = on_result
        self._on_error = on_error
        self._lock = threading.Lock()
        self._closed = False
        self.records_in = 0  # records the subscription delivered
        self.results = 0  # rows handed to on_result
        self.errors = 0  # expression and callback failures
        self.group_limit = GroupLimit(max_window_groups)
        self._window: Optional[Union[WindowRunner, EventWindowRunner]] = None
        self._throttle = Throttle()
        grouping = query.grouping
        if grouping is not None:
            trigger = grouping.triggers if grouping.trigger else None
            limit = self.group_limit
            groups = (lambda: grouping.new_groups(limit)) if grouping.incremental else None
            if is_event_time:
                self._window = EventWindowRunner(grouping.window, self._on_window,
                                                 late_tolerance=late_tolerance, max_rows=max_window_rows,
                                                 trigger=trigger, state=grouping.state, groups=groups)
            else:
                self._window = WindowRunner(grouping.window, self._on_window, timers=timers,
                                            max_rows=max_window_rows, trigger=trigger,
                                            state=grouping.state, groups=groups)
        try:
            self._sub: Subscription = runtime.subscribe(query.stream, self._on_message, self._report,
                                                        buffer_length=buffer_length, overflow=overflow)
        except BaseException:
            self._stop_window()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def late(self) -> int:
        """Event time: records later than the watermark, dropped."""
        return self._window.late if self._window is not None else 0

    @property
    def dropped(self) -> int:
        """Rows a window dropped over its row limit or its group limit."""
        rows = self._window.state.dropped if self._window is not None else 0
        return rows + self.group_limit.dropped

    def close(self) -> None:
        """Stop: no callback starts after this returns; what a window holds is dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sub.close()
        self._stop_window()

    def __enter__(self) -> ContinuousQuery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the worker thread, and the timer thread for time windows -------------------

    def _stop_window(self) -> None:
        if self._window is not None:
            self._window.stop()

    def _on_message(self, msg: Message) -> None:
        self.records_in += 1
        try:
            record = self.query.run(msg)
        except Exception as exc:
            self._failed(_eval_error(exc))
            return
        window = self._window
        if window is not None:
            if record is None:
                window.observe(msg)
            else:
                window.add(msg)
            return
        if isinstance(record, list):  # unnest()/extract(): one record became several rows
            for row in record:
                self._deliver(Result(row, msg.peer, msg.timestamp))
        elif record is not None:
            self._deliver(Result(record if record is not msg.data else dict(record), msg.peer, msg.timestamp))

    def _on_window(self, emission: Emission) -> None:
        grouping = self.query.grouping
        assert grouping is not None
        try:
            rows = grouping.evaluate(emission, self.group_limit)
        except Exception as exc:
            self._failed(_eval_error(exc))
            return
        for record, context in rows:
            self._deliver(Result(record, context.peer, emission.end, emission.start, emission.end))

    def _deliver(self, result: Result) -> None:
        if self._closed:
            return
        self.results += 1
        try:
            self._on_result(result)
        except Exception as exc:
            error = CallbackError(f"on_result raised {type(exc).__name__}: {exc}", callback="on_result",
                                  item=result)
            error.__cause__ = exc
            self._failed(error)

    def _failed(self, exc: EkwsError) -> None:
        self.errors += 1
        self._report(exc)

    def _report(self, exc: EkwsError) -> None:
        if self._on_error is None:
            verdict = self._throttle.hit(str(exc))
            if verdict.full:
                logger.error("query %r: %s", self.sql[:80], exc, exc_info=exc.__cause__)
            elif verdict.summary:
                logger.error("query %r: %d failures, the last: %s", self.sql[:80], verdict.summary,
                             verdict.last)
            return
        try:
            self._on_error(exc)
        except Exception:
            logger.exception("query %r: on_error raised", self.sql[:80])


def _eval_error(exc: Exception) -> EkwsError:
    if isinstance(exc, EkwsError):
        return exc
    error = EvalError(f"{type(exc).__name__}: {exc}")  # a record of a shape the SQL did not expect
    error.__cause__ = exc
    return error
