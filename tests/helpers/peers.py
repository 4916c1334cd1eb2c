"""Independent WebSocket peers for the client-mode tests, run in-process on 127.0.0.1.

Two kinds of peer, both context managers that always shut down and join:

- :class:`WsPeer` wraps the ``websockets`` library's sync server (an
  implementation ekws does not share code with). ``port=0`` picks an ephemeral
  port; passing a previous peer's port restarts a server on the same port.
- :class:`RawPeer` is a bare socket server that completes the opening
  handshake by hand, may write some hand-built frames, and then never reads or
  answers again: a dead peer for keepalive tests, and a way to put bytes on the
  wire that a conforming library refuses to send.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader
from websockets.sync.server import Server, ServerConnection, serve

HOST = "127.0.0.1"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8

Handler = Callable[[ServerConnection], None]


def drain_until_closed(ws: ServerConnection, sink: queue.Queue[Any] | None = None) -> int | None:
    """Read (and optionally collect) messages until the peer closes; return the close code seen.

    The code is the one the *client* sent in its close frame (1009, 1000, ...),
    or 1006 / None when the TCP connection dropped without a close frame.
    """
    try:
        for message in ws:
            if sink is not None:
                sink.put(message)
    except ConnectionClosed:
        pass
    return ws.close_code


class WsPeer:
    """A ``websockets`` sync server on a background thread.

    Args:
        handler: called once per connection in its own thread (``websockets`` semantics).
        port: 0 for an ephemeral port, or a fixed port to restart on.
        ssl_context: server-side TLS context, or None for plain ws.
        subprotocols: subprotocols the server accepts.
        **options: passed to :func:`websockets.sync.server.serve`.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        subprotocols: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("compression", None)
        options.setdefault("ping_interval", None)  # keepalive is the client's job in these tests
        options.setdefault("close_timeout", 2)
        options.setdefault("open_timeout", 5)
        # Track connections: Server.shutdown() closes them only in some
        # websockets releases (not 15.x/16.x), and close() promises it does.
        self._connections: set[ServerConnection] = set()
        self._lock = threading.Lock()

        def tracked(ws: ServerConnection) -> None:
            with self._lock:
                self._connections.add(ws)
            try:
                handler(ws)
            finally:
                with self._lock:
                    self._connections.discard(ws)

        self._server: Server = serve(
            tracked,
            HOST,
            port,
            ssl=ssl_context,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            **options,
        )
        self.host = HOST
        self.port: int = self._server.socket.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"ws-peer-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def addr(self) -> str:
        """``host:port`` as ekws's ``addr`` conf prop expects it."""
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        """Stop accepting, close open connections with 1001, join handlers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for ws in connections:
            ws.close(1001)
        self._thread.join(timeout=10)

    def __enter__(self) -> WsPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def run_server(handler: Handler, **kwargs: Any) -> WsPeer:
    """Start a :class:`WsPeer`; use it as ``with run_server(handler) as peer:``."""
    return WsPeer(handler, **kwargs)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """Encode one unmasked server-to-client frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + payload


class RawConnection:
    """One accepted and upgraded connection of a :class:`RawPeer`."""

    def __init__(self, sock: socket.socket, index: int, request: bytes) -> None:
        self.sock = sock
        self.index = index
        self.request = request

    @property
    def path(self) -> str:
        return self.request.split(b"\r\n", 1)[0].split(b" ")[1].decode()

    def send_frame(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(frame(opcode, payload))

    def send_text(self, payload: bytes | str) -> None:
        """Send a text frame with exactly these bytes (no UTF-8 check)."""
        self.send_frame(OP_TEXT, payload.encode() if isinstance(payload, str) else payload)


class RawPeer:
    """A socket server that upgrades each connection, runs ``on_connect``, then goes silent.

    The socket of every connection stays open, unread, until :meth:`close`:
    pings are never answered and close frames never acknowledged.
    ``connections`` receives each :class:`RawConnection` after its handshake.
    """

    def __init__(self, on_connect: Callable[[RawConnection], None] | None = None, *, port: int = 0) -> None:
        self._on_connect = on_connect
        self._listener = socket.create_server((HOST, port))
        self._listener.setblocking(False)
        self.host = HOST
        self.port: int = self._listener.getsockname()[1]
        self.connections: queue.Queue[RawConnection] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._count = 0
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"raw-peer-{self.port}", daemon=True)
        self._thread.start()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=0.05):
                    continue
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                sock.setblocking(True)
                with self._lock:
                    index = self._count
                    self._count += 1
                    self._socks.append(sock)
                    thread = threading.Thread(
                        target=self._handle, args=(sock, index), name=f"raw-peer-conn-{index}", daemon=True
                    )
                    self._threads.append(thread)
                thread.start()

    def _handle(self, sock: socket.socket, index: int) -> None:
        try:
            sock.settimeout(5)
            request = read_request_head(sock)
            if request is None:
                return
            key = ""
            for line in request.split(b"\r\n")[1:]:
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            sock.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            conn = RawConnection(sock, index, request)
            if self._on_connect is not None:
                self._on_connect(conn)
            self.connections.put(conn)
        except OSError:
            pass  # the client went away or close() shut the socket

    def close(self) -> None:
        """Stop accepting, shut every connection, join all threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_request_head(sock: socket.socket) -> bytes | None:
    """A client's HTTP request line and headers, up to the blank line; None if it hung up first."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        request += chunk
    return request


def unused_port() -> int:
    """A port that nothing listens on (bound then released; good enough on a test host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def ws_frame(opcode: Opcode, data: bytes, *, mask: bool, fin: bool = True) -> bytes:
    """One frame serialized by the ``websockets`` library (masked as a client sends it)."""
    return Frame(opcode, data, fin=fin).serialize(mask=mask, extensions=[])


def read_close(sock: socket.socket, *, masked: bool, timeout: float = 5.0) -> Close:
    """Read frames until a close frame; return it (parsed by ``websockets``)."""
    reader = StreamReader()
    deadline = time.monotonic() + timeout
    while True:
        parser = Frame.parse(reader.read_exact, mask=masked, extensions=[])
        try:
            next(parser)
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    raise AssertionError("connection closed without a close frame")
                reader.feed_data(data)
                try:
                    parser.send(None)
                except StopIteration as done:
                    frame: Frame = done.value
                    break
        except StopIteration as done:
            frame = done.value
        if frame.opcode is Opcode.CLOSE:
            return Close.parse(frame.data)
