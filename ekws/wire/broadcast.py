"""Broadcast: text messages from the application to every WebSocket client of one path.

The reverse of a server-mode stream: :meth:`ekws.Runtime.broadcast` mounts a
path on the runtime's shared server (the one server-mode streams use, started
with the first path and stopped with the last), and :meth:`Broadcaster.send_text`
hands one message to every client connected to it. The service's
server-mode ``websocket`` action and ``ekws tail`` are built on it.

Why each choice:

* **The sender never waits for a client.** ``send_text`` only appends to
  each client's bounded queue (``buffer_length``, default the conf key's
  ``bufferLength``) and returns. When a queue is full the OLDEST message
  is dropped and counted (``dropped_total``): a live view wants the newest
  data once it catches up. A rule feeding a broadcaster is never slowed by
  a client, whatever it does.
* **Nothing is silent.** A message sent while nobody is connected is counted
  (``unsent_total``); drops per client are counted and logged (rate-limited);
  a client whose socket took nothing for ``send_timeout`` seconds is
  disconnected (close code 1008, counted in ``slow_total``).
* **One thread per client**, the request thread the server gave it: it sends
  what is queued, answers pings, pings on ``pingInterval`` silence and
  notices the close. It sleeps in ``poll()`` on the socket and a wake-up
  pipe, so an idle client costs no CPU.
* Clients are admitted like a stream's peers, with the conf key's
  ``authToken``, ``allowedOrigins`` and ``maxConnections`` (401/403/503
  before the upgrade). What a client sends is read and discarded (bounded
  by ``maxMessageSize``).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..config import SourceProps
from ..errors import ClosedError, EkwsError
from ..message import Peer
from ..throttle import INTERVAL
from .net import Environ, StartResponse
from .protocol import CLOSING, OPEN, Connection, Link
from .server import (
    RECV_SIZE,
    SEND_TIMEOUT,
    PeerLink,
    ServerRoute,
    SharedServer,
    await_close,
)

__all__ = ["Broadcaster"]

logger = logging.getLogger(__name__)

SEND_BATCH = 64  # queued messages written to a client's socket at once


class _Client(PeerLink):
    """One connected client: its link, its queue and its wake-up pipe."""

    def __init__(self, link: Link, peer: Peer) -> None:
        super().__init__(link, peer)
        self.queue: deque[str] = deque()
        self.dropped = 0
        self.sent = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):  # a full pipe wakes the reader anyway
            pass

    def close_pipe(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class _NullSink:
    """The :class:`~ekws.message.Sink` of a broadcast path: what clients send goes nowhere."""

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        pass

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        pass

    def report_error(self, exc: EkwsError) -> None:
        pass

    def connection_opened(self, peer: Peer) -> None:
        pass

    def connection_closed(self, peer: Peer, code: int | None = None, error: str | None = None) -> None:
        pass


class Broadcaster:
    """One path whose clients all get every message sent with :meth:`send_text`.

    Made by :meth:`ekws.Runtime.broadcast` (mounted on the shared server) or
    by :meth:`standalone` (served from another WSGI server with
    :meth:`wsgi_app`). A context manager; :meth:`close` is idempotent and
    closes every client with code 1001.

    Counters (read at any time): ``messages_total`` (``send_text`` calls),
    ``unsent_total`` (sent while no client was connected), ``sent_total``
    (messages written to a client socket, summed over clients),
    ``dropped_total`` (dropped from a full client queue), ``slow_total``
    (clients disconnected for not reading), ``clients_total``.
    """

    def __init__(self, server: SharedServer | None, path: str, props: SourceProps,
                 next_id: Callable[[], int], *, buffer_length: int | None = None,
                 send_timeout: float = SEND_TIMEOUT) -> None:
        if not path.startswith("/"):
            raise ValueError(f"a broadcast path starts with '/', got {path!r}")
        self.path = path.split("?", 1)[0]
        self.props = props
        self.buffer_length = buffer_length or props.buffer_length
        if self.buffer_length < 1:
            raise ValueError(f"buffer_length must be at least 1, got {self.buffer_length}")
        self.send_timeout = send_timeout
        self._server = server
        self._route = _Route(self, server, next_id)
        self._lock = threading.Lock()  # the client tuple and every queue
        self._clients: tuple[_Client, ...] = ()
        self._closed = False
        self._started = False
        self.messages_total = 0
        self.unsent_total = 0
        self.dropped_total = 0
        self.slow_total = 0
        self.clients_total = 0
        self._sent_done = 0  # sent by clients that left
        self._drop_log_time = 0.0
        self._drops_unlogged = 0
        self._unsent_log_time = -INTERVAL
        self._unsent_unlogged = 0

    @classmethod
    def standalone(cls, path: str, props: SourceProps | None = None, **kwargs: Any) -> Broadcaster:
        """A broadcaster not mounted anywhere: serve its clients with :meth:`wsgi_app`."""
        ids = iter(range(1, 1 << 62))
        broadcaster = cls(None, path, props or SourceProps(), lambda: next(ids), **kwargs)
        broadcaster._started = True
        return broadcaster

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Mount the path (the runtime calls this). Raises ServerError / BindError."""
        if self._server is None or self._started:
            return
        self._server.mount(self._route)
        self._started = True
        logger.info("broadcast on %s", self.url)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def url(self) -> str | None:
        """``ws://host:port/path`` while mounted on the shared server."""
        return None if self._server is None else self._server.url(self.path)

    def close(self) -> None:
        """Unmount (the last path stops the shared server) and close every client with 1001."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._route.stop()

    def __enter__(self) -> Broadcaster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending ----------------------------------------------------------------------------

    def send_text(self, text: str) -> int:
        """Queue ``text`` for every connected client; returns how many got it queued.

        Never blocks on a client. With no client the message is counted in
        ``unsent_total``; a full client queue drops its oldest message.

        Raises:
            ClosedError: the broadcaster is closed.
        """
        dropped = unsent_report = 0
        with self._lock:
            if self._closed:
                raise ClosedError(f"the broadcast on {self.path} is closed")
            self.messages_total += 1
            clients = self._clients
            if not clients:
                self.unsent_total += 1
                self._unsent_unlogged += 1
                now = time.monotonic()
                if now - self._unsent_log_time >= INTERVAL:
                    unsent_report, self._unsent_unlogged = self._unsent_unlogged, 0
                    self._unsent_log_time = now
            else:
                bound = self.buffer_length
                for client in clients:
                    queue = client.queue
                    if len(queue) >= bound:
                        queue.popleft()
                        client.dropped += 1
                        dropped += 1
                    queue.append(text)
                    if len(queue) == 1:
                        client.wake()
                self.dropped_total += dropped
        if unsent_report:
            logger.info("broadcast on %s: %d message(s) sent with no client connected (counted in "
                        "unsent_total; summarised every %.0f s)", self.path, unsent_report, INTERVAL)
        if dropped:
            self._log_drops(dropped)
        return len(clients)

    def _log_drops(self, count: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._drops_unlogged += count
            if now - self._drop_log_time < INTERVAL:
                return
            self._drop_log_time, count, self._drops_unlogged = now, self._drops_unlogged, 0
        logger.warning("broadcast on %s: %d message(s) dropped for clients that read too slowly "
                       "(bufferLength %d; summarised every %.0f s)", self.path, count,
                       self.buffer_length, INTERVAL)

    # -- numbers ---------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    def client_drops(self) -> list[int]:
        """Messages dropped so far for each connected client (``ekws tail`` reports its own)."""
        return [client.dropped for client in self._clients]

    @property
    def sent_total(self) -> int:
        return self._sent_done + sum(client.sent for client in self._clients)

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            clients = self._clients
            queued = sum(len(client.queue) for client in clients)
        return {
            "clients": len(clients),
            "clients_total": self.clients_total,
            "messages_total": self.messages_total,
            "sent_total": self.sent_total,
            "unsent_total": self.unsent_total,
            "dropped_total": self.dropped_total,
            "slow_total": self.slow_total,
            "buffer_length": queued,
        }

    # -- serving from another WSGI server -----------------------------------------------------

    def wsgi_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one client from a Werkzeug request (the caller checked the path and auth).

        Refuses like the shared server (400, 426, 403, 503) before the
        upgrade. After an upgrade it serves the client until it leaves, then
        raises ``ConnectionAbortedError``: Werkzeug's signal that no HTTP
        response follows on this socket.
        """
        return self._route.handle(environ, start_response)

    # -- the clients, called by the route (internal) -------------------------------------------

    def add_client(self, client: _Client) -> bool:
        """A client joins the sends; False once the broadcaster is closed."""
        with self._lock:
            if self._closed:
                return False
            self._clients = (*self._clients, client)
            self.clients_total += 1
        return True

    def remove_client(self, client: _Client) -> None:
        """A client left: its count joins the totals and its queue is freed."""
        with self._lock:
            self._clients = tuple(c for c in self._clients if c is not client)
            self._sent_done += client.sent
            client.queue.clear()

    def take_queued(self, client: _Client) -> list[str]:
        """Everything queued for ``client``, oldest first; its queue is empty after."""
        with self._lock:
            batch = list(client.queue)
            client.queue.clear()
        return batch

    def count_slow(self) -> None:
        """A client was disconnected for not reading (``slow_total``)."""
        with self._lock:
            self.slow_total += 1


