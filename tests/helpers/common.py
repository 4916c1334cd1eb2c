"""The few helpers every kind of test needs: one wait, one etc writer, ports.

Ports: a server under test binds port 0 and says which port it got. The two
cases that need a number first are served here too: :func:`refused_port`
(a port held bound, not listening, for the test's length: dials are
refused and no other process can take it) and :func:`free_port`, for a
peer that must be configured with a port before it starts (Mosquitto, a
subprocess, a server restarted on the same port); its close-then-reuse can
race, so use it only there.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout``; for metrics and files, which have no event."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def write_etc(base: Path, sources: dict[str, Any] | str, service: str | None = None) -> Path:
    """Write ``<base>/etc/sources/websocket.yaml`` (a dict, or YAML text) and, if given, ``ekws.yaml``."""
    etc = base / "etc"
    (etc / "sources").mkdir(parents=True, exist_ok=True)
    text = sources if isinstance(sources, str) else yaml.safe_dump(sources, sort_keys=False)
    (etc / "sources" / "websocket.yaml").write_text(text)
    if service is not None:
        (etc / "ekws.yaml").write_text(service)
    return etc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind 0, close); see the module docstring."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses every dial while the block runs (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
