"""One WebSocket connection's protocol, sans I/O, and the socket glue both modes share.

:class:`Connection` is the protocol of RFC 6455 after the handshake, for
either side, with no networking code (model: ``websockets/protocol.py`` and
wsproto): bytes in through :meth:`~Connection.receive_data`, data messages
out, and the frames the protocol owes the peer (pongs, the close handshake)
collected for :meth:`~Connection.data_to_send`. It knows the connection state
(open, closing, closed), fails the connection with a close code on a
violation, and words every error with where it happened (the peer or URL).
Frame parsing itself is :class:`~ekws.wire.frames.FrameParser`, the fast path.

:class:`Link` binds a Connection to its socket for the two readers (client
and server mode): the reader thread feeds it, and any other thread may close
it without waiting on a peer that stopped reading.
"""

from __future__ import annotations

import enum
import select
import socket
import threading
from collections.abc import Sequence

from ..errors import EkwsError, MessageTooBig, ProtocolError
from .frames import OP_CLOSE, OP_PING, OP_PONG, FrameParser, Payload, close_payload, encode_frame, parse_close

__all__ = ["Connection", "ConnectionState", "Link"]

LOCK_WAIT = 0.5  # seconds a closing thread waits for a reader busy sending, then gives up


class ConnectionState(enum.Enum):
    """Where a connection is in its life (RFC 6455 4 and 7)."""

    OPEN = "open"  # data flows both ways
    CLOSING = "closing"  # we sent a close frame and wait for the peer's
    CLOSED = "closed"  # the close handshake is over or the connection failed: cut TCP


OPEN, CLOSING, CLOSED = ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.CLOSED


