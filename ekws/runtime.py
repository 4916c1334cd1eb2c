"""The runtime: streams, their sources and the shared server, in one object.

This is where the pieces meet: it parses DDL, resolves conf keys, builds each
stream's decoder and source (client dial loop or server path), and owns the
one shared server-mode server.
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .codec import make_decoder
from .config import SourceProps, WebsocketConfig, load_websocket_config
from .ddl import StreamDef, parse_stream
from .errors import ClosedError, EkwsError, StreamExists, StreamNotFound
from .message import Message, Source
from .signals import SignalWait
from .stream import Stream
from .subscription import OnError, OnMessage, OnStatus, Subscription
from .wire.broadcast import Broadcaster
from .wire.client import ClientSource
from .wire.server import ServerRoute, SharedServer

logger = logging.getLogger(__name__)


class RunningQuery(Protocol):
    """What :meth:`Runtime.query` returns (an ``ekws.rules.continuous.ContinuousQuery``,
    not imported here: the engine loads only when a script asks for it)."""

    @property
    def closed(self) -> bool: ...

    @property
    def records_in(self) -> int: ...  # records the stream delivered

    @property
    def results(self) -> int: ...  # rows handed to on_result

    @property
    def late(self) -> int: ...  # event time: records later than the watermark, dropped

    @property
    def dropped(self) -> int: ...  # rows a window dropped over maxWindowRows or maxWindowGroups

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> None: ...


class _State(enum.Enum):
    RUNNING = "running"
    CLOSED = "closed"


class Runtime:
    """Streams defined with ``CREATE STREAM`` and the sources that feed them.

    Args:
        config_dir: the folder holding ``sources/websocket.yaml`` (eKuiper's
            ``etc``); None uses the built-in defaults.
        environ: where ``WEBSOCKET__KEY__PROP`` overrides come from
            (default ``os.environ``).

    Use it as a context manager or call :meth:`close`: source and server
    threads are not daemons (a stop must deliver what was received and close
    peers properly), so a runtime left open keeps the process alive.

    Raises:
        ConfigError: the configuration cannot be read or is wrong.
    """

    def __init__(self, config_dir: str | os.PathLike[str] | None = None, *,
                 environ: Mapping[str, str] | None = None,
                 config: WebsocketConfig | None = None) -> None:
        self.config = config if config is not None else load_websocket_config(config_dir, environ)
        self._streams: dict[str, Stream] = {}
        self._lock = threading.RLock()
        self._server = SharedServer(self.config.server)
        self._ids = itertools.count(1)
        self._state = _State.RUNNING
        self._closed = threading.Event()
        self._signals: SignalWait | None = None  # a wait() in progress in the main thread
        self._broadcasters: list[Broadcaster] = []

    # -- streams -----------------------------------------------------------------------

    def create_stream(self, sql: str) -> StreamDef:
        """Define a stream from a ``CREATE STREAM`` statement.

        Raises:
            DDLError: the statement does not parse.
            ConfigError: its ``CONF_KEY`` is not in ``sources/websocket.yaml``.
            StreamExists: a stream of that name exists.
        """
        definition = parse_stream(sql)
        props = self.config.props(definition.conf_key)
        decoder = make_decoder(definition)
        with self._lock:
            self._check_open()
            if definition.name in self._streams:
                raise StreamExists(f"Item {definition.name} already exists.", name=definition.name)
            self._streams[definition.name] = Stream(definition, props, decoder, self._make_source)
        logger.info("stream %s created (%s mode, conf key %s)", definition.name,
                    "server" if props.is_server else "client", props.name)
        return definition

    def drop_stream(self, name: str) -> None:
        """Close the stream's subscriptions and forget it."""
        with self._lock:
            stream = self._get(name)
            del self._streams[name]
        stream.close()

    def streams(self) -> list[str]:
        return sorted(self._streams)

    def describe_stream(self, name: str) -> StreamDef:
        return self._get(name).definition

    def status(self, name: str) -> dict[str, Any]:
        """The stream's metrics (eKuiper's names) and connection state.

        ``state`` is a :class:`~ekws.State`; ``*_time`` values are ``int``
        milliseconds since the epoch (or None). Never waits for a source
        that is starting or stopping, nor for a callback.
        """
        return self._get(name).metrics()

    def subscribe(self, name: str, on_message: OnMessage, on_error: OnError | None = None,
                  on_status: OnStatus | None = None, *, buffer_length: int | None = None,
                  overflow: str | None = None, delivery: str | None = None) -> Subscription:
        """Deliver the stream's records to ``on_message`` until the subscription closes.

        The first subscription of a stream starts its source; the last one to
        close stops it. Callbacks run in the subscription's own thread, or with
        ``delivery="inline"`` on the thread that read the socket; a
        raising callback is counted and passed to ``on_error`` as a
        :class:`~ekws.CallbackError` (see :mod:`ekws.subscription`).

        Raises:
            StreamNotFound: no such stream.
            ClosedError: the runtime is closed, or closed (or the stream was
                dropped) while subscribing; no subscription is left running.
            BindError: server mode, and the shared server cannot bind.
            ServerError: server mode, and another stream serves the path.
            ConfigError: TLS files cannot be read.
        """
        with self._lock:
            self._check_open()
            stream = self._get(name)
        return stream.subscribe(on_message, on_error, on_status, buffer_length=buffer_length,
                                overflow=overflow, delivery=delivery)

    def query(self, sql: str, on_result: Callable[[Message], Any],
              on_error: Callable[[EkwsError], Any] | None = None, *, is_event_time: bool = False,
              late_tolerance: int = 0, max_window_rows: int = 100_000, max_window_groups: int = 10_000,
              buffer_length: int | None = None, overflow: str | None = None) -> RunningQuery:
        """Run a rule's SQL over its stream; ``on_result`` gets each output row as a Message.

        ``SELECT avg(temperature) AS t FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)``
        calls ``on_result`` once per window (per group) with ``data`` the row and
        ``meta["window_start"]``, ``meta["window_end"]`` the window's bounds (ms);
        a query without a window once per record its WHERE lets through. The
        language is a rule's (see :mod:`ekws.rules.sql`); ``is_event_time``,
        ``late_tolerance`` (ms), ``max_window_rows`` and ``max_window_groups``
        are the rule options ``isEventTime``, ``lateTolerance``, ``maxWindowRows``
        and ``maxWindowGroups``; ``buffer_length`` and ``overflow`` as in
        :meth:`subscribe`. Returns a running :class:`~ekws.rules.continuous.ContinuousQuery`:
        a context manager, or call its ``close()``.

        Raises:
            SQLError: the SQL does not parse, or uses what ekws does not run.
            StreamNotFound, ClosedError, BindError, ServerError: as :meth:`subscribe`.
        """
        from .rules.continuous import ContinuousQuery  # the engine loads only when used

        return ContinuousQuery(self, sql, on_result, on_error, is_event_time=is_event_time,
                               late_tolerance=late_tolerance, max_window_rows=max_window_rows,
                               max_window_groups=max_window_groups, buffer_length=buffer_length,
                               overflow=overflow)

    # -- broadcast (the reverse direction: to clients of a path) -----------------------

    def broadcast(self, path: str, conf_key: str | SourceProps | None = None, *,
                  buffer_length: int | None = None) -> Broadcaster:
        """Mount ``path`` on the shared server; every client of it gets what is sent.

        ``conf_key`` (a conf key name, or props) gives the clients' admission:
        ``authToken``, ``allowedOrigins``, ``maxConnections``, ``pingInterval``,
        ``maxMessageSize``, and ``bufferLength`` per client unless
        ``buffer_length`` is given. Close the broadcaster (or the runtime) to
        unmount; the last path closing stops the shared server.

        Raises:
            ServerError: a stream or another broadcast serves the path.
            BindError: the shared server cannot bind.
            ConfigError: no such conf key.
            ClosedError: the runtime is closed.
        """
        props = conf_key if isinstance(conf_key, SourceProps) else self.config.props(conf_key)
        with self._lock:
            self._check_open()
            broadcaster = Broadcaster(self._server, path, props, self._next_id, buffer_length=buffer_length)
            broadcaster.start()
            self._broadcasters = [b for b in self._broadcasters if not b.closed] + [broadcaster]
        return broadcaster

    @property
    def server_address(self) -> tuple[str, int] | None:
        """The shared server's bound (host, port) while it runs."""
        return self._server.address

    def _get(self, name: str) -> Stream:
        try:
            return self._streams[name]
        except KeyError:
            raise StreamNotFound(f"stream {name} is not found", name=name) from None

    def _make_source(self, stream: Stream) -> Source:
        definition, props = stream.definition, stream.props
        next_id = self._next_id
        if props.is_server:
            return ServerRoute(self._server, stream, definition.name, definition.datasource, props, next_id)
        return ClientSource(stream, definition.name, definition.datasource, props, next_id)

    def _next_id(self) -> int:
        return next(self._ids)  # itertools.count is atomic under the GIL

    # -- lifecycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClosedError("the runtime is closed")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`close`, or SIGINT/SIGTERM when called in the main thread.

        A signal closes the runtime gracefully. Returns True once closed,
        False if ``timeout`` (seconds; None: no limit) passed first.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._closed.wait(timeout)
        waiter = self._signals = SignalWait()  # close() wakes it (see ekws.signals)
        waiter.install()
        try:
            name = waiter.wait(self._closed.is_set, timeout)
            if name is not None:
                logger.info("received %s, closing", name)
                self.close()
        finally:
            self._signals = None
            waiter.restore()
        return self._closed.is_set()

    def close(self) -> None:
        """Close every subscription and stop every source and the server. Idempotent."""
        with self._lock:
            if self._state is _State.CLOSED:
                return
            self._state = _State.CLOSED
            streams = list(self._streams.values())
            broadcasters, self._broadcasters = self._broadcasters, []
        for broadcaster in broadcasters:
            broadcaster.close()
        for stream in streams:
            stream.close()
        self._closed.set()
        waiter = self._signals
        if waiter is not None:
            waiter.wake()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
