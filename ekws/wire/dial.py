"""The one dial of every outgoing WebSocket: TCP, TLS and the HTTP upgrade under one deadline.

ekws opens the TCP connection and the TLS session itself (so that a stop
interrupts every step of a dial, and a TLS failure is reported with its
reason); websocket-client then performs the HTTP upgrade on that socket:
headers and subprotocols. Split from :mod:`ekws.wire.client` (the stream's
reader, which re-exports :func:`dial` and :data:`MAX_RESPONSE_HEAD`).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import websocket

from ..config import SourceProps
from ..errors import ConnectError
from . import tls

__all__ = ["MAX_RESPONSE_HEAD", "POLL_SLICE", "dial", "error_reason"]

POLL_SLICE = 0.05  # seconds between checks of the stop flag while a TCP connect is pending
# The server's answer to the upgrade (status line and headers) may be this long:
# websocket-client reads it a byte at a time and keeps every header, with no
# limit of its own, so a server sending endless headers would grow memory until
# connectTimeout. 64 KiB is 8x what ``websockets`` allows per line and far more
# than any real 101 answer (a few hundred bytes).
MAX_RESPONSE_HEAD = 64 * 1024


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
    raise ConnectError(f"cannot connect to {url}: {error_reason(last)}") from last


def _tls(url: str, context: ssl.SSLContext, sock: socket.socket, host: str, deadline: float,
         note: Callable[[socket.socket | None], None]) -> ssl.SSLSocket:
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot connect to {url}: TLS: {error_reason(exc)}") from exc
    note(tls_sock)  # the SSL socket owns the descriptor now (wrap_socket detached ``sock``)
    try:
        tls_sock.settimeout(max(deadline - time.monotonic(), 0.001))
        tls_sock.do_handshake()
    except (OSError, ValueError) as exc:
        note(None)
        tls_sock.close()
        raise ConnectError(f"cannot connect to {url}: TLS handshake failed: {error_reason(exc)}") from exc
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
        return f"TLS: {error_reason(tls_error)}"
    reason = error_reason(tls_error or exc)
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
        return error_reason(exc)
    except (OSError, ValueError):
        pass
    return ""


def error_reason(exc: BaseException) -> str:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"the server refused the upgrade with HTTP {exc.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
