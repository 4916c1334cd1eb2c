"""The ``websocket`` action, client mode: dial ``{scheme}://{addr}{path}`` and send each record.

Props: eKuiper's ``addr`` (or ``address``, as its sample spells it),
``path`` (default ``/``), ``insecureSkipVerify``, ``certificationPath``,
``privateKeyPath``, ``rootCaPath``; and, with the meaning they have for the
source, ``scheme`` (ws/wss), ``tlsMinVersion``, ``connectTimeout``,
``requestHeader``, ``subprotocols``, ``reconnect`` (``initialDelay``,
``maxDelay``, ``maxRetries``: the same jittered backoff as the source).
``bufferLength`` (default 1024) bounds the records waiting to be sent.

Each outgoing message (see :mod:`ekws.actions.sink`: the JSON array of an
emission's rows by default) goes out as one text frame, in order, from the
action's own thread: the rule never waits for the network. While the
connection is down, messages wait in the buffer and go out after the
reconnect; when the buffer is full the oldest is dropped and counted
(``dropped_total``), never silently. A message whose send failed is sent
again after the reconnect (at least once). With ``enableCache`` the buffer
is the disk cache (:class:`~ekws.actions.cache.DiskCache`): what waits
survives a rule or service restart, and after a reconnect the backlog is
resent ``resendInterval`` apart.

The connection is client mode's one dial (:func:`ekws.wire.client.dial`:
TCP, TLS from :mod:`ekws.wire.tls`, the upgrade, one ``connectTimeout``
deadline), so the action connects exactly where a stream would, and a rule
stop cuts a dial short. What the server sends is read by ekws's own protocol
code (:class:`ekws.wire.protocol.Connection`), which never buffers a frame
of any size the server announces: pings are answered,
a close is echoed, data messages are dropped, and a message over
``MAX_READ_MESSAGE`` bytes fails the connection with 1009 as soon as its
header arrives (nothing of it is buffered). The failure is counted and the
action reconnects as after any drop.

Server mode (``addr: ""``): the action mounts ``path`` on the runtime's
shared server (:meth:`ekws.Runtime.broadcast`) and sends every record, as
one JSON text frame, to every client connected to it. ``confKey`` (default
``default``) names the conf key whose ``authToken``, ``allowedOrigins``,
``maxConnections`` and ``pingInterval`` admit the clients; ``bufferLength``
bounds each client's queue. A record sent while nobody is connected is
counted (``unsent_total``); a client that reads too slowly loses its oldest
queued records (``dropped_total``), and one whose socket takes nothing for
10 s is disconnected with code 1008 (``slow_total``): the rule never waits
for a client. Mounting fails, and so does the rule's start, when a stream
(or another action) already serves the path.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any, Optional, Union

from .. import Broadcaster, ConfigError, EkwsError, Message, ServerError
from ..backoff import backoff, should_retry
from ..config import SourceProps, websocket_config_from_dict
from ..wire.client import close_connection, dial
from ..wire.protocol import Connection, ConnectionState
from ..wire.tls import client_context
from . import Action, ActionError, Item, Props
from .cache import CacheConf, DiskCache, MemoryQueue

logger = logging.getLogger(__name__)

IDLE_POLL = 0.5  # seconds: how often an idle sender reads the server's pings and close
READ_EVERY = 64  # records sent between two reads of what the server sent
MAX_READ_MESSAGE = 64 * 1024  # bytes: the largest message read from the server (its data is dropped)
READ_CHUNK = 16 * 1024  # bytes per recv: memory held per read is this plus a partial frame
MAX_READS = 64  # recv calls per read turn, so a chatty server never starves the sends
STOP_TIMEOUT = 5.0
_PASSED = ("scheme", "insecureSkipVerify", "rootCaPath", "certificationPath", "privateKeyPath",
           "tlsMinVersion", "connectTimeout", "reconnect", "requestHeader", "subprotocols")


class WebsocketConfig:
    def __init__(self, url: str, props: SourceProps, buffer_length: int) -> None:
        self.url = url
        self.props = props
        self.buffer_length = buffer_length


def parse(props: Props) -> Union[WebsocketConfig, ServerConfig]:
    addr = props.get("addr")
    if addr is None:
        addr = props.get("address")
    else:
        props.get("address")
    if addr is None:
        raise props.fail("addr", "is required (host:port of the server to send to)")
    if addr == "":
        return _parse_server(props)
    path = props.string("path", "/")
    if not path.startswith("/"):
        raise props.fail("path", f"expected a path starting with '/', got {path!r}")
    passed = {key: props.get(key) for key in _PASSED if props.has(key)}
    try:
        config = websocket_config_from_dict({"websocket": {"addr": addr, **passed}}, path=props.where)
    except ConfigError as exc:
        raise ActionError(str(exc)) from exc
    source = config.conf_keys["websocket"]
    buffer_length = props.integer("bufferLength", 1024, minimum=1)
    return WebsocketConfig(f"{source.scheme}://{source.addr}{path}", source, buffer_length)


class ServerConfig:
    def __init__(self, path: str, conf_key: Optional[str], buffer_length: Optional[int]) -> None:
        self.path = path
        self.conf_key = conf_key
        self.buffer_length = buffer_length


def _parse_server(props: Props) -> ServerConfig:
    path = props.string("path", "/")
    if not path.startswith("/") or "?" in path:
        raise props.fail("path", f"expected a path starting with '/' (no query), got {path!r}")
    conf_key = props.string("confKey")
    buffer_length = props.integer("bufferLength", 0, minimum=1) if props.has("bufferLength") else None
    for key in _PASSED:
        if props.has(key):
            raise props.fail(key, 'is a client-mode prop; the server-mode action (addr: "") '
                                  "takes path, confKey and bufferLength")
    return ServerConfig(path, conf_key, buffer_length)


def can_cache(config: Any) -> bool:
    """enableCache: the client mode has one far end; the server mode's clients come and go."""
    return isinstance(config, WebsocketConfig)


