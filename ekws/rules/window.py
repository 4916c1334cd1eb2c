"""Windows on processing time: which rows a window holds and when it fires.

:class:`WindowState` is pure: it is told the time (``now``, ms since the
epoch) with every record and every timer call, and answers the windows that
fire as :class:`Emission` values; tests drive it with any clock they like.
:class:`WindowRunner` puts it on the clock: the rule's worker thread adds
records, one shared :class:`~ekws.rules.timers.Timers` thread (a heap of
deadlines, for every window of every rule in the process) fires the time
windows; the clock's part lives in :mod:`ekws.rules.timers`.

The windows follow eKuiper's ``internal/topo/node/window_op.go``:

- ``TUMBLINGWINDOW(unit, size)``: the first window ends at the next instant
  aligned to natural time (``getAlignedWindowEndTime``: for ``SS`` the next
  multiple of ``size`` seconds within the minute, for ``MS`` within the
  second, for ``MI`` within the hour, for ``HH`` within the day, for ``DD``
  ``size`` days after today's midnight; UTC here, eKuiper's local time), the
  next ones every ``size``; a window holds the rows that arrived before its end.
- ``HOPPINGWINDOW(unit, size, hop)``: aligned the same way, fires every
  ``hop`` with the rows of the last ``size``.
- ``SLIDINGWINDOW(unit, size[, delay]) [OVER (WHEN cond)]``: fires on every
  row (that meets ``cond``) with the rows of the ``size`` before it (and, with
  a delay, the ``delay`` after it).
- ``SESSIONWINDOW(unit, timeout, maxDuration)``: starts with a row; fires
  when no row came for ``timeout``, or at an aligned ``maxDuration`` tick once
  the session is that long.
- ``COUNTWINDOW(count[, interval])``: every ``interval`` rows (``count`` if
  not given), the last ``count`` rows, when there are that many.
- ``STATEWINDOW(begin[, emit]) [OVER (PARTITION BY ...)]``: see
  :meth:`WindowState._state_add`.

A window that fires with no rows emits nothing (eKuiper sends an empty list).

Given ``groups`` (a factory of :class:`~ekws.rules.grouping.Groups`, for a
query the grouping computes incrementally), a tumbling or hopping window, or
a count window whose interval is its count, keeps no rows: each row goes into
the groups of each window it belongs to, and the emission carries them.
``WindowSpec.capture`` is what a window keeps of a record taken: it, with the
values of the query's analytic calls (:mod:`ekws.rules.analytic_rows`).
"""

from __future__ import annotations

import heapq
import logging
import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

from ..message import Message
from .timers import TIMERS, Timers, aligned_end

__all__ = ["TIMERS", "UNITS", "Emission", "EventWindowRunner", "StateConditions", "Timers", "WindowRunner",
           "WindowSpec", "WindowState", "aligned_end"]

logger = logging.getLogger(__name__)

UNITS = {"DD": 86_400_000, "HH": 3_600_000, "MI": 60_000, "SS": 1000, "MS": 1}


@dataclass(frozen=True)
class WindowSpec:
    """A window of ``GROUP BY``; lengths in ms (``raw`` is the size as written, in ``unit``)."""

    kind: str  # "tumbling", "hopping", "sliding", "session", "count"
    unit: str = "SS"
    raw: int = 0
    length: int = 0  # size (tumbling, hopping, sliding), maxDuration (session)
    interval: int = 0  # hop (hopping), timeout (session)
    delay: int = 0  # sliding
    count: int = 0  # count window: rows per window
    count_interval: int = 0  # count window: rows between windows
    capture: Optional[Callable[[Message], Message]] = field(default=None, compare=False, repr=False)


class StateConditions(NamedTuple):
    """``STATEWINDOW(begin[, emit]) [OVER (PARTITION BY ...)]``, compiled."""

    begin: Callable[[Message], bool]
    emit: Optional[Callable[[Message], bool]]  # None: the single-condition form
    partition: Optional[Callable[[Message], Any]]