class Connection:
    """The protocol state of one WebSocket connection.

    Args:
        client: True on the client side (frames we send are masked; frames we
            receive must not be).
        where: names the connection in errors, e.g. ``"ws://host:1/path"`` or
            ``"stream s: peer 10.0.0.2:5012 (connection 7)"``.
        max_message_size: largest message in bytes; None or 0 means no limit.

    Not thread-safe: :class:`Link` serialises calls.
    """

    def __init__(self, *, client: bool, where: str, max_message_size: int | None = None) -> None:
        self.where = where
        self.state = OPEN
        self._mask = client
        self._parser = FrameParser(masked=not client, max_message_size=max_message_size)
        self._out: list[bytes] = []
        self.awaiting_pong = False
        self.close_code: int | None = None  # what the peer's close frame said (1005: no code)
        self.close_reason = ""
        self.error: EkwsError | None = None  # why we failed the connection, worded with ``where``
        self.failed_code: int | None = None  # the close code we failed it with

    @property
    def buffered(self) -> int:
        """Bytes held for partial frames and open fragmented messages."""
        return self._parser.buffered

    # -- input ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Payload]:
        """Take bytes from the peer; return the data messages they complete, in order.

        Text messages are ``str``, binary messages ``bytes``. Pings are
        answered; a close frame ends the input (nothing after it counts); a
        violation fails the connection with its close code, after the
        messages that preceded it. Check :attr:`state` and call
        :meth:`data_to_send` afterwards.
        """
        if self.state is CLOSED:
            return []
        self.awaiting_pong = False  # anything from the peer shows it is alive
        frames, error = self._parser.parse(data)
        messages: list[Payload] = []
        append = messages.append
        for opcode, payload in frames:
            if opcode < OP_CLOSE:
                append(payload)
            elif opcode == OP_PING:
                assert isinstance(payload, bytes)  # control payloads are never decoded
                if self.state is OPEN:
                    self._out.append(encode_frame(OP_PONG, payload, mask=self._mask))
            elif opcode == OP_CLOSE:
                assert isinstance(payload, bytes)
                self._receive_close(payload)
                return messages
        if error is not None:
            self._fail_protocol(error)
        return messages

    def receive_eof(self) -> None:
        """The peer closed TCP. Without a close frame first this is code 1006."""
        if self.state is not CLOSED and self.close_code is None:
            self.close_code = 1006
        self.state = CLOSED

    def _receive_close(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except ProtocolError as exc:
            self._fail_protocol(exc)
            return
        self.close_code = 1005 if code is None else code
        self.close_reason = reason
        if self.state is OPEN:  # echo the peer's close (RFC 6455 5.5.1)
            self._out.append(encode_frame(OP_CLOSE, b"" if code is None else close_payload(code),
                                          mask=self._mask))
        self.state = CLOSED

    # -- output ---------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Frames owed to the peer since the last call (pongs, close), as one chunk."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out = []
        return out

    def send(self, message: Payload) -> None:
        """Queue a data message: ``str`` as text, ``bytes`` as binary (the echo testees use it)."""
        if self.state is not OPEN:
            return
        if isinstance(message, str):
            self._out.append(encode_frame(1, message.encode(), mask=self._mask))
        else:
            self._out.append(encode_frame(2, message, mask=self._mask))

    def ping(self) -> None:
        """Queue a keepalive ping; any data from the peer counts as its answer."""
        if self.state is OPEN:
            self._out.append(encode_frame(OP_PING, b"", mask=self._mask))
            self.awaiting_pong = True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake: queue a close frame and wait for the peer's."""
        if self.state is OPEN:
            self._out.append(encode_frame(OP_CLOSE, close_payload(code, reason), mask=self._mask))
            self.state = CLOSING

    def fail(self, code: int, reason: str, error: EkwsError | None = None) -> None:
        """Fail the connection (RFC 6455 7.1.7): queue a close with ``code``, then it is closed.

        ``error`` is what the reader reports; by default a :class:`ProtocolError`
        with ``code`` naming :attr:`where`.
        """
        if self.state is CLOSED:
            return
        if self.state is OPEN:
            self._out.append(encode_frame(OP_CLOSE, close_payload(code, _cut(reason)), mask=self._mask))
        self.state = CLOSED
        self.failed_code = code
        self.error = error if error is not None else ProtocolError(f"{self.where}: {reason}", code)

    def _fail_protocol(self, exc: ProtocolError) -> None:
        worded = f"{self.where}: {exc}"
        error = MessageTooBig(worded) if isinstance(exc, MessageTooBig) else ProtocolError(worded, exc.code)
        self.fail(exc.code, str(exc), error)


def _cut(reason: str) -> str:
    """A close reason short enough for a control frame, cut at a word when it can be."""
    if len(reason) <= 100:
        return reason
    return reason[:100].rsplit(" ", 1)[0]


# -- the socket glue ---------------------------------------------------------------------


class Link:
    """A :class:`Connection` bound to its socket: one reader thread, any closer.

    One lock covers the protocol state and writes to the socket, so a pong
    and a close frame never interleave. The reader holds it while it sends
    (a peer that does not read slows only its own reader, bounded by the
    socket timeout); a closing thread waits for it at most :data:`LOCK_WAIT`
    and sends only what the socket takes at once, so a stop never hangs.
    """

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self.conn = conn
        self.sock = sock
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> list[Payload]:
        """Reader side: give ``data`` to the connection, send what it owes, return its messages."""
        with self._lock:
            messages = self.conn.receive_data(data)
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
        return messages

    def eof(self) -> None:
        with self._lock:
            self.conn.receive_eof()

    def keepalive(self) -> bool:
        """Reader side, after a ping interval of silence: ping; False when the last ping got no answer."""
        with self._lock:
            if self.conn.awaiting_pong:
                return False
            self.conn.ping()
            self.sock.sendall(self.conn.data_to_send())
            return True

    def send(self, message: Payload) -> None:
        """Reader side: send one data message (the echo testees)."""
        with self._lock:
            self.conn.send(message)
            self.sock.sendall(self.conn.data_to_send())

    def send_many(self, messages: Sequence[Payload]) -> None:
        """Reader side: send data messages in one write (a broadcast client's queued batch)."""
        with self._lock:
            for message in messages:
                self.conn.send(message)
            self.sock.sendall(self.conn.data_to_send())

    def close(self, code: int, reason: str = "", error: EkwsError | None = None) -> None:
        """Any thread: queue a close and send it if the socket can take it now.

        With ``error`` the connection is failed instead (closed at once, no
        answer awaited) and ``error`` is what its reader reports.
        """
        if not self._lock.acquire(timeout=LOCK_WAIT):
            return
        try:
            if error is not None:
                self.conn.fail(code, reason, error)
            else:
                self.conn.close(code, reason)
            out = self.conn.data_to_send()
            if out and writable(self.sock):
                self.sock.sendall(out)
        except (OSError, ValueError):
            pass
        finally:
            self._lock.release()

    def cut(self) -> None:
        """Shut the socket down both ways: wakes a reader blocked on it; closing is its job."""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass


def writable(sock: socket.socket) -> bool:
    """Whether ``sock`` takes data now. poll(), not select(): any descriptor number works."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return any(mask & select.POLLOUT for _, mask in poller.poll(0))
    except (OSError, ValueError):  # closed already
        return False
