"""A rule's node (source, filter, window, project, each action): its failures and its metrics.

Split from :mod:`ekws.rules.rule`, which re-exports :data:`LOG_INTERVAL`. A node logs as
the rule does (the ``ekws.rules.rule`` logger), so a log filter set for rules still applies.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

__all__ = ["LOG_INTERVAL", "Node", "ms"]

logger = logging.getLogger("ekws.rules.rule")

LOG_INTERVAL = 10.0  # seconds between summaries of repeated failures


class Node:
    """One node's failures; its record counts are derived (see ``Rule.status``).

    Written by the rule's worker thread only.
    """

    __slots__ = ("name", "exceptions", "omitted", "last_exception", "last_exception_time",
                 "_log_time", "_suppressed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.omitted = 0  # records skipped by omitIfEmpty
        self.exceptions = 0
        self.last_exception: Optional[str] = None
        self.last_exception_time: Optional[float] = None
        self._log_time = 0.0
        self._suppressed = 0

    def failed(self, rule_id: str, exc: BaseException, *, trace: bool = True) -> None:
        """Count and log, rate-limited: the first traceback, then one summary per LOG_INTERVAL."""
        self.exceptions += 1
        self.last_exception = f"{type(exc).__name__}: {exc}" if trace else str(exc)
        now = time.time()
        self.last_exception_time = now
        if self.exceptions == 1:
            logger.error("rule %s, %s: %s", rule_id, self.name, self.last_exception,
                         exc_info=exc if trace else None)
            self._log_time = now
        elif now - self._log_time >= LOG_INTERVAL:
            logger.error("rule %s, %s: %d more failures, the last: %s", rule_id, self.name,
                         self._suppressed + 1, self.last_exception)
            self._log_time, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def metrics(self, prefix: str, records_in: int, records_out: int) -> dict[str, Any]:
        return {
            f"{prefix}_records_in_total": records_in,
            f"{prefix}_records_out_total": records_out,
            f"{prefix}_exceptions_total": self.exceptions,
            f"{prefix}_last_exception": self.last_exception or "",
            f"{prefix}_last_exception_time": ms(self.last_exception_time),
        }


def ms(seconds: Optional[float]) -> int:
    return 0 if seconds is None else int(seconds * 1000)
