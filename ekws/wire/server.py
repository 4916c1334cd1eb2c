"""Server mode: stream paths mounted on one shared Werkzeug server.

One threaded Werkzeug WSGI server per runtime serves every server-mode path.
It starts with the first mount and stops with the last. The WSGI app refuses
what it must before the upgrade (404, 401, 403, 426, 503), lets
simple-websocket answer the handshake, and then reads in the request thread,
a thin loop over :class:`~ekws.wire.protocol.Connection` (the protocol both modes
share): one named thread per connection, and nothing buffered beyond one
socket read, handed to the stream in slices, so a slow consumer slows the
peer through TCP instead of growing memory. A peer gets ``handshakeTimeout``
for each read of its TLS and HTTP handshakes.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qs

from ..config import ServerConfig, SourceProps
from ..errors import EkwsError, ServerError
from ..message import CONNECTED, STOPPED, Peer, Sink
from . import tls
from .frames import Payload
from .net import Environ, StartResponse
from .net import listen_socket as listen_socket  # re-exported: service/check and service/http import it here
from .protocol import CLOSING, OPEN, Connection, Link

if TYPE_CHECKING:
    from .upgrade import WSGIServer

logger = logging.getLogger(__name__)

# Per peer: one read's messages are held until they are all published; they
# are decoded PUBLISH_BATCH at a time, so back-pressure applies after a slice.
# 32 KiB, not 64: 200 busy peers peaked at +25 MB RSS instead of +37 MB, at
# the same msg/s (one peer or 200; bench/README.md, fan-in).
RECV_SIZE = 32 * 1024
# A read that fills its buffer doubles the next one, up to RECV_MAX: a peer
# streaming big messages costs fewer reads and wake-ups (16 KiB messages:
# 2 per read at 32 KiB; server-16KiB 0.81x -> 0.91x websockets with 256 KiB
# before decoding moved to the worker); a read under a quarter of it halves
# it back. 128 KiB, not 256: 50 busy peers peaked at 52 MB instead of 66 MB
# (32 KiB: 45 MB), with 16 KiB messages as fast.
RECV_MAX = 128 * 1024
SEND_TIMEOUT = 10.0  # seconds a send (pong, close) may wait for a peer that does not read
CLOSE_GRACE = 1.0  # seconds peers get to answer our close frame before the socket is cut

class PeerLink:
    """One upgraded peer: its protocol link and whether its request thread is done."""

    def __init__(self, link: Link, peer: Peer) -> None:
        self.link = link
        self.peer = peer
        self.done = threading.Event()


class ServerRoute:
    """A server-mode source: one stream's path on the shared server."""

    def __init__(self, server: SharedServer, sink: Sink, stream: str, datasource: str,
                 props: SourceProps, next_id: Callable[[], int]) -> None:
        self.server = server
        self.sink = sink
        self.stream = stream
        self.datasource = datasource
        self.path = datasource.split("?", 1)[0] or "/"
        self.props = props
        self.next_id = next_id
        self._lock = threading.Lock()
        self._connections: set[PeerLink] = set()
        self._reserved = 0  # slots taken by upgrades in progress
        self._stopped = False

    def describe(self) -> str:
        """What serves the path, for errors: ``stream 'demo'`` (a broadcast says so)."""
        return f"stream {self.stream!r}"

    def start(self) -> None:
        self.server.mount(self)
        self.sink.report_status(CONNECTED, url=self.server.url(self.path))

    def stop(self) -> None:
        self.refuse_new()
        self.server.unmount(self)
        self.close_all(1001, "stream stopped")
        self.sink.report_status(STOPPED, url=self.server.url(self.path))

    # -- admission ---------------------------------------------------------------------

    def refusal(self, environ: Environ) -> tuple[int, str] | None:
        """Why this request may not upgrade, as (HTTP status, message), or None."""
        props = self.props
        if props.auth_token and not _token_ok(environ, props.auth_token):
            return 401, "missing or wrong token (Authorization: Bearer <token> or ?token=)"
        origin = environ.get("HTTP_ORIGIN")
        if origin and props.allowed_origins and "*" not in props.allowed_origins \
                and origin not in props.allowed_origins:
            return 403, f"origin {origin!r} is not allowed"
        if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
            return 426, "this is a WebSocket endpoint: send an Upgrade: websocket request"
        if environ.get("REQUEST_METHOD") != "GET" or not environ.get("HTTP_SEC_WEBSOCKET_KEY") \
                or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
            return 400, "a WebSocket upgrade needs GET, Sec-WebSocket-Key and Sec-WebSocket-Version: 13"
        return None

    def reserve(self) -> bool:
        with self._lock:
            limit = self.props.max_connections
            if limit and len(self._connections) + self._reserved >= limit:
                return False
            self._reserved += 1
            return True

    def reserve_cancel(self) -> None:
        with self._lock:
            self._reserved -= 1

    # -- the connection set, for this class and its subclasses (the broadcast route) -----------

    def admit(self, entry: PeerLink) -> bool:
        """An upgraded peer's reserved slot becomes a connection; False once the route stopped.

        A stopped route keeps no new entry: the caller closes it (1001).
        """
        with self._lock:
            self._reserved -= 1
            if self._stopped:
                return False
            self._connections.add(entry)
            return True

    def forget(self, entry: PeerLink) -> None:
        """A connection is over: :meth:`close_all` no longer waits for it."""
        with self._lock:
            self._connections.discard(entry)

    def refuse_new(self) -> None:
        """From now on :meth:`admit` refuses: the first step of a stop."""
        with self._lock:
            self._stopped = True

    # -- one connection, in its request thread -------------------------------------------------

    def handle(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Admit one request for this path (refuse, reserve, upgrade), then serve it until it leaves."""
        refusal = self.refusal(environ)
        if refusal is not None:
            return _refuse(start_response, *refusal)
        if not self.reserve():
            return _refuse(start_response, 503, f"too many connections (maxConnections "
                                                 f"{self.props.max_connections})")
        from .upgrade import leftover, upgrade  # the server side loads with its first peer

        try:
            sock = upgrade(environ, self.props.subprotocols)
        except Exception as exc:
            self.reserve_cancel()
            logger.debug("upgrade on %s failed", self.path, exc_info=True)
            return _refuse(start_response, 400, f"bad WebSocket upgrade: {exc}")
        address = f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
        self.serve(sock, address, leftover(environ, sock, RECV_SIZE))
        try:  # the HTTP server must not wait for another request on this socket
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass
        # Tell Werkzeug the connection is finished: no HTTP response follows.
        raise ConnectionAbortedError("websocket closed")

    def serve(self, sock: socket.socket, address: str, leftover: bytes) -> None:
        peer = Peer(self.stream, self.datasource, address, self.next_id())
        conn = Connection(client=False, max_message_size=self.props.max_message_size or None,
                          where=f"stream {self.stream}: peer {address} (connection {peer.id})")
        entry = PeerLink(Link(conn, sock), peer)
        if not self.admit(entry):
            entry.link.close(1001, "stream stopped")
            return
        logger.info("stream %s: peer %s connected on %s (connection %d)",
                    self.stream, address, self.path, peer.id)
        self.sink.connection_opened(peer)
        try:
            self._receive(entry.link, peer, leftover)
        except OSError:  # the peer went away mid-send, or stop() cut the socket
            conn.receive_eof()
        finally:
            self.forget(entry)
            entry.done.set()
            self.sink.connection_closed(peer, conn.failed_code or conn.close_code or 1006,
                                        None if conn.error is None else str(conn.error))
        if conn.error is not None:
            if conn.failed_code in _PEER_FAULTS:
                logger.warning("%s; closed with code %s", conn.error, conn.failed_code)
            self.sink.report_error(conn.error)
        logger.info("stream %s: peer %s disconnected (connection %d, code %s)",
                    self.stream, address, peer.id, conn.failed_code or conn.close_code)

    def _receive(self, link: Link, peer: Peer, data: bytes) -> None:
        """Read until the connection closes: a thin loop over :class:`Connection`."""
        conn, sock = link.conn, link.sock
        interval = self.props.ping_interval or None
        # Wait in poll(), not in recv(): recv allocates its whole buffer before
        # it blocks, and a thousand idle peers would each hold one.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        # pingInterval of silence -> a ping; pingTimeout without an answer -> dropped.
        idle_ms = None if interval is None else int(interval * 1000)
        ping_timeout = self.props.ping_timeout or interval
        pong_ms = None if ping_timeout is None else int(ping_timeout * 1000)
        pending = getattr(sock, "pending", None)  # TLS: records decrypted but not read yet
        sock.settimeout(SEND_TIMEOUT)
        # Plain sockets: poll() said readable, so read the descriptor at once.
        # socket.recv on a socket with a timeout polls again first: a third
        # system call per read, which cost ~40 us of p50 latency at 1 kHz.
        recv = sock.recv if pending or os.name != "posix" else functools.partial(os.read, sock.fileno())
        size = RECV_SIZE
        while conn.state is OPEN:
            if data:
                messages = link.feed(data)
                data = b""
                if messages:
                    self.deliver(link, peer, messages)
                continue
            if not (pending and pending()) and not poller.poll(pong_ms if conn.awaiting_pong else idle_ms):
                if not link.keepalive():
                    link.close(1011, "keepalive ping timeout", EkwsError(
                        f"{conn.where}: no answer to a ping within {ping_timeout:g} s (pingTimeout); "
                        "connection dropped"))
                    return
                continue
            try:
                data = recv(size)
            except (socket.timeout, BlockingIOError):  # TLS: a record not complete; a spurious wake-up
                continue
            if not data:
                link.eof()
                return
            if len(data) == size:
                size = min(size * 2, RECV_MAX)
            elif len(data) < size >> 2 and size > RECV_SIZE:
                size >>= 1
        if conn.state is CLOSING:  # we closed first: wait a moment for the peer's answer
            await_close(link, poller)

    def deliver(self, link: Link, peer: Peer, messages: list[Payload]) -> None:
        """Hand what one read completed to the stream, in slices (see :data:`PUBLISH_BATCH`)."""
        publish = self.sink.publish
        now = int(time.time() * 1000)
        if len(messages) <= PUBLISH_BATCH:
            publish(peer, messages, now)
            return
        for start in range(0, len(messages), PUBLISH_BATCH):
            publish(peer, messages[start : start + PUBLISH_BATCH], now)

    def close_all(self, code: int, reason: str) -> None:
        """Close every peer with ``code``; cut those that do not answer in time."""
        with self._lock:
            connections = list(self._connections)
        for entry in connections:
            entry.link.close(code, reason)
        deadline = time.monotonic() + CLOSE_GRACE
        for entry in connections:
            if not entry.done.wait(max(0.0, deadline - time.monotonic())):
                entry.link.cut()
        for entry in connections:
            entry.done.wait(CLOSE_GRACE)


# Close codes that mean the peer misbehaved: logged at WARNING with the peer.
_PEER_FAULTS = frozenset((1002, 1007, 1009, 1011))
# Messages handed to the stream at once: a big read is decoded in slices, so
# back-pressure (overflow: block) applies before the whole read is decoded.
PUBLISH_BATCH = 64


def await_close(link: Link, poller: select.poll) -> None:
    """After our close frame: read (and drop) until the peer's close, EOF or the grace time."""
    deadline = time.monotonic() + CLOSE_GRACE
    while link.conn.state is CLOSING:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(int(remaining * 1000)):
            return
        data = link.sock.recv(RECV_SIZE)
        if not data:
            link.eof()
            return
        link.feed(data)


class SharedServer:
    """The one server that serves every server-mode path of a runtime."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._routes: dict[str, ServerRoute] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        server = self._server
        if server is None:
            return None
        host, port = server.server_address[:2]
        return (host if isinstance(host, str) else host.decode()), int(port)

    def url(self, path: str) -> str:
        address = self.address
        host, port = address if address else (self.config.http_server_ip, self.config.http_server_port)
        scheme = "wss" if self.config.http_server_tls else "ws"
        return f"{scheme}://{host}:{port}{path}"

    def mount(self, route: ServerRoute) -> None:
        with self._lock:
            if route.path in self._routes:
                other = self._routes[route.path].describe()
                raise ServerError(f"cannot mount {route.describe()} on {route.path}: "
                                  f"{other} is serving that path")
            # Registered first: a peer accepted the moment the server starts finds its path.
            self._routes[route.path] = route
            if self._server is None:
                try:
                    self._start()
                except BaseException:
                    del self._routes[route.path]
                    raise
            else:
                logger.info("websocket server: stream %s mounted on %s", route.stream, self.url(route.path))

    def unmount(self, route: ServerRoute) -> None:
        with self._lock:
            if self._routes.get(route.path) is not route:
                return
            if len(self._routes) == 1:  # the last path: stop accepting before it goes
                self._stop()
            del self._routes[route.path]

    # -- the server --------------------------------------------------------------------

    def _start(self) -> None:
        config = self.config
        context = tls.server_context(config.http_server_tls) if config.http_server_tls else None
        sock = listen_socket(config.http_server_ip, config.http_server_port, backlog=1024,
                             what="the websocket server: source.httpServerIp/httpServerPort")
        from .upgrade import make_server  # Werkzeug loads with the first server-mode path

        try:
            server = make_server(config.http_server_ip, config.http_server_port, self._app,
                                 handshake_timeout=config.handshake_timeout, fd=sock.fileno(),
                                 tls_context=context)
        finally:
            sock.close()  # Werkzeug keeps a duplicate of the descriptor
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="ekws-server")
        self._thread.start()
        logger.info("websocket server listening on %s", ", ".join(self.url(path) for path in self._routes))

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join(5.0)
        logger.info("websocket server on %s:%s stopped", *server.server_address[:2])

    # -- the WSGI app ------------------------------------------------------------------

    def route(self, path: str) -> ServerRoute | None:
        """The route that serves ``path``, if any."""
        return self._routes.get(path)

    def _app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        route = self.route(environ.get("PATH_INFO") or "/")
        if route is None:
            return _refuse(start_response, 404, f"no stream is mounted on {environ.get('PATH_INFO')}")
        return route.handle(environ, start_response)


def _refuse(start_response: StartResponse, status: int, message: str) -> list[bytes]:
    body = (message + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if status == 426:
        headers += [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
    elif status == 401:
        headers.append(("WWW-Authenticate", "Bearer"))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


def _token_ok(environ: Environ, token: str) -> bool:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    given = parse_qs(environ.get("QUERY_STRING", "")).get("token", [])
    return any(hmac.compare_digest(value.encode(), token.encode()) for value in given)
