"""The server side's only contact with Werkzeug and simple-websocket: the HTTP server and the upgrade.

Imported when the first server-mode path is mounted, never by ``import
ekws``: a client-only device script does not load Werkzeug,
simple-websocket or wsproto (as ``websockets/__init__.py`` defers its
imports).

What this relies on inside simple-websocket (``simple_websocket.Server``,
pinned in ``pyproject.toml``): its constructor runs ``self.handshake()``
with ``self.environ``, ``self.sock`` (the socket Werkzeug hands over in
``werkzeug.socket``), ``self.ws`` (a wsproto server connection) and
``choose_subprotocol``, and starts ``thread_class(target=...)``. ekws
replaces the thread with :class:`_NoThread` and reads frames itself, and
replaces ``handshake`` to skip permessage-deflate.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from collections.abc import Iterable
from typing import Any, Callable

import simple_websocket
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from wsproto.events import AcceptConnection, Request

from .net import Environ
from .workers import Workers

logger = logging.getLogger("ekws.wire.server")


def upgrade(environ: Environ, subprotocols: Iterable[str]) -> socket.socket:
    """Answer the WebSocket handshake of ``environ``; the upgraded socket.

    Raises:
        Exception: whatever simple-websocket raises for a bad upgrade request.
    """
    sock: socket.socket = _Upgrade(environ, subprotocols).sock
    return sock


def make_server(host: str, port: int, app: Callable[..., Any], *, handshake_timeout: float,
                fd: int, tls_context: ssl.SSLContext | None) -> WSGIServer:
    """A threaded WSGI server on the listening descriptor ``fd`` (duplicated: close yours)."""
    server = WSGIServer(host, port, app, handler=_handler(handshake_timeout), fd=fd)
    server.tls_context = tls_context
    server.ssl_context = tls_context  # Werkzeug: https in environ, TLS errors logged, not raised
    return server


class _Upgrade(simple_websocket.Server):  # type: ignore[misc]
    """simple-websocket's handshake, without its receive thread and without compression.

    ekws reads frames itself in the request thread. permessage-deflate is not
    offered: inflating every message costs more CPU than the bytes it saves
    on the local links edge devices use.
    """

    def __init__(self, environ: Environ, subprotocols: Iterable[str]) -> None:
        super().__init__(environ, subprotocols=list(subprotocols), thread_class=_NoThread)

    def handshake(self) -> None:
        lines = [b"GET / HTTP/1.1"]
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                name = "-".join(part.capitalize() for part in key[5:].split("_"))
                lines.append(f"{name}: {value}".encode("latin-1"))
        self.ws.receive_data(b"\r\n".join(lines) + b"\r\n\r\n")
        for event in self.ws.events():
            if isinstance(event, Request):
                self.subprotocol = self.choose_subprotocol(event)
                self.sock.sendall(self.ws.send(AcceptConnection(subprotocol=self.subprotocol)))
                self.connected = True
                return


class _NoThread:
    """Stands in for simple-websocket's receive thread, which ekws does not run."""

    name = "unused"

    def __init__(self, target: Callable[[], None]) -> None:
        pass

    def start(self) -> None:
        pass


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler; ``timeout`` (handshakeTimeout) bounds each read of the TLS and HTTP handshakes."""

    def connection_dropped(self, error: BaseException, environ: Environ | None = None) -> None:
        # The app raises ConnectionAbortedError when a WebSocket ends; without
        # this, HTTP/1.1 keep-alive would wait for another request on the
        # socket instead of closing it, and the peer would wait for our FIN.
        self.close_connection = True

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("%s %s - %s", type, self.address_string(), message % args if args else message)


def _handler(handshake_timeout: float) -> type[_Handler]:
    """A handler class whose socket reads during the handshakes wait at most ``handshake_timeout``."""
    return type("_Handler", (_Handler,), {"timeout": handshake_timeout})


class WSGIServer(ThreadedWSGIServer):
    """Werkzeug's threaded server, with TLS handshakes moved off the accept loop.

    Werkzeug wraps the listening socket, so every TLS handshake would run in
    the one accepting thread and a silent client would stall every other.
    Here each accepted socket is wrapped lazily and shakes hands in its own
    request thread.
    """

    tls_context: ssl.SSLContext | None = None
    workers: Workers | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        # socketserver's ThreadingMixIn, with a named thread, reused for the
        # next peer once this one leaves (ekws.wire.workers: flat RSS under
        # churn). A daemon, as in Werkzeug: a peer in its handshake must not
        # hold up interpreter exit. Each thread is bounded anyway:
        # handshakeTimeout until the upgrade, then the keepalive, and the
        # close grace once its route stops.
        if self.workers is None:
            self.workers = Workers()
        host, port = client_address[:2] if isinstance(client_address, tuple) else ("?", 0)
        self.workers.submit(self.process_request_thread, request, client_address,
                            name=f"ekws-peer-{host}:{port}")

    def server_close(self) -> None:
        super().server_close()
        if self.workers is not None:
            self.workers.close()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Called by socketserver inside its except block: the error is current.
        logger.debug("request from %s failed", client_address, exc_info=sys.exc_info())


def leftover(environ: Environ, sock: socket.socket, size: int) -> bytes:
    """Frames a client sent right behind its upgrade request, already buffered by Werkzeug."""
    rfile = environ.get("wsgi.input")
    if rfile is None or not hasattr(rfile, "read1"):
        return b""
    sock.setblocking(False)
    try:
        return rfile.read1(size) or b""  # buffered bytes only: the socket is non-blocking
    except (OSError, ValueError):
        return b""
    finally:
        sock.setblocking(True)
        # Nothing reads it again (the peer's reader uses the socket): closing it
        # frees its 8 KiB buffer for the connection's life; the socket stays open.
        try:
            rfile.close()
        except (OSError, ValueError):
            pass
