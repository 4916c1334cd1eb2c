"""Helpers for the client-mode suite: config writing, a callback recorder, bounded waits.

Imported explicitly by ``test_client_mode.py`` (not a pytest conftest, so it
does not leak into other test modules).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import common

CONF_KEY = "remote"
FAST_RECONNECT = {"initialDelay": 0.05, "maxDelay": 0.3, "maxRetries": 0}




def write_etc(tmp_path: Path, addr: str, **props: Any) -> str:
    """Write ``<tmp>/etc/sources/websocket.yaml`` with a client-mode conf key ``remote``.

    ``props`` are YAML prop names (``openMessages=[...]``, ``reconnect={...}``)
    overriding the test defaults (fast reconnect, short connect timeout).
    """
    conf: dict[str, Any] = {
        "addr": addr,
        "scheme": "ws",
        "connectTimeout": 2.0,
        "reconnect": dict(FAST_RECONNECT),
    }
    conf.update(props)
    return str(common.write_etc(tmp_path, {"default": {"addr": ""}, CONF_KEY: conf}))


def create_stream(rt: Any, name: str = "feed", datasource: str = "/feed", fmt: str = "json") -> None:
    """Declare a schemaless client-mode stream on the ``remote`` conf key."""
    rt.create_stream(
        f'CREATE STREAM {name} () WITH (DATASOURCE="{datasource}", FORMAT="{fmt}", '
        f'TYPE="websocket", CONF_KEY="{CONF_KEY}")'
    )


class Recorder:
    """Collects what a subscription's callbacks receive, with bounded waits."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.errors: list[Any] = []
        self.statuses: list[Any] = []
        self._cond = threading.Condition()

    # callbacks -----------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        self.messages.put(msg)

    def on_error(self, exc: Any) -> None:
        with self._cond:
            self.errors.append(exc)
            self._cond.notify_all()

    def on_status(self, status: Any) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    @property
    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for ``rt.subscribe(name, **rec.callbacks)``."""
        return {"on_message": self.on_message, "on_error": self.on_error, "on_status": self.on_status}

    # waits -------------------------------------------------------------
    def take(self, n: int, timeout: float = 5.0) -> list[Any]:
        """The next ``n`` messages; fails (with what arrived) if they do not come in time."""
        deadline = time.monotonic() + timeout
        got: list[Any] = []
        while len(got) < n:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"expected {n} messages, got {len(got)}: {[m.data for m in got]}; "
                    f"states={self.states()} errors={self.errors!r}"
                ) from None
        return got

    def assert_no_message(self, timeout: float = 0.2) -> None:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {msg.data!r}")

    def wait_status(
        self, predicate: Callable[[Any], bool] | str, timeout: float = 5.0, start: int = 0
    ) -> int:
        """Index of the first status at or after ``start`` matching ``predicate`` (or a state name)."""
        match: Callable[[Any], bool]
        if isinstance(predicate, str):
            state = predicate
            match = lambda status: bool(status.state == state)  # noqa: E731
        else:
            match = predicate
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(start, len(self.statuses)):
                    if match(self.statuses[index]):
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching status after #{start}; got {self.statuses!r}")
                self._cond.wait(remaining)

    def wait_error(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """The first error passed to ``on_error`` that matches ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for exc in self.errors:
                    if predicate(exc):
                        return exc
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching error; got {self.errors!r}")
                self._cond.wait(remaining)

    def states(self) -> list[str]:
        with self._cond:
            return [status.state for status in self.statuses]
