"""A stream: decodes what its source receives and fans it out to subscriptions.

The stream is the :class:`~ekws.message.Sink` its source feeds. It owns the
metrics eKuiper reports for a source, starts the source with the first
subscription and stops it with the last.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .codec import Decoder
from .config import SourceProps
from .ddl import StreamDef
from .errors import DecodeError, EkwsError
from .message import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, Message, Peer, Source, Status
from .subscription import OnError, OnMessage, OnStatus, Subscription

logger = logging.getLogger(__name__)

_CONNECTION_STATUS = {CONNECTED: 1, CONNECTING: 0, DISCONNECTED: -1, STOPPED: -1}


class Stream:
    """One defined stream, its source while subscribed, and its metrics."""

    def __init__(self, definition: StreamDef, props: SourceProps, decoder: Decoder,
                 make_source: Callable[[Stream], Source]) -> None:
        self.definition = definition
        self.name = definition.name
        self.props = props
        self._decode = decoder
        self._make_source = make_source
        self._source: Source | None = None
        # Lifecycle lock: subscribe/unsubscribe and source start/stop. The hot
        # path never takes it; it reads the immutable _subs tuple. Reentrant:
        # a source that fails to start closes its subscription under it.
        self._lifecycle = threading.RLock()
        self._subs: tuple[Subscription, ...] = ()
        # Closed subscriptions still count in the totals: kept until their
        # worker has delivered the last message, then folded into _done.
        self._retired: list[Subscription] = []
        self._done = {"delivered": 0, "dropped": 0, "failed": 0}
        self._count_lock = threading.Lock()
        self.records_in = 0
        self.decode_errors = 0
        self.errors = 0
        self.last_exception: str | None = None
        self.last_exception_time: float | None = None
        self.state = STOPPED
        self.last_error: str | None = None
        self.last_connected: float | None = None
        self.last_disconnected: float | None = None
        self.reconnects = 0
        self.connections = 0
        self.connections_total = 0

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(self, on_message: OnMessage, on_error: OnError | None = None,
                  on_status: OnStatus | None = None, *, buffer_length: int | None = None,
                  overflow: str | None = None) -> Subscription:
        sub = Subscription(self.name, on_message, on_error, on_status,
                           buffer_length=buffer_length or self.props.buffer_length,
                           overflow=overflow or self.props.overflow, on_close=self._unsubscribe)
        with self._lifecycle:
            sub.start()
            self._subs = (*self._subs, sub)
            if self._source is None:
                source = self._make_source(self)
                try:
                    source.start()
                except BaseException:
                    self._subs = tuple(s for s in self._subs if s is not sub)
                    sub.close()
                    raise
                self._source = source
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lifecycle:
            if sub not in self._subs:
                return
            self._subs = tuple(s for s in self._subs if s is not sub)
            self._retired.append(sub)
            if not self._subs and self._source is not None:
                source, self._source = self._source, None
                source.stop()

    def close(self) -> None:
        """Close every subscription (which stops the source)."""
        for sub in self._subs:
            sub.close()

    # -- the Sink the source feeds ---------------------------------------------------------

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        decode = self._decode
        messages: list[Message] = []
        for payload in payloads:
            try:
                records = decode(payload)
            except DecodeError as exc:
                self._decode_failed(peer, exc)
                continue
            for record in records:
                messages.append(Message(record, peer, timestamp))
        if not messages:
            return
        with self._count_lock:
            self.records_in += len(messages)
        for sub in self._subs:
            sub.offer(messages)

    def _decode_failed(self, peer: Peer, exc: DecodeError) -> None:
        error = DecodeError(f"stream {self.name}: message from {peer.address} "
                            f"(connection {peer.id}) dropped: {exc}")
        with self._count_lock:
            self.decode_errors += 1
        logger.warning("%s", error)
        self.report_error(error)

    def report_error(self, exc: EkwsError) -> None:
        with self._count_lock:
            self.errors += 1
            self.last_exception = str(exc)
            self.last_exception_time = time.time()
        for sub in self._subs:
            sub.notify(exc)

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        now = time.time()
        if state == CONNECTED:
            if self.last_connected is not None:
                self.reconnects += 1
            self.last_connected = now
            self.last_error = None
        elif state in (DISCONNECTED, STOPPED) and self.state == CONNECTED:
            self.last_disconnected = now
        if error is not None:
            self.last_error = error
        self.state = state
        status = Status(self.name, state, now, error, url, attempt)
        logger.info("stream %s: %s%s", self.name, state, f" ({error})" if error else "")
        for sub in self._subs:
            sub.notify(status)

    def connection_opened(self, peer: Peer) -> None:
        with self._count_lock:
            self.connections += 1
            self.connections_total += 1

    def connection_closed(self, peer: Peer) -> None:
        with self._count_lock:
            self.connections -= 1

    # -- metrics -----------------------------------------------------------------------

    def _fold_retired(self) -> None:
        with self._lifecycle:
            for sub in [s for s in self._retired if s.finished]:
                self._retired.remove(sub)
                self._done["delivered"] += sub.delivered
                self._done["dropped"] += sub.dropped
                self._done["failed"] += sub.failed
                if (sub.last_exception_time or 0.0) > (self.last_exception_time or 0.0):
                    self.last_exception = sub.last_exception
                    self.last_exception_time = sub.last_exception_time

    def metrics(self) -> dict[str, Any]:
        """eKuiper's source metrics plus ekws's own, as a plain dict."""
        self._fold_retired()
        subs = self._subs
        every = (*self._retired, *subs)
        done = self._done
        failed = done["failed"] + sum(s.failed for s in every)
        last = max((s for s in every if s.last_exception_time),
                   key=lambda s: s.last_exception_time or 0.0, default=None)
        last_exception, last_time = self.last_exception, self.last_exception_time
        if last is not None and (last_time is None or (last.last_exception_time or 0.0) > last_time):
            last_exception, last_time = last.last_exception, last.last_exception_time
        return {
            "state": self.state,
            "last_error": self.last_error,
            "records_in_total": self.records_in,
            "records_out_total": done["delivered"] + sum(s.delivered for s in every),
            "exceptions_total": self.errors + failed,
            "last_exception": last_exception,
            "last_exception_time": _ms(last_time),
            "decode_errors_total": self.decode_errors,
            "connection_status": _CONNECTION_STATUS.get(self.state, -1),
            "connection_last_connected_time": _ms(self.last_connected),
            "connection_last_disconnected_time": _ms(self.last_disconnected),
            "buffer_length": sum(s.buffered for s in subs),
            "dropped_total": done["dropped"] + sum(s.dropped for s in every),
            "connections": self.connections,
            "connections_total": self.connections_total,
            "reconnects_total": self.reconnects,
            "subscriptions": len(subs),
        }


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)