def _factory(config: Any, name: str) -> Action:
    if isinstance(config, ServerConfig):
        return BroadcastAction(config, name)
    return WebsocketAction(config, name)


class BroadcastAction(Action):
    """Server mode: every record to every client of ``path`` on the shared server."""

    asynchronous = True

    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._config: ServerConfig = config
        self._broadcaster: Optional[Broadcaster] = None
        self.records_out = 0

    def start(self) -> None:
        if self.runtime is None:
            raise ActionError(f"{self.name}: the server-mode websocket action needs the rule's runtime")
        config = self._config
        try:
            self._broadcaster = self.runtime.broadcast(config.path, config.conf_key,
                                                       buffer_length=config.buffer_length)
        except ServerError as exc:
            raise ActionError(f"{self.name}: {exc}") from exc
        logger.info("%s: broadcasting on %s", self.name, self._broadcaster.url)

    def deliver(self, item: Item) -> None:
        broadcaster = self._broadcaster
        if broadcaster is None:
            raise ActionError(f"{self.name}: not started")
        if broadcaster.send_text(item.payload.decode("utf-8", "replace")):
            self.records_out += 1

    def send(self, msg: Message) -> None:  # the Action interface; the sink calls deliver()
        self.deliver(Item(msg.data, msg.data, msg.peer, msg.timestamp))

    def close(self) -> None:
        if self._broadcaster is not None:
            self._broadcaster.close()

    def metrics(self) -> dict[str, Any]:
        broadcaster = self._broadcaster
        numbers = broadcaster.metrics() if broadcaster is not None else {}
        return {
            "records_out_total": self.records_out,
            "unsent_total": numbers.get("unsent_total", 0),
            "dropped_total": numbers.get("dropped_total", 0),
            "slow_total": numbers.get("slow_total", 0),
            "clients": numbers.get("clients", 0),
            "clients_total": numbers.get("clients_total", 0),
            "buffer_length": numbers.get("buffer_length", 0),
            "connection_status": 1 if numbers.get("clients") else 0,
        }


