"""Client mode: dial ``{scheme}://{addr}{datasource}`` and keep the connection up.

ekws opens the TCP connection and the TLS session itself (so that a stop
interrupts every step of a dial, and a TLS failure is reported with its
reason); websocket-client then performs the HTTP upgrade on that socket:
headers and subprotocols. After the handshake the reader is a thin loop over
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

import errno
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import websocket

from ..backoff import backoff, should_retry
from ..config import SourceProps
from ..errors import ConnectError, EkwsError
from ..message import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, Peer, Sink
from . import tls
from .frames import OP_TEXT, encode_frame
from .protocol import CLOSED, OPEN, Connection, Link

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
POLL_SLICE = 0.05  # seconds between checks of the stop flag while a TCP connect is pending
# The server's answer to the upgrade (status line and headers) may be this long:
# websocket-client reads it a byte at a time and keeps every header, with no
# limit of its own, so a server sending endless headers would grow memory until
# connectTimeout. 64 KiB is 8x what ``websockets`` allows per line and far more
# than any real 101 answer (a few hundred bytes).
MAX_RESPONSE_HEAD = 64 * 1024
LOUD_FAILURES = 3  # failed attempts in a row logged one WARNING each; then a summary
SUMMARY_EVERY = 60.0  # seconds between summary lines while attempts keep failing


class _PeerClosed(EkwsError):
    """The server closed the connection (a close frame or EOF)."""


class _HeadTooLarge(websocket.WebSocketException):
    """The server's upgrade answer ran past :data:`MAX_RESPONSE_HEAD`."""


class _CappedReads:
    """The socket, as websocket-client sees it during the upgrade: reads are counted.

    Only :meth:`recv` differs; everything else (send, timeouts, fileno for
    its selectors) goes to the socket. Nothing is read ahead, so the socket
    holds exactly what follows the answer's head once the upgrade is done.
    """

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self._sock = sock
        self._left = limit

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self._left -= len(data)
        if self._left < 0:
            raise _HeadTooLarge("response head too large")
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


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
            raise ConnectError(f"cannot connect to {self.url}: {_reason(exc)}") from exc
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
                return ConnectError(f"{self.url}: connection lost: {_reason(exc)}")
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


def dial(url: str, props: SourceProps, stop: threading.Event | None = None, *,
         context: ssl.SSLContext | None = None,
         track: Callable[[socket.socket | None], None] | None = None) -> socket.socket:
    """Open a WebSocket connection to ``url``: TCP, TLS (wss) and the HTTP upgrade.

    The one dial for every outgoing WebSocket: :class:`ClientSource`, the
    client-mode ``websocket`` action, the connectivity check and ``ekws tail``,
    so that the check fails exactly where a stream or an action would.
    ``props.connect_timeout`` is **one deadline** for all of it: the TCP
    connect, the TLS handshake and the whole upgrade (status line and every
    header line); a server that trickles its answer cannot stretch it, and
    one that sends more than :data:`MAX_RESPONSE_HEAD` bytes of it is cut
    off with an error that says so. Each
    step is interruptible: ``stop`` is polled during the TCP connect, and
    ``track`` is told about every socket in turn (None at the end of a failed
    dial) so that its owner can shut it down from another thread to wake a
    blocked handshake. ``context`` defaults to :func:`tls.client_context`
    (wss only; a :class:`~ekws.errors.ConfigError` for bad TLS files).
    Returns the socket, upgraded and blocking, with no timeout set; raises
    :class:`~ekws.errors.ConnectError` with the reason.
    """
    deadline = time.monotonic() + props.connect_timeout
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    if secure and context is None:
        context = tls.client_context(props)
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    note = track or (lambda sock: None)
    sock = _connect_tcp(url, host, port, deadline, stop, note, _timed_out(props))
    try:
        if context is not None:
            sock = _tls(url, context, sock, host, deadline, note)
        _upgrade(url, sock, props, deadline, stop)
    except BaseException:
        note(None)
        sock.close()
        raise
    sock.settimeout(None)
    return sock


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


def _timed_out(props: SourceProps) -> str:
    return (f"timed out: no answer within {props.connect_timeout:g} s "
            "(connectTimeout bounds TCP, TLS and the whole upgrade)")


