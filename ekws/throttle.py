"""Rate-limited reports of a repeating failure: the first in full, then counts.

A peer sending bad JSON forever, or a callback that raises on every message,
must not write megabytes of log. A :class:`Throttle` decides, per failure,
whether to report it in full (the first one, or the first after a quiet
``interval``), to count it silently, or to report a one-line summary of what
it counted, at most once per ``interval``. :meth:`Throttle.flush` hands over
the count still pending when the reporter closes, so no failure goes unsaid.

Pure bookkeeping: the caller decides where a report goes (log, stderr).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

INTERVAL = 10.0  # seconds between summaries


class Verdict(NamedTuple):
    """What to report for one failure.

    ``full``: report this failure in full (traceback and all).
    ``summary``: when above 0, report one line saying this many failures
    (this one included) happened since the last report; ``last`` describes
    the newest of them.
    """

    full: bool
    summary: int
    last: str


_QUIET = Verdict(False, 0, "")


class Throttle:
    """Counts failures and says when to report them (thread-safe)."""

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._quiet_until: float | None = None  # end of the window after the last report
        self._pending = 0  # failures counted, not reported, since the last report
        self._last = ""

    def hit(self, description: str) -> Verdict:
        """Record one failure (``description``: a one-line summary of it)."""
        now = self._clock()
        with self._lock:
            if self._quiet_until is not None and now < self._quiet_until:
                self._pending += 1
                self._last = description
                return _QUIET
            self._quiet_until = now + self.interval
            if self._pending:
                count, self._pending = self._pending + 1, 0
                return Verdict(False, count, description)
            return Verdict(True, 0, description)

    def flush(self) -> Verdict:
        """The failures counted but not reported yet (``summary`` 0: none)."""
        with self._lock:
            count, self._pending = self._pending, 0
            return Verdict(False, count, self._last) if count else _QUIET