class Emission(NamedTuple):
    start: int  # ms
    end: int  # ms
    rows: list[Message]
    groups: Any = None  # incremental: the window's Groups (and no rows)

    @property
    def peer(self) -> Optional[Any]:
        """A row's peer (who to name in an error record)."""
        if self.rows:
            return self.rows[0].peer
        first = getattr(self.groups, "first", None)
        return None if first is None else first.peer


class WindowState:
    """The rows a window holds and its deadlines; every method is told the time."""

    def __init__(self, spec: WindowSpec, now: int, max_rows: int = 100_000,
                 trigger: Optional[Callable[[Message], bool]] = None,
                 state: Optional[StateConditions] = None,
                 groups: Optional[Callable[[], Any]] = None) -> None:
        self.spec = spec
        incremental = groups is not None and (spec.kind in ("tumbling", "hopping") or (
            spec.kind == "count" and spec.count == spec.count_interval))
        self._new_groups = groups if incremental else None
        self._buckets: dict[int, Any] = {}  # incremental: window end (count: 0) -> its Groups
        self._current: Any = None  # incremental tumbling: the groups of the window ending at _next
        self.conditions = state  # STATEWINDOW: its conditions; rows per partition below
        self._parts: dict[Any, tuple[int, list[Message]]] = {}  # partition -> (start, rows) while open
        self._held = 0
        self.trigger = trigger  # sliding: whether a row fires the window (OVER (WHEN ...))
        self.max_rows = max_rows
        self.dropped = 0  # rows refused over max_rows
        self.rows: list[tuple[int, Message]] = []
        self._count = 0
        self._last_trigger = 0
        self._next: Optional[int] = None  # the next tick (tumbling, hopping, session ticks)
        self._timeout: Optional[int] = None  # session timeout
        self._delayed: list[int] = []  # sliding window with a delay: heap of fire times
        if spec.kind in ("tumbling", "hopping", "session"):
            self._next = aligned_end(now, spec.raw, spec.unit)

    def deadline(self) -> Optional[int]:
        """The earliest time ``fire`` has something to do, or None."""
        times = [t for t in (self._next, self._timeout) if t is not None]
        if self._delayed:
            times.append(self._delayed[0])
        return min(times) if times else None

    def add(self, msg: Message, now: int) -> list[Emission]:
        spec = self.spec
        if self._new_groups is not None:
            return self._aggregate(msg, now)
        if spec.kind == "state":
            return self._state_add(msg, now)
        if len(self.rows) >= self.max_rows:
            if not self.dropped:
                logger.warning("a %s window holds %d rows, its limit: further rows are dropped "
                               "(and counted) until it fires", spec.kind, self.max_rows)
            self.dropped += 1
            return []
        if self.rows and now < self.rows[-1][0]:  # event time, out of order within the tolerance
            self.rows.insert(bisect_right([t for t, _ in self.rows], now), (now, msg))
        else:
            self.rows.append((now, msg))
        if spec.kind == "sliding":
            if self.trigger is not None and not self.trigger(msg):
                horizon = now - spec.length - spec.delay
                if self._delayed:
                    horizon = min(horizon, self._delayed[0] - spec.delay - spec.length)
                self.rows = [(t, m) for t, m in self.rows if t > horizon]
                return []
            if spec.delay:
                heapq.heappush(self._delayed, now + spec.delay)
                return []
            return self._slide(now, now)
        if spec.kind == "session":
            out: list[Emission] = []
            if self._timeout is not None and now > self._timeout:
                # Event time: the session timed out before this record (no watermark passed it yet).
                out = self._emit(self._last_trigger, self._timeout, self._before(self._timeout))
                self._timeout = None
            if self._timeout is None:
                self._last_trigger = now
            self._timeout = now + spec.interval
            return out
        if spec.kind == "count":
            self._count += 1
            if self._count % spec.count_interval:
                return []
            self._count = 0
            if len(self.rows) < spec.count:
                return []
            window = [m for _, m in self.rows[-spec.count:]]
            self.rows = self.rows[len(self.rows) - spec.count + 1:] if spec.count > 1 else []
            return [Emission(now, now, window)]
        return []

    def fire(self, now: int) -> list[Emission]:
        """Every window due at ``now`` or before, in order."""
        out: list[Emission] = []
        spec = self.spec
        while self._delayed and self._delayed[0] <= now:
            at = heapq.heappop(self._delayed)
            out.extend(self._slide(at - spec.delay, at))
        while True:
            due = [t for t in (self._next, self._timeout) if t is not None and t <= now]
            if not due:
                return out
            at = min(due)
            if at == self._timeout:
                self._timeout = None
                out.extend(self._emit(self._last_trigger, at, len(self.rows)))
                self._last_trigger = at
                continue
            assert self._next is not None
            if spec.kind == "tumbling":
                self._next = at + spec.length
                start = self._last_trigger or at - spec.length
                if self._new_groups is not None:
                    self._current = None
                    groups = self._buckets.pop(at, None)
                    if groups is not None and (len(groups) or groups.error is not None):
                        out.append(Emission(start, at, [], groups))
                else:
                    out.extend(self._emit(start, at, self._before(at)))
                self._last_trigger = at
            elif spec.kind == "hopping":
                self._next = at + spec.interval
                if self._new_groups is not None:
                    groups = self._buckets.pop(at, None)
                    if groups is not None and (len(groups) or groups.error is not None):
                        out.append(Emission(at - spec.length, at, [], groups))
                    continue
                left = at - spec.length
                self.rows = [(t, m) for t, m in self.rows if t >= left]
                out.extend(self._emit(left, at, self._before(at), keep=True))
                # Rows no later window can hold are gone at the next tick.
            else:  # session: a maxDuration tick
                self._next = at + spec.length
                if self.rows and at - self.rows[0][0] >= spec.length:
                    out.extend(self._emit(self._last_trigger, at, self._before(at)))
                    self._last_trigger = at  # the session goes on: its timeout still runs

    def _aggregate(self, msg: Message, now: int) -> list[Emission]:
        """Incremental: the row goes into its window's groups (no row is kept)."""
        spec = self.spec
        assert self._new_groups is not None
        if spec.kind == "count":
            groups = self._buckets.get(0)
            if groups is None:
                groups = self._buckets[0] = self._new_groups()
            groups.add(msg, now)
            self._count += 1
            if self._count < spec.count:
                return []
            self._count = 0
            del self._buckets[0]
            return [Emission(now, now, [], groups)] if len(groups) or groups.error is not None else []
        nxt = self._next
        assert nxt is not None
        if spec.kind == "hopping":
            # Every window that holds it: those ending in (now, now + size], on the hop's ticks.
            end = nxt if now < nxt else nxt + spec.interval * ((now - nxt) // spec.interval + 1)
            while end <= now + spec.length:
                groups = self._buckets.get(end)
                if groups is None:
                    groups = self._buckets[end] = self._new_groups()
                groups.add(msg, now)
                end += spec.interval
            return []
        # The window it belongs to: the next to fire, or (a late timer, or event time ahead of
        # the watermark) a later one.
        end = nxt if now < nxt else nxt + spec.length * ((now - nxt) // spec.length + 1)
        groups = self._buckets.get(end)
        if groups is None:
            groups = self._buckets[end] = self._new_groups()
        if end == nxt:
            self._current = groups
        groups.add(msg, now)
        return []

    def aggregate_now(self, msg: Message, now: int) -> bool:
        """The hot path of an incremental tumbling window on processing time: the row into the
        next window's groups; False if it is not that simple (call :meth:`add`)."""
        groups = self._current
        if groups is None or now >= self._next:  # type: ignore[operator]  # _next is set: tumbling
            return False
        groups.add(msg, now)
        return True

    @property
    def incremental(self) -> bool:
        """Whether it keeps groups of accumulators, not rows."""
        return self._new_groups is not None

    @property
    def held(self) -> int:
        """Rows held (row-based) or groups held (incremental): what the window's memory is."""
        if self._new_groups is not None:
            return sum(len(g) for g in list(self._buckets.values()))  # read from another thread
        return len(self.rows) + self._held

    def _state_add(self, msg: Message, now: int) -> list[Emission]:
        """eKuiper's StateWindowOp (window_v2_op.go): a partition opens on ``begin`` and sends
        on ``emit`` (that row included); with one condition, each row meeting it sends the
        rows so far and opens the next window with itself."""
        cond = self.conditions
        assert cond is not None
        key = cond.partition(msg) if cond.partition is not None else None
        part = self._parts.get(key)
        if self._held >= self.max_rows:
            if not self.dropped:
                logger.warning("a state window holds %d rows, its limit: further rows are dropped "
                               "(and counted)", self.max_rows)
            self.dropped += 1
            return []
        if part is None:
            if cond.begin(msg):
                self._parts[key] = (now, [msg])
                self._held += 1
            return []
        start, rows = part
        if cond.emit is not None:
            rows.append(msg)
            self._held += 1
            if not cond.emit(msg):
                return []
            del self._parts[key]
            self._held -= len(rows)
            return [Emission(start, now, rows)]
        if not cond.begin(msg):
            rows.append(msg)
            self._held += 1
            return []
        self._parts[key] = (now, [msg])
        self._held += 1 - len(rows)
        return [Emission(start, now, rows)]

    def _before(self, at: int) -> int:
        return next((i for i, (t, _) in enumerate(self.rows) if t >= at), len(self.rows))

    def _emit(self, start: int, end: int, split: int, keep: bool = False) -> list[Emission]:
        window = [m for _, m in self.rows[:split]]
        if not keep:
            self.rows = self.rows[split:]
        return [Emission(start, end, window)] if window else []

    def _slide(self, at: int, end: int) -> list[Emission]:
        spec = self.spec
        left = at - spec.length
        window = [m for t, m in self.rows if left < t <= end]
        horizon = (min(self._delayed) - spec.delay if self._delayed else end) - spec.length
        self.rows = [(t, m) for t, m in self.rows if t > min(horizon, left)]
        return [Emission(left, end, window)] if window else []


class WindowRunner:
    """A :class:`WindowState` on the clock: rows from the worker, ticks from :data:`TIMERS`.

    ``emit`` gets each emission, under the runner's lock (so one at a time, in order).
    """

    def __init__(self, spec: WindowSpec, emit: Callable[[Emission], None], *,
                 timers: Optional[Timers] = None, max_rows: int = 100_000,
                 trigger: Optional[Callable[[Message], bool]] = None,
                 state: Optional[StateConditions] = None,
                 groups: Optional[Callable[[], Any]] = None) -> None:
        self._timers = timers or TIMERS
        self._clock = self._timers.clock
        self._emit = emit
        self._lock = threading.Lock()
        self._handle: Optional[int] = None
        self._scheduled: Optional[int] = None
        self._stopped = False
        self.records_in = 0
        self.late = 0  # processing time: no record is late
        self._moves = spec.kind in ("session", "sliding")  # whether a row moves the next deadline
        self._fast = groups is not None and spec.kind == "tumbling"
        self._capture = spec.capture
        self.state = WindowState(spec, self._now(), max_rows, trigger, state, groups)
        with self._lock:
            self._reschedule()

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def add(self, msg: Message) -> None:
        if self._capture is not None:
            msg = self._capture(msg)
        with self._lock:
            if self._stopped:
                return
            self.records_in += 1
            now = int(self._clock() * 1000)
            if self._fast and self.state.aggregate_now(msg, now):
                return
            emissions = self.state.add(msg, now)
            if emissions:
                self._send(emissions)
            if self._moves:
                self._reschedule()

    def observe(self, msg: Message) -> None:
        """A record the WHERE dropped: nothing to do on processing time."""

    def stop(self) -> None:
        """Nothing fires after this returns; what the window held is dropped."""
        with self._lock:
            self._stopped = True
            if self._handle is not None:
                self._timers.cancel(self._handle)
            self._handle = self._scheduled = None

    def _tick(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._handle = self._scheduled = None
            self._send(self.state.fire(self._now()))
            self._reschedule()

    def _send(self, emissions: Sequence[Emission]) -> None:
        for emission in emissions:
            try:
                self._emit(emission)
            except Exception:  # pragma: no cover - the rule counts its own failures
                logger.exception("a window emission failed")

    def _reschedule(self) -> None:
        deadline = self.state.deadline()
        if deadline == self._scheduled:
            return
        if self._handle is not None:
            self._timers.cancel(self._handle)
        self._scheduled = deadline
        self._handle = None if deadline is None else self._timers.schedule(deadline / 1000, self._tick)


class EventWindowRunner:
    """A :class:`WindowState` on event time (rule option ``isEventTime``): the clock is the
    records' own ``Message.timestamp`` (the stream's ``TIMESTAMP`` field).

    The watermark is the greatest timestamp seen less ``late_tolerance`` (ms); a
    window fires when the watermark passes its end, so it needs a later record,
    as eKuiper's without an idle timeout. A record older than the watermark is
    late: counted (``late``), logged once, and dropped. No timer runs.
    """

    def __init__(self, spec: WindowSpec, emit: Callable[[Emission], None], *, late_tolerance: int = 0,
                 max_rows: int = 100_000, trigger: Optional[Callable[[Message], bool]] = None,
                 state: Optional[StateConditions] = None,
                 groups: Optional[Callable[[], Any]] = None) -> None:
        self._spec = spec
        self._groups = groups
        self._conditions = state
        self._emit = emit
        self._tolerance = late_tolerance
        self._max_rows = max_rows
        self._trigger = trigger
        self._lock = threading.Lock()
        self._stopped = False
        self._state: Optional[WindowState] = None
        self.watermark: Optional[int] = None
        self.records_in = 0
        self.late = 0

    @property
    def state(self) -> WindowState:
        return self._state or WindowState(self._spec, 0, self._max_rows)

    def add(self, msg: Message) -> None:
        """A record for the window."""
        self._see(msg if self._spec.capture is None else self._spec.capture(msg), True)

    def observe(self, msg: Message) -> None:
        """A record the WHERE dropped: it still moves the watermark (and may be late)."""
        self._see(msg, False)

    def _see(self, msg: Message, take: bool) -> None:
        with self._lock:
            if self._stopped:
                return
            at = msg.timestamp
            if self.watermark is not None and at < self.watermark:
                if not self.late:
                    logger.warning("a record at %d is later than the watermark %d (lateTolerance %d ms): "
                                   "late records are counted and dropped",
                                   at, self.watermark, self._tolerance)
                self.late += 1
                return
            state = self._state
            if state is None:
                state = self._state = WindowState(self._spec, at, self._max_rows, self._trigger,
                                                  self._conditions, self._groups)
                state._last_trigger = at  # eKuiper: the first window starts at the first record
            emissions = []
            if take:
                self.records_in += 1
                emissions += state.add(msg, at)
            mark = at - self._tolerance
            if self.watermark is None or mark > self.watermark:
                self.watermark = mark
                emissions += state.fire(mark)
            for emission in emissions:
                try:
                    self._emit(emission)
                except Exception:  # pragma: no cover - the rule counts its own failures
                    logger.exception("a window emission failed")

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