def _connect_tcp(url: str, host: str, port: int, deadline: float, stop: threading.Event | None,
                 note: Callable[[socket.socket | None], None], timed_out: str) -> socket.socket:
    """Connect without blocking, polling the stop flag: a blackholed address does not delay a stop."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(f"cannot connect to {url}: cannot resolve {host}: {exc}") from exc
    last: Exception = ConnectError("no address")
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        note(sock)
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            while not poller.poll(int(POLL_SLICE * 1000)):
                if stop is not None and stop.is_set():
                    raise ConnectError(f"cannot connect to {url}: stopped")
                if time.monotonic() >= deadline:
                    raise ConnectError(f"cannot connect to {url}: {timed_out}")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except ConnectError:
            note(None)
            sock.close()
            raise
        except OSError as exc:
            note(None)
            sock.close()
            last = exc
    raise ConnectError(f"cannot connect to {url}: {_reason(last)}") from last


def _tls(url: str, context: ssl.SSLContext, sock: socket.socket, host: str, deadline: float,
         note: Callable[[socket.socket | None], None]) -> ssl.SSLSocket:
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot connect to {url}: TLS: {_reason(exc)}") from exc
    note(tls_sock)  # the SSL socket owns the descriptor now (wrap_socket detached ``sock``)
    try:
        tls_sock.settimeout(max(deadline - time.monotonic(), 0.001))
        tls_sock.do_handshake()
    except (OSError, ValueError) as exc:
        note(None)
        tls_sock.close()
        raise ConnectError(f"cannot connect to {url}: TLS handshake failed: {_reason(exc)}") from exc
    return tls_sock


def _upgrade(url: str, sock: socket.socket, props: SourceProps, deadline: float,
             stop: threading.Event | None) -> None:
    """websocket-client's upgrade on our socket, within what is left of the deadline.

    websocket-client reads the answer a line at a time, each read with the
    socket's timeout, so a server sending one header line every 0.5 s would
    never trip it: a timer shuts the socket down at the deadline (the same
    way stop() wakes a blocked handshake), and the error says it timed out.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ConnectError(f"cannot connect to {url}: {_timed_out(props)}")
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(remaining, expire)
    watchdog.name = "ekws-dial-deadline"
    watchdog.daemon = True
    sock.settimeout(remaining)
    watchdog.start()
    try:
        ws = websocket.create_connection(
            url,
            socket=_CappedReads(sock, MAX_RESPONSE_HEAD),
            timeout=remaining,
            header=[f"{name}: {value}" for name, value in props.request_header],
            subprotocols=list(props.subprotocols) or None,
            skip_utf8_validation=True,
        )
        ws.sock = None  # the socket is ours from here: websocket-client must not close it
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        if isinstance(exc, _HeadTooLarge):
            why = (f"the server's answer to the upgrade (status line and headers) is over "
                   f"{MAX_RESPONSE_HEAD // 1024} KiB without ending; is this a WebSocket server?")
        elif expired.is_set() or isinstance(exc, socket.timeout) or time.monotonic() >= deadline:
            why = _timed_out(props)
        elif stop is not None and stop.is_set():
            why = "stopped"
        else:
            why = _why(exc, sock, props)
        if isinstance(exc, websocket.WebSocketBadStatusException):
            body = exc.resp_body if isinstance(exc.resp_body, bytes) else b""
            raise ConnectError(f"cannot connect to {url}: {why}", status=exc.status_code, body=body) from exc
        raise ConnectError(f"cannot connect to {url}: {why}") from exc
    finally:
        watchdog.cancel()
        watchdog.join()
    if expired.is_set():  # the upgrade completed as the deadline struck: the socket is shut
        raise ConnectError(f"cannot connect to {url}: {_timed_out(props)}")


def _why(exc: BaseException, sock: socket.socket, props: SourceProps) -> str:
    """Why the upgrade failed, with the TLS reason when the TLS session is why.

    TLS 1.3 servers refuse a client certificate after the handshake, with
    an alert the first read meets; when the connection is reset the alert
    is lost, and the message says what most likely happened.
    """
    tls_error: ssl.SSLError | None = None
    cause: BaseException | None = exc
    while cause is not None and tls_error is None:
        if isinstance(cause, ssl.SSLError):
            tls_error = cause
        cause = cause.__cause__ or cause.__context__
    if tls_error is not None and not isinstance(tls_error, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return f"TLS: {_reason(tls_error)}"
    reason = _reason(tls_error or exc)
    if not isinstance(sock, ssl.SSLSocket):
        return reason
    if tls_error is None and not any(word in reason for word in ("closed", "lost", "reset", "EOF")):
        return reason
    alert = _pending_tls_alert(sock)
    if alert:
        return f"TLS: {alert}"
    wanted = ("a client certificate it trusts" if props.certification_path
              else "a client certificate (certificationPath, privateKeyPath)")
    return f"TLS: the server ended the session after the handshake ({reason}); it may require {wanted}"


def _pending_tls_alert(sock: ssl.SSLSocket) -> str:
    """A TLS alert the server sent after the handshake (TLS 1.3 refuses a client certificate so)."""
    try:
        sock.settimeout(0.5)
        sock.recv(1)
    except ssl.SSLError as exc:
        return _reason(exc)
    except (OSError, ValueError):
        pass
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"the server refused the upgrade with HTTP {exc.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
