"""Shared helpers for the server-mode tests: config dirs, collectors, raw peers.

The server-mode tests talk to ekws only through real sockets on 127.0.0.1 and
independent clients (the ``websockets`` library, Node ``ws``, Chromium). These
helpers keep the tests short: an ``etc`` dir written per test, a thread-safe
message collector that can be waited on, a hand-made WebSocket upgrade for
peers that must misbehave, and the CI rule for optional peer binaries.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import ekws
from helpers import common
from helpers.common import free_port, wait_until  # noqa: F401  (many tests import them from here)

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
BROWSER_DIR = REPO / "tests" / "browser"
INSTALL_HINT = "run .ci/install-peers.sh"


def port_is_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be bound right now by a server.

    SO_REUSEADDR as servers set it, so connections in TIME_WAIT left by an
    earlier run do not count as "in use"; a listening socket still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def write_etc(
    tmp_path: Path,
    conf: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    extra_keys: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Write ``<tmp>/etc/sources/websocket.yaml`` and return the etc dir.

    ``conf`` is merged into the ``default`` conf key (server mode, addr "");
    ``source`` into the shared server block (127.0.0.1, port 0).
    """
    doc: dict[str, Any] = {
        "default": {"addr": "", **(conf or {})},
        "source": {"httpServerIp": "127.0.0.1", "httpServerPort": 0, **(source or {})},
    }
    doc.update(extra_keys or {})
    return str(common.write_etc(tmp_path, doc))


def create_sql(name: str, datasource: str, conf_key: str | None = None) -> str:
    key = f', CONF_KEY="{conf_key}"' if conf_key else ""
    return f'CREATE STREAM {name}() WITH (DATASOURCE="{datasource}", FORMAT="json", TYPE="websocket"{key})'


class Collector:
    """A thread-safe ``on_message`` callback whose deliveries can be awaited."""

    def __init__(self, on_each: Callable[[ekws.Message], None] | None = None) -> None:
        self.messages: list[ekws.Message] = []
        self._cond = threading.Condition()
        self._on_each = on_each

    def __call__(self, msg: ekws.Message) -> None:
        if self._on_each is not None:
            self._on_each(msg)
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` messages arrived; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)

    @property
    def data(self) -> list[dict[str, Any]]:
        with self._cond:
            return [msg.data for msg in self.messages]


class ErrorLog:
    """A thread-safe ``on_error`` callback."""

    def __init__(self) -> None:
        self.errors: list[ekws.EkwsError] = []
        self._lock = threading.Lock()

    def __call__(self, exc: ekws.EkwsError) -> None:
        with self._lock:
            self.errors.append(exc)




@contextlib.contextmanager
def server_stream(
    tmp_path: Path,
    *,
    conf: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    datasource: str = "/ws",
    name: str = "demo",
    collector: Collector | None = None,
    **subscribe_kwargs: Any,
) -> Iterator[tuple[ekws.Runtime, ekws.Subscription, Collector, str]]:
    """A runtime with one subscribed server-mode stream: (rt, sub, collector, url)."""
    collector = collector if collector is not None else Collector()
    with ekws.Runtime(config_dir=write_etc(tmp_path, conf, source)) as rt:
        rt.create_stream(create_sql(name, datasource))
        with rt.subscribe(name, collector, **subscribe_kwargs) as sub:
            address = rt.server_address
            assert address is not None, "server_address is None after a server-mode subscribe"
            yield rt, sub, collector, f"ws://127.0.0.1:{address[1]}{datasource}"


def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    """A ``websockets`` sync client with test-friendly timeouts and no proxy.

    ``close_timeout`` is short: how fast the server ends TCP after the close
    handshake is checked by its own test, not paid by every other one.
    """
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    kwargs.setdefault("proxy", None)
    client: ClientConnection = connect(url, **kwargs)
    return client


def upgrade_request(host: str, port: int, target: str, headers: dict[str, str] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_upgrade(
    port: int, target: str, headers: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> tuple[int, socket.socket]:
    """Do the WebSocket upgrade by hand; return (status code, the open socket).

    The caller owns the socket: a peer that must never answer pings simply
    never touches it again.
    """
    sock = socket.create_connection((host, port), timeout=5.0)
    try:
        sock.sendall(upgrade_request(host, port, target, headers))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        return int(status_line.split()[1]), sock
    except BaseException:
        sock.close()
        raise


def require_binary(name: str) -> str:
    """The path of peer binary ``name``; skip when missing, but fail under CI."""
    found = shutil.which(name)
    if found:
        return found
    require_peer(False, f"{name} is not installed ({INSTALL_HINT})")
    raise AssertionError("unreachable")


def require_peer(available: bool, reason: str) -> None:
    """Skip a peer test locally when its tool is missing; under CI that is a failure."""
    if available:
        return
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set and a required test peer is missing: {reason}")
    pytest.skip(reason)
