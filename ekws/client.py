"""Client mode: dial ``{scheme}://{addr}{datasource}`` and keep the connection up.

websocket-client dials: TCP, TLS, HTTP upgrade, headers and subprotocols. After
the handshake ekws reads the socket itself with :class:`~ekws.frames.FrameParser`
(websocket-client validates UTF-8 in pure Python per frame, which costs more
than everything else on the receive path; the decoder validates it in C).
Outgoing control frames still go through websocket-client, under its lock.

One named thread per source runs connect -> receive -> reconnect with a
jittered backoff until :meth:`ClientSource.stop`, which interrupts any wait or
blocking receive at once.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import websocket

from . import tls
from .backoff import backoff, should_retry
from .config import SourceProps
from .errors import ConnectError, EkwsError, ProtocolError
from .frames import FrameParser, parse_close
from .message import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, Peer, Sink

logger = logging.getLogger(__name__)

# One stream, one socket: large reads mean fewer hand-offs to the subscription
# worker per message (16 KiB messages: 0.92x -> 1.02x the websockets client;
# bench/README.md). Server mode reads less per peer: it has many.
RECV_SIZE = 1024 * 1024
STOP_TIMEOUT = 5.0


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
        self._ws_lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name=f"ekws-client-{stream}")

    def start(self) -> None:
        """Check the TLS files (ConfigError now, not on every retry), then dial in the background."""
        if self._props.scheme == "wss":
            self._ssl = tls.client_context(self._props)
        self._thread.start()

    def stop(self) -> None:
        """Close the connection (code 1000) or cut a backoff wait short; join the thread."""
        self._stopping.set()
        with self._ws_lock:  # held: the reader closes the socket only after clearing _ws
            if self._ws is not None:
                _close_quietly(self._ws, 1000)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                logger.warning("stream %s: client thread did not stop within %.1f s",
                               self._stream, STOP_TIMEOUT)

    # -- the connection loop ----------------------------------------------------------------

    def _run(self) -> None:
        policy = self._props.reconnect
        delays: Iterator[float] = backoff(policy.initial_delay, policy.max_delay)
        failures = 0
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            self._sink.report_status(CONNECTING, url=self.url, attempt=attempt)
            error: EkwsError | None = None
            try:
                ws = self._dial()
            except EkwsError as exc:
                error = exc
                failures += 1
            else:
                failures = 0
                delays = backoff(policy.initial_delay, policy.max_delay)
                error = self._serve(ws)
            if self._stopping.is_set():
                break
            self._sink.report_status(DISCONNECTED, error=str(error) if error else None, url=self.url,
                                     attempt=attempt)
            if error is not None and not isinstance(error, _PeerClosed):
                self._sink.report_error(error)
            if not should_retry(error, failures, policy.max_retries):
                logger.error("stream %s: giving up on %s after %d failed attempts",
                             self._stream, self.url, failures)
                break
            delay = next(delays)
            logger.info("stream %s: reconnecting to %s in %.2f s", self._stream, self.url, delay)
            if self._stopping.wait(delay):
                break
        self._sink.report_status(STOPPED, url=self.url, attempt=attempt)

    def _dial(self) -> websocket.WebSocket:
        props = self._props
        sslopt: dict[str, object] = {"context": self._ssl} if self._ssl is not None else {}
        if props.insecure_skip_verify:
            sslopt["check_hostname"] = False
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=props.connect_timeout,
                header=[f"{name}: {value}" for name, value in props.request_header],
                subprotocols=list(props.subprotocols) or None,
                sslopt=sslopt,
                skip_utf8_validation=True,
                enable_multithread=True,
            )
            for text in props.open_messages:
                ws.send(text)
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            raise ConnectError(f"cannot connect to {self.url}: {_reason(exc)}") from exc
        with self._ws_lock:
            self._ws = ws
        if self._stopping.is_set():  # stop() ran between the dial and now
            _close_quietly(ws, 1000)
        return ws

    def _peer(self, sock: socket.socket) -> Peer:
        try:
            host, port = sock.getpeername()[:2]
            address = f"{host}:{port}"
        except OSError:  # already shut down by stop()
            address = self._props.addr
        return Peer(self._stream, self._datasource, address, self._next_id())

    def _serve(self, ws: websocket.WebSocket) -> EkwsError | None:
        """Receive until the connection ends; return why it ended (None when stopping)."""
        self._sink.report_status(CONNECTED, url=self.url)
        sock = ws.sock
        assert sock is not None  # a fresh connection has its socket
        peer = self._peer(sock)
        try:
            self._receive(ws, sock, peer)
        except (OSError, websocket.WebSocketException) as exc:  # a send (pong, ping) failed
            error = ConnectError(f"{self.url}: connection lost: {_reason(exc)}")
            return None if self._stopping.is_set() else error
        except EkwsError as exc:
            if isinstance(exc, ProtocolError):
                _close_quietly(ws, exc.code, str(exc)[:100])
            return None if self._stopping.is_set() else exc
        finally:
            with self._ws_lock:
                self._ws = None
            _close_quietly(ws, 1000)
            sock.close()  # nobody else uses it now: _ws is cleared
        return None

    def _receive(self, ws: websocket.WebSocket, sock: socket.socket, peer: Peer) -> None:
        props = self._props
        parser = FrameParser(masked=False, max_message_size=props.max_message_size or None)
        publish = self._sink.publish
        interval = props.ping_interval or None
        sock.settimeout(interval)
        ping_sent = False
        while not self._stopping.is_set():
            try:
                data = sock.recv(RECV_SIZE)
            except socket.timeout:
                if ping_sent:
                    raise ConnectError(f"{self.url}: no answer to a ping within "
                                       f"{props.ping_timeout} s") from None
                ws.ping()
                ping_sent = True
                sock.settimeout(props.ping_timeout or interval)
                continue
            except OSError as exc:
                raise ConnectError(f"{self.url}: connection lost: {_reason(exc)}") from exc
            if not data:
                raise _PeerClosed(f"{self.url}: the server closed the connection without a close frame")
            if ping_sent:
                ping_sent = False
                sock.settimeout(interval)
            got = parser.receive(data)
            for payload in got.pings:
                ws.pong(payload)
            if got.messages:
                publish(peer, got.messages, int(time.time() * 1000))
            if got.close is not None:
                code, reason = parse_close(got.close)
                _close_quietly(ws, 1000 if code is None else code)
                raise _PeerClosed(f"{self.url}: the server closed the connection "
                                  f"(code {code}{', ' + reason if reason else ''})")
            if got.error is not None:
                raise got.error


def _close_quietly(ws: websocket.WebSocket, code: int, reason: str = "") -> None:
    """Send a close frame if the socket can take it now, then shut the socket down.

    Shutting down (not closing) wakes a thread blocked in ``recv`` on it.
    Never blocks: a peer that stopped reading does not hold up a stop.
    """
    sock = ws.sock
    if sock is None:
        return
    try:
        if ws.connected and select.select([], [sock], [], 0)[1]:
            ws.send_close(code, reason.encode())
    except (OSError, ValueError, websocket.WebSocketException):
        pass
    ws.connected = False
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"handshake refused with HTTP {exc.status_code}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
