"""The clock of the windows: eKuiper's natural-time alignment of a window's first end
(:func:`aligned_end`) and the one timer thread of the process (:class:`Timers`, a heap of
deadlines shared by every window of every rule; :data:`TIMERS`). Tests give a
:class:`Timers` their own clock, so window tests are deterministic and sleep-free.

Part of the windows, :mod:`ekws.rules.window`, which re-exports these names.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Optional

__all__ = ["TIMERS", "Timers", "aligned_end"]

logger = logging.getLogger(__name__)


def aligned_end(now_ms: int, raw: int, unit: str) -> int:
    """eKuiper's ``getAlignedWindowEndTime`` (in UTC): the end of the first window."""
    n = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    day = n.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "DD":
        end = day + timedelta(days=raw)
    elif unit == "HH":
        end = day + timedelta(hours=_gap(n.hour, raw))
    elif unit == "MI":
        end = n.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=_gap(n.minute, raw))
    elif unit == "SS":
        end = n.replace(second=0, microsecond=0) + timedelta(seconds=_gap(n.second, raw))
    else:
        milli = n.microsecond // 1000
        end = n.replace(microsecond=0) + timedelta(milliseconds=_gap(milli, raw))
    return int(round(end.timestamp() * 1000))


def _gap(part: int, raw: int) -> int:
    return raw * (part // raw + 1) if part > raw else raw


class Timers:
    """One thread and a heap of deadlines for every window in the process.

    The thread starts with the first deadline and ends when none is left; a
    cancelled deadline is skipped when it comes up.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def schedule(self, at: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` in the timer thread at ``at`` (seconds, this clock); its handle."""
        with self._cond:
            handle = next(self._ids)
            heapq.heappush(self._heap, (at, handle, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ekws-window-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            if any(h == handle for _, h, _ in self._heap):
                self._cancelled.add(handle)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) - len(self._cancelled)

    def _run(self) -> None:
        # Daemon: it only waits for deadlines; a window that has not fired has nothing to flush.
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][1] in self._cancelled:
                        self._cancelled.discard(heapq.heappop(self._heap)[1])
                    if not self._heap:
                        self._thread = None
                        return
                    wait = self._heap[0][0] - self.clock()
                    if wait <= 0:
                        _, _, callback = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            try:
                callback()
            except Exception:  # pragma: no cover - the runner catches its own failures
                logger.exception("a window timer failed")


TIMERS = Timers()
