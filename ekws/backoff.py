"""Reconnection policy: a jittered, capped exponential backoff and a classifier.

Pure functions, tested without sockets (model: ``websockets.client.backoff``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from .errors import ConfigError, EkwsError


def backoff(initial: float = 0.1, maximum: float = 10.0, factor: float = 2.0,
            rng: Callable[[], float] = random.random) -> Iterator[float]:
    """Yield delays: ``initial`` doubling up to ``maximum``, each jittered.

    Each delay is drawn from ``[d/2, d]`` so that many clients cut off at the
    same moment do not all dial again at the same moment.
    """
    delay = min(max(initial, 0.0), maximum)
    while True:
        yield delay * (0.5 + 0.5 * rng())
        delay = min(delay * factor, maximum) if delay else maximum


def should_retry(exc: BaseException | None, failures: int, max_retries: int) -> bool:
    """Say whether a source should dial again after ``failures`` failed tries in a row.

    ``max_retries`` 0 means forever. A configuration error cannot mend itself
    by waiting, so it is never retried.
    """
    if isinstance(exc, ConfigError):
        return False
    if max_retries and failures >= max_retries:
        return False
    return exc is None or isinstance(exc, (EkwsError, OSError))
