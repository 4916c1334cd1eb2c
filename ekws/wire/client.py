"""Client mode: dial ``{scheme}://{addr}{datasource}`` and keep the connection up.

The dial is :func:`ekws.wire.dial.dial` (re-exported here): ekws opens the
TCP connection and the TLS session itself (so that a stop interrupts every
step of a dial, and a TLS failure is reported with its reason);
websocket-client then performs the HTTP upgrade on that socket: headers and
subprotocols. After the handshake the reader is a thin loop over
:class:`~ekws.wire.protocol.Connection` (websocket-client validates UTF-8 in pure
Python per frame, which costs more than everything else on the receive path;
:mod:`ekws.wire.frames` decodes text once, in C).

One named thread per source runs connect -> receive -> reconnect with a
jittered backoff until :meth:`ClientSource.stop`, which interrupts any wait,
dial or blocking receive at once. A connection that ends before it stayed up
for ``reconnect.maxDelay`` counts as a failed attempt: the backoff goes on
growing and ``maxRetries`` applies, so a server that accepts and closes at
once is not dialled in a hot loop.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

from ..backoff import backoff, should_retry
from ..config import SourceProps
from ..errors import ConnectError, EkwsError
from ..message import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, Peer, Sink
from . import tls
from .dial import MAX_RESPONSE_HEAD, POLL_SLICE, dial, error_reason
from .frames import OP_TEXT, encode_frame
from .protocol import CLOSED, OPEN, Connection, Link

# dial, MAX_RESPONSE_HEAD and POLL_SLICE live in wire/dial.py; re-exported here, where they were
# first defined.
__all__ = ["CLOSE_GRACE", "LOUD_FAILURES", "MAX_RESPONSE_HEAD", "POLL_SLICE", "PUBLISH_BATCH",
           "PUBLISH_BYTES", "RECV_SIZE", "STOP_TIMEOUT", "SUMMARY_EVERY", "ClientSource",
           "close_connection", "dial"]

logger = logging.getLogger(__name__)

# One stream, one socket: large reads mean fewer hand-offs to the subscription
# worker per message (16 KiB messages: 0.92x -> 1.02x the websockets client;
# bench/README.md). Server mode reads less per peer: it has many.
RECV_SIZE = 1024 * 1024
# ... but a read's messages are decoded and handed over at most PUBLISH_BATCH
# and about PUBLISH_BYTES at a time: many decoded records alive at once cost
# more per message (cold memory) than the hand-offs saved. 120 B records:
# 2.1 -> 1.6 us of CPU per message inline, 2.6 -> 2.45 us queued; 16 KiB
# records inline: 123 -> 115 us (bench/README.md).
PUBLISH_BATCH = 256
PUBLISH_BYTES = 64 * 1024
STOP_TIMEOUT = 5.0
CLOSE_GRACE = 1.0  # seconds the server gets to answer our close frame on stop
LOUD_FAILURES = 3  # failed attempts in a row logged one WARNING each; then a summary
SUMMARY_EVERY = 60.0  # seconds between summary lines while attempts keep failing


class _PeerClosed(EkwsError):
    """The server closed the connection (a close frame or EOF)."""


class ClientSource:
    """Feeds a stream from a remote WebSocket server, reconnecting forever."""

    def __init__(self, sink: Sink, stream: str, datasource: str, props: SourceProps,
                 next_id: Callable[[], int]) -> None:
        self._sink = sink
        self._stream = stream
        self._datasource = datasource
        self._props = props
        self._next_id = next_id
        self.url = f"{props.scheme}://{props.addr}{datasource}"
        self._ssl: ssl.SSLContext | None = None
        self._stopping = threading.Event()
        # Guards the socket of the dial or connection in progress, which stop()
        # shuts down from its own thread to wake a blocked connect, handshake or recv.
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._link: Link | None = None
        self._thread = threading.Thread(target=self._run, name=f"ekws-client-{stream}")

    def start(self) -> None:
        """Check the TLS files (ConfigError now, not on every retry), then dial in the background."""
        if self._props.scheme == "wss":
            self._ssl = tls.client_context(self._props)
            if self._props.insecure_skip_verify:
                logger.warning("stream %s: insecureSkipVerify is true: the certificate of %s is not verified",
                               self._stream, self.url)
        self._thread.start()

    def stop(self) -> None:
        """Close the connection (code 1000), or cut a dial or backoff wait short; join the thread."""
        self._stopping.set()
        with self._lock:
            link, sock = self._link, self._sock
        if link is not None:
            link.close(1000)
        if sock is not None:
            try:
                # socket.socket's: SSLSocket.shutdown would also drop the TLS
                # object under a reader still using it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes a blocked handshake or recv
            except OSError:
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                logger.warning("stream %s: client thread did not stop within %.1f s",
                               self._stream, STOP_TIMEOUT)

    # -- the connection loop ----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        try:
            attempt = self._loop()
        except BaseException as exc:  # last resort: never a silent dead thread
            logger.exception("stream %s: client thread failed unexpectedly", self._stream)
            self._sink.report_error(EkwsError(f"stream {self._stream}: client for {self.url} failed "
                                              f"unexpectedly: {type(exc).__name__}: {exc}"))
        finally:
            self._sink.report_status(STOPPED, url=self.url, attempt=attempt)

    def _loop(self) -> int:
        policy = self._props.reconnect
        delays: Iterator[float] = backoff(policy.initial_delay, policy.max_delay)
        failures = 0
        attempt = 0
        retry_log = _RetryLog(self._stream, self.url)
        while not self._stopping.is_set():
            attempt += 1
            self._sink.report_status(CONNECTING, url=self.url, attempt=attempt)
            error: EkwsError | None
            try:
                sock = self._dial()
            except EkwsError as exc:
                error = exc
                failures += 1
            else:
                retry_log.connected(failures)
                started = time.monotonic()
                error = self._serve(sock)
                if time.monotonic() - started >= policy.max_delay:  # stayed up: a fresh start
                    failures = 0
                    delays = backoff(policy.initial_delay, policy.max_delay)
                else:  # a flap counts as a failed attempt
                    failures += 1
            if self._stopping.is_set():
                break
            self._sink.report_status(DISCONNECTED, error=str(error) if error else None, url=self.url,
                                     attempt=attempt)
            if error is not None and not isinstance(error, _PeerClosed):
                self._sink.report_error(error)
            if not should_retry(error, failures, policy.max_retries):
                logger.error("stream %s: giving up on %s after %d failed attempts in a row%s",
                             self._stream, self.url, failures, f": {error}" if error else "")
                break
            delay = next(delays)
            retry_log.failed(failures, error, delay)
            if self._stopping.wait(delay):
                break
        return attempt

    # -- dialling ----------------------------------------------------------------------

    def _dial(self) -> socket.socket:
        """:func:`dial`, tracked so that stop() can interrupt it; then the open messages."""
        sock = dial(self.url, self._props, self._stopping, context=self._ssl, track=self._track)
        try:
            for text in self._props.open_messages:
                sock.sendall(encode_frame(OP_TEXT, text.encode(), mask=True))
        except OSError as exc:
            self._forget(sock)
            raise ConnectError(f"cannot connect to {self.url}: {error_reason(exc)}") from exc
        return sock

    def _track(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock = None
        sock.close()

    # -- receiving ---------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> EkwsError | None:
        """Receive until the connection ends; return why it ended (None when stopping)."""
        conn = Connection(client=True, where=self.url, max_message_size=self._props.max_message_size or None)
        link = Link(conn, sock)
        peer = self._peer(sock)
        with self._lock:
            self._link = link
        self._sink.report_status(CONNECTED, url=self.url)
        try:
            if self._stopping.is_set():  # stop() ran between the dial and now
                link.close(1000)
            self._receive(link, peer)
        except OSError as exc:
            conn.receive_eof()
            if not self._stopping.is_set():
                return ConnectError(f"{self.url}: connection lost: {error_reason(exc)}")
        finally:
            with self._lock:
                self._link = None
            self._forget(sock)
        if self._stopping.is_set():
            return None
        if conn.error is not None:
            return conn.error
        if conn.close_code == 1006:
            return _PeerClosed(f"{self.url}: the server closed the connection without a close frame")
        reason = f", {conn.close_reason}" if conn.close_reason else ""
        return _PeerClosed(f"{self.url}: the server closed the connection (code {conn.close_code}{reason})")

    def _peer(self, sock: socket.socket) -> Peer:
        try:
            host, port = sock.getpeername()[:2]
            address = f"{host}:{port}"
        except OSError:  # already shut down by stop()
            address = self._props.addr
        return Peer(self._stream, self._datasource, address, self._next_id())

    def _receive(self, link: Link, peer: Peer) -> None:
        """A thin loop over the connection: read, feed, publish; ping when idle."""
        props = self._props
        conn, sock = link.conn, link.sock
        publish = self._sink.publish
        interval = props.ping_interval or None
        sock.settimeout(interval)
        while conn.state is OPEN:
            try:
                data = sock.recv(RECV_SIZE)
            except socket.timeout:
                if not link.keepalive():
                    link.close(1011, "keepalive ping timeout", ConnectError(
                        f"{self.url}: no answer to a ping within {props.ping_timeout} s"))
                    return
                sock.settimeout(props.ping_timeout or interval)
                continue
            if not data:
                link.eof()
                return
            if conn.awaiting_pong:
                sock.settimeout(interval)
            messages = link.feed(data)
            count = len(messages)
            if not count:
                continue
            batch = min(PUBLISH_BATCH, max(1, PUBLISH_BYTES * count // len(data)))
            if count <= batch:
                publish(peer, messages, int(time.time() * 1000))
            else:
                now = int(time.time() * 1000)
                for start in range(0, count, batch):
                    publish(peer, messages[start : start + batch], now)
        if conn.state is not CLOSED:  # we closed first (stop): give the server a moment to answer
            sock.settimeout(CLOSE_GRACE)
            while conn.state is not CLOSED:
                data = sock.recv(RECV_SIZE)
                if not data:
                    link.eof()
                    return
                link.feed(data)


class _RetryLog:
    """Retry logging: one WARNING per failed attempt for the first few, then a summary a minute."""

    def __init__(self, stream: str, url: str) -> None:
        self._stream = stream
        self._url = url
        self._quiet = 0  # failures not logged at WARNING since the last summary
        self._last_summary = 0.0

    def failed(self, failures: int, error: EkwsError | None, delay: float) -> None:
        what = str(error) if error else f"{self._url}: connection ended"
        if not failures:  # a connection that had stayed up ended
            logger.warning("stream %s: %s; reconnecting in %.2f s", self._stream, what, delay)
            return
        if failures <= LOUD_FAILURES:
            logger.warning("stream %s: %s; failed attempt %d, reconnecting in %.2f s", self._stream, what,
                           failures, delay)
            self._last_summary = time.monotonic()
            return
        self._quiet += 1
        now = time.monotonic()
        if now - self._last_summary >= SUMMARY_EVERY:
            logger.warning("stream %s: still failing on %s: %d attempts in a row (%d since the last line), "
                           "last: %s; next in %.2f s", self._stream, self._url, failures, self._quiet,
                           what, delay)
            self._quiet = 0
            self._last_summary = now
        else:
            logger.debug("stream %s: %s; failed attempt %d, reconnecting in %.2f s", self._stream, what,
                         failures, delay)

    def connected(self, failures: int) -> None:
        if failures > LOUD_FAILURES:
            logger.warning("stream %s: connected to %s after %d failed attempts", self._stream, self._url,
                           failures)
        self._quiet = 0


def close_connection(sock: socket.socket, conn: Connection, code: int = 1000,
                     grace: float = CLOSE_GRACE) -> None:
    """The close handshake from our side on a dialled socket: send ``code``, wait up to ``grace``.

    For the single-threaded users of :func:`dial` (the websocket action, ``ekws
    tail``); nothing is raised, and the socket is left open for the caller to
    close. A connection already closed only gets what it still owes sent.
    """
    try:
        conn.close(code)
        owed = conn.data_to_send()
        if owed:
            sock.sendall(owed)
        sock.settimeout(grace)
        while conn.state is not CLOSED:
            data = sock.recv(RECV_SIZE)
            if not data:
                return
            conn.receive_data(data)
            owed = conn.data_to_send()
            if owed:
                sock.sendall(owed)
    except (OSError, EkwsError):
        pass