class WebsocketAction(Action):
    asynchronous = True

    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._config: WebsocketConfig = config
        self._queue: MemoryQueue = MemoryQueue(config.buffer_length)
        self._resend = 0.0  # enableCache's resendInterval, seconds
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        # The socket of the dial or connection in progress: close() shuts it down from
        # its own thread to cut a dial short or wake a send stuck on a server that stopped reading.
        self._sock_lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._ssl: Optional[ssl.SSLContext] = None
        self.records_out = 0
        self.exceptions = 0
        self.last_exception: Optional[str] = None
        self.connected = False
        self.connects = 0
        self._thread = threading.Thread(target=self._run, name=f"ekws-action-ws-{id(self):x}")

    def start(self) -> None:
        if self._config.props.scheme == "wss":
            self._ssl = client_context(self._config.props)  # a bad TLS file fails the start now
        if self.cache is not None:
            conf, table = self.cache
            assert isinstance(conf, CacheConf)
            self._queue = DiskCache(conf, table)
            self._resend = conf.resend_interval
        self._thread.start()

    def deliver(self, item: Item) -> None:
        payload = item.payload
        with self._cond:
            self._queue.push(payload)
            self._cond.notify()

    def send(self, msg: Message) -> None:  # the Action interface; the sink calls deliver()
        self.deliver(Item(msg.data, msg.data, msg.peer, msg.timestamp))

    def close(self) -> None:
        """Send what is buffered if connected (within STOP_TIMEOUT), then close with code 1000.

        A dial in progress is cut short at once: nothing is buffered on a
        connection that is not up yet.
        """
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        if not self.connected:
            self._cut()  # wakes a TLS handshake or upgrade (the TCP connect polls the stop flag)
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():  # the thread is stuck in a send: cut it off
            self._cut()
            self._thread.join(STOP_TIMEOUT)
        with self._cond:
            self._queue.close()  # the disk cache keeps what is left for the next start

    def metrics(self) -> dict[str, Any]:
        return {
            "records_out_total": self.records_out,
            "exceptions_total": self.exceptions,
            "last_exception": self.last_exception,
            **self._queue.metrics(),
            "connection_status": 1 if self.connected else -1,
            "connects_total": self.connects,
        }

    # -- the sender thread ------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.exceptions += 1
        text, url = str(exc), self._config.url
        self.last_exception = text if url in text else f"{url}: {text}"
        logger.warning("%s: %s", self.name, self.last_exception)

    def _run(self) -> None:
        policy = self._config.props.reconnect
        delays: Iterator[float] = backoff(policy.initial_delay, policy.max_delay)
        failures = 0
        while not self._stopping.is_set():
            try:
                sock = self._dial()
            except EkwsError as exc:
                if self._stopping.is_set():
                    return
                failures += 1
                self._failed(exc)
                if not should_retry(None, failures, policy.max_retries):
                    logger.error("%s: giving up on %s after %d failed attempts", self.name,
                                 self._config.url, failures)
                    return
                if self._stopping.wait(next(delays)):
                    return
                continue
            failures = 0
            delays = backoff(policy.initial_delay, policy.max_delay)
            try:
                self._serve(sock)
            except (OSError, EkwsError) as exc:
                if not self._stopping.is_set():
                    self._failed(exc)
            finally:
                self.connected = False
                self._track(None)
                _shutdown(sock)
            if not self._stopping.is_set() and self._stopping.wait(next(delays)):
                return

    def _track(self, sock: Optional[socket.socket]) -> None:
        with self._sock_lock:
            self._sock = sock

    def _cut(self) -> None:
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            try:
                # socket.socket's: SSLSocket.shutdown would also drop the TLS object under the sender
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _dial(self) -> socket.socket:
        """Client mode's one dial (:func:`ekws.wire.client.dial`), interruptible by close()."""
        props = self._config.props
        sock = dial(self._config.url, props, self._stopping, context=self._ssl, track=self._track)
        # Sends are bounded as websocket-client bounded them: a server that stops reading
        # for connectTimeout fails the connection, and the record is sent again after the reconnect.
        sock.settimeout(props.connect_timeout)
        self.connected = True
        self.connects += 1
        logger.info("%s: connected to %s", self.name, self._config.url)
        return sock

    def _serve(self, sock: socket.socket) -> None:
        queue, cond = self._queue, self._cond
        conn = Connection(client=True, where=self._config.url, max_message_size=MAX_READ_MESSAGE)
        sent = 0
        with cond:
            backlog = len(queue) if self._resend else 0  # resent resendInterval apart
        while True:
            with cond:
                if not queue:
                    if self._stopping.is_set():
                        close_connection(sock, conn)  # code 1000, the answer awaited up to 1 s
                        return
                    cond.wait(IDLE_POLL)
                payload = queue.peek()
            if payload is None:
                _read(sock, conn)
                continue
            try:
                if conn.state is not ConnectionState.OPEN:
                    raise EkwsError(f"{self._config.url}: the connection is closed")
                conn.send(payload.decode("utf-8", "replace"))
                sock.sendall(conn.data_to_send())
            except BaseException:
                with cond:
                    queue.release()  # sent again after the reconnect
                raise
            with cond:
                queue.ack()
            if backlog:
                backlog -= 1
                if self._stopping.wait(self._resend):
                    backlog = 0
            self.records_out += 1
            sent += 1
            if sent % READ_EVERY == 0:
                _read(sock, conn)


def _read(sock: socket.socket, conn: Connection) -> None:
    """Read what the server sent, without blocking and within ``MAX_READ_MESSAGE``.

    Pings get their pong and a close its echo (``conn`` queues both); data
    messages are dropped.

    Raises:
        MessageTooBig, ProtocolError: the server broke the bound or the
            protocol (the close frame with 1009/1002 is sent first).
        EkwsError: the server closed the connection.
    """
    timeout = sock.gettimeout()
    sock.setblocking(False)  # the sends expect the timeout back (finally)
    try:
        for _ in range(MAX_READS):
            try:
                data = sock.recv(READ_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if not data:
                conn.receive_eof()
            else:
                conn.receive_data(data)  # the messages it returns are the server's data: dropped
            owed = conn.data_to_send()
            if owed:
                sock.settimeout(timeout)
                sock.sendall(owed)
                sock.setblocking(False)
            if conn.state is ConnectionState.CLOSED:
                if conn.error is not None:
                    raise conn.error
                raise EkwsError(f"{conn.where}: the server closed the connection (code {conn.close_code})")
    finally:
        sock.settimeout(timeout)


def _shutdown(sock: socket.socket) -> None:
    """Shut the socket down and close it: never blocks."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


ACTION = _factory