class _Route(ServerRoute):
    """The broadcast path on a server: admission as for streams, a sender loop per client."""

    def __init__(self, owner: Broadcaster, server: SharedServer | None, next_id: Callable[[], int]) -> None:
        # A standalone broadcaster never mounts, so the server is only a placeholder there.
        super().__init__(server, _NullSink(), f"(broadcast {owner.path})", owner.path,  # type: ignore[arg-type]
                         owner.props, next_id)
        self.owner = owner

    def describe(self) -> str:
        return f"a websocket broadcast ({self.path})"

    def start(self) -> None:
        self.owner.start()

    def stop(self) -> None:
        self.refuse_new()
        if self.server is not None:
            self.server.unmount(self)
        self.close_all(1001, "broadcast closed")

    def serve(self, sock: socket.socket, address: str, leftover: bytes) -> None:
        peer = Peer("", self.path, address, self.next_id())
        conn = Connection(client=False, max_message_size=self.props.max_message_size or None,
                          where=f"broadcast {self.path}: client {address} (connection {peer.id})")
        client = _Client(Link(conn, sock), peer)
        if not self.admit(client) or not self.owner.add_client(client):
            client.link.close(1001, "broadcast closed")
            self.forget(client)
            client.close_pipe()
            return
        logger.info("broadcast %s: client %s connected (connection %d)", self.path, address, peer.id)
        try:
            self._run(client, leftover)
        except OSError:
            conn.receive_eof()
        finally:
            self.owner.remove_client(client)
            self.forget(client)
            client.done.set()
            client.close_pipe()
        if conn.error is not None:
            logger.warning("%s; closed with code %s", conn.error, conn.failed_code)
        logger.info("broadcast %s: client %s disconnected (connection %d, code %s, %d sent, %d dropped)",
                    self.path, address, peer.id, conn.failed_code or conn.close_code, client.sent,
                    client.dropped)

    def _run(self, client: _Client, data: bytes) -> None:
        """Send what is queued, read (and drop) what the client sends, keep it alive."""
        link, owner = client.link, self.owner
        conn, sock = link.conn, link.sock
        interval = self.props.ping_interval or None
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(client.wake_r, select.POLLIN)
        # pingInterval of silence -> a ping; pingTimeout without an answer -> dropped.
        idle_ms = None if interval is None else int(interval * 1000)
        ping_timeout = self.props.ping_timeout or interval
        pong_ms = None if ping_timeout is None else int(ping_timeout * 1000)
        pending = getattr(sock, "pending", None)
        sock.settimeout(owner.send_timeout)
        while conn.state is OPEN:
            if data:
                link.feed(data)  # pongs and the close handshake; data messages are dropped
                data = b""
                continue
            batch = owner.take_queued(client)
            if batch:
                try:
                    for start in range(0, len(batch), SEND_BATCH):  # one write per slice
                        chunk = batch[start : start + SEND_BATCH]
                        link.send_many(chunk)
                        client.sent += len(chunk)
                except socket.timeout:
                    owner.count_slow()
                    logger.warning("broadcast %s: client %s took nothing for %.0f s; disconnected (1008)",
                                   self.path, client.peer.address, owner.send_timeout)
                    link.close(1008, "client too slow", EkwsError(
                        f"{conn.where}: took nothing for {owner.send_timeout} s"))
                    return
                continue
            readable = bool(pending and pending())
            if not readable:
                events = poller.poll(pong_ms if conn.awaiting_pong else idle_ms)
                if not events:
                    if not link.keepalive():
                        link.close(1011, "keepalive ping timeout", EkwsError(
                            f"{conn.where}: no answer to a ping within {ping_timeout:g} s (pingTimeout); "
                            "connection dropped"))
                        return
                    continue
                for fd, _ in events:
                    if fd == client.wake_r:
                        os.read(client.wake_r, 4096)
                    else:
                        readable = True
            if readable:
                try:
                    data = sock.recv(RECV_SIZE)
                except socket.timeout:
                    continue
                if not data:
                    link.eof()
                    return
        if conn.state is CLOSING:  # we closed first: a moment for the client's answer
            closing = select.poll()
            closing.register(sock, select.POLLIN)
            await_close(link, closing)
