"""A stream: decodes what its source receives and fans it out to subscriptions.

The stream is the :class:`~ekws.message.Sink` its source feeds. It owns the
metrics eKuiper reports for a source, starts the source with the first
subscription and stops it with the last: every subscription of a stream
shares one source (one dial, one mounted path), whatever ``SHARED`` says.

* Where decoding happens: with one queued subscription (the usual case) the
  wire thread only queues the payloads (:class:`~ekws.message.Encoded`) and
  the subscription's worker decodes each one just before its callback, so a
  record is built, delivered and freed on one thread while it is in that
  core's cache, and the buffer holds payloads, not trees of objects that the
  garbage collector would walk again and again (16 KiB records: ~10% less
  CPU per message). ``bufferLength`` then counts payloads. With inline
  delivery or several subscriptions the wire thread decodes, once.
* Records: with one subscription its callback gets the decoded record as is
  (the hot path copies nothing); with more, each further subscription gets
  its own deep copy (dicts and lists), made before any is offered, so a
  callback may change its record without affecting another subscription.
* ``TIMESTAMP``: ``Message.timestamp`` is taken from the named field (see
  :mod:`ekws.timestamps`); a record without a valid one is a decode error.
* Locks: ``_lock`` guards the subscription list and the source reference and
  is never held across I/O, so ``status()`` never waits behind a stop.
  ``_switch`` serialises starting and stopping the source (a stop joins the
  source's thread): only subscribe and unsubscribe take it.
* Decode errors are counted one by one; their WARNING log lines are
  rate-limited (:mod:`ekws.throttle`).
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
from .errors import ClosedError, DecodeError, EkwsError
from .message import Encoded, Message, Peer, Source, State, Status
from .subscription import OnError, OnMessage, OnStatus, Subscription
from .throttle import INTERVAL, Throttle
from .timestamps import make_event_time

logger = logging.getLogger(__name__)

_CONNECTION_STATUS = {State.CONNECTED: 1, State.CONNECTING: 0, State.DISCONNECTED: -1, State.STOPPED: -1}


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
        self._event_time = make_event_time(definition.timestamp, definition.timestamp_format)
        self._lock = threading.Lock()  # _subs, _source, _retired, _closed; never held across I/O
        # Held across source start/stop (a stop joins a thread). Reentrant, defensively: a
        # start or stop that ends up closing a subscription must not deadlock on it.
        self._switch = threading.RLock()
        self._closed = False
        # The hot path reads the immutable _subs tuple without a lock.
        self._subs: tuple[Subscription, ...] = ()
        # Closed subscriptions still count in the totals: kept until their
        # worker has delivered the last message, then folded into _done.
        self._retired: list[Subscription] = []
        self._done = {"delivered": 0, "extra": 0, "dropped": 0, "failed": 0, "coalesced": 0}
        self._count_lock = threading.Lock()
        self._decode_log = Throttle()
        self.records_in = 0
        self.decode_errors = 0
        self.errors = 0
        self.last_exception: str | None = None
        self.last_exception_time: float | None = None  # seconds since the epoch
        self.state = State.STOPPED
        self.last_error: str | None = None
        self.last_connected: float | None = None  # seconds since the epoch
        self.last_disconnected: float | None = None
        self.reconnects = 0
        self.connections = 0
        self.connections_total = 0

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(self, on_message: OnMessage, on_error: OnError | None = None,
                  on_status: OnStatus | None = None, *, buffer_length: int | None = None,
                  overflow: str | None = None, delivery: str | None = None) -> Subscription:
        """Add a subscription; the first one starts the source.

        Raises:
            ClosedError: the stream was dropped or its runtime closed.
        """
        sub = Subscription(self.name, on_message, on_error, on_status,
                           buffer_length=buffer_length or self.props.buffer_length,
                           overflow=overflow or self.props.overflow,
                           delivery=delivery or self.props.delivery, on_close=self._unsubscribe,
                           decode=self._decode_encoded)
        sub.start()
        try:
            with self._switch:
                with self._lock:
                    if self._closed:
                        raise ClosedError(f"stream {self.name!r} was dropped or its runtime closed")
                    self._subs = (*self._subs, sub)
                if self._source is None:  # only changed under _switch
                    source = self._make_source(self)
                    source.start()
                    with self._lock:
                        self._source = source
        except BaseException:
            with self._lock:
                self._subs = tuple(s for s in self._subs if s is not sub)
            sub.close()
            raise
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._switch:
            with self._lock:
                if sub not in self._subs:
                    return
                self._subs = tuple(s for s in self._subs if s is not sub)
                self._retired.append(sub)
                if self._subs or self._source is None:
                    return
                source, self._source = self._source, None
            source.stop()  # under _switch only: status() and metrics() do not wait

    def close(self) -> None:
        """Close every subscription (which stops the source); refuse new ones."""
        with self._lock:
            self._closed = True
            subs = self._subs
        for sub in subs:
            sub.close()
        pending = self._decode_log.flush()
        if pending.summary:
            self._log_decode_summary(pending.summary, pending.last)

    # -- the Sink the source feeds ---------------------------------------------------------

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        subs = self._subs
        if len(subs) == 1 and subs[0].decodes:
            with self._count_lock:
                self.records_in += len(payloads)  # one record each; the worker corrects the rest
            subs[0].offer_encoded([Encoded(payload, peer, timestamp) for payload in payloads])
            return
        messages = self._decode_all(peer, payloads, timestamp)
        if not messages:
            return
        with self._count_lock:
            self.records_in += len(messages)
        if len(subs) == 1:
            subs[0].offer(messages)
            return
        # Every copy is made before any subscription gets its batch: the first
        # one's callback may start changing its records at once.
        batches = [messages, *(_copy_messages(messages) for _ in subs[1:])]
        for sub, batch in zip(subs, batches):
            sub.offer(batch)

    def _decode_encoded(self, item: Encoded) -> list[Message]:
        """Decode one payload for a subscription's worker (see ``Subscription.records_extra``)."""
        return self._decode_all(item.peer, [item.payload], item.timestamp)

    def _decode_all(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> list[Message]:
        """The messages in ``payloads``; every decode error is counted and reported."""
        decode = self._decode
        event_time = self._event_time
        messages: list[Message] = []
        for payload in payloads:
            try:
                records = decode(payload)
            except DecodeError as exc:
                self._decode_failed(peer, exc, "message")
                continue
            if event_time is None:
                for record in records:
                    messages.append(Message(record, peer, timestamp))
            else:
                for record in records:
                    try:
                        messages.append(Message(record, peer, event_time(record)))
                    except DecodeError as exc:
                        self._decode_failed(peer, exc, "record")
        return messages

    def _decode_failed(self, peer: Peer, exc: DecodeError, what: str) -> None:
        error = DecodeError(f"stream {self.name}: {what} from {peer.address} "
                            f"(connection {peer.id}) dropped: {exc}")
        with self._count_lock:
            self.decode_errors += 1
        verdict = self._decode_log.hit(str(error))
        if verdict.full:
            logger.warning("%s (repeats are summarised every %.0f s)", error, INTERVAL)
        elif verdict.summary:
            self._log_decode_summary(verdict.summary, verdict.last)
        self.report_error(error)

    def _log_decode_summary(self, count: int, last: str) -> None:
        logger.warning("stream %s: %d more decode errors since the last report; the last: %s",
                       self.name, count, last)

    def report_error(self, exc: EkwsError) -> None:
        with self._count_lock:
            self.errors += 1
            self.last_exception = str(exc)
            self.last_exception_time = time.time()
        for sub in self._subs:
            sub.notify(exc)

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        state = State(state)
        now = time.time()
        if state is State.CONNECTED:
            if self.last_connected is not None:
                self.reconnects += 1
            self.last_connected = now
            self.last_error = None
        elif state in (State.DISCONNECTED, State.STOPPED) and self.state is State.CONNECTED:
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
        self._peer_event(Status(self.name, State.PEER_CONNECTED, time.time(), peer=peer))

    def connection_closed(self, peer: Peer, code: int | None = None, error: str | None = None) -> None:
        with self._count_lock:
            self.connections -= 1
        self._peer_event(Status(self.name, State.PEER_DISCONNECTED, time.time(), error, peer=peer,
                                close_code=code))

    def _peer_event(self, status: Status) -> None:
        """Tell every subscription's ``on_status`` of a server-mode peer (the stream's state is unchanged)."""
        for sub in self._subs:
            sub.notify(status)

    # -- metrics -----------------------------------------------------------------------

    def _fold_retired(self) -> tuple[tuple[Subscription, ...], tuple[Subscription, ...]]:
        """Fold finished subscriptions into the totals; return (subscribed, retired)."""
        with self._lock:
            for sub in [s for s in self._retired if s.finished]:
                self._retired.remove(sub)
                self._done["delivered"] += sub.delivered
                self._done["extra"] += sub.records_extra
                self._done["dropped"] += sub.dropped
                self._done["failed"] += sub.failed
                self._done["coalesced"] += sub.coalesced
                if (sub.last_exception_time or 0.0) > (self.last_exception_time or 0.0):
                    self.last_exception = sub.last_exception
                    self.last_exception_time = sub.last_exception_time
            return self._subs, tuple(self._retired)

    def metrics(self) -> dict[str, Any]:
        """eKuiper's source metrics plus ekws's own, as a plain dict.

        Never waits for I/O (a source stopping, a callback draining). Times
        (``*_time``) are ``int`` milliseconds since the epoch, or None.
        """
        subs, retired = self._fold_retired()
        every = (*retired, *subs)
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
            "records_in_total": self.records_in + done["extra"] + sum(s.records_extra for s in every),
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
            "notices_coalesced_total": done["coalesced"] + sum(s.coalesced for s in every),
            "connections": self.connections,
            "connections_total": self.connections_total,
            "reconnects_total": self.reconnects,
            "subscriptions": len(subs),
        }


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _copy_messages(messages: list[Message]) -> list[Message]:
    return [Message(_copy_record(msg.data), msg.peer, msg.timestamp) for msg in messages]


def _copy_record(record: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the dicts, lists and bytearrays in a decoded record.

    Iterative, so a record nested as deep as the JSON parser allows cannot
    hit the recursion limit in a wire thread. Other values (str, numbers,
    bytes, None) are immutable and shared.
    """
    root = dict(record)
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        keys = node.keys() if type(node) is dict else range(len(node))
        for key in keys:  # replacing values of existing keys does not resize a dict
            value = node[key]
            kind = type(value)
            if kind is dict or kind is list:
                value = node[key] = kind(value)
                stack.append(value)
            elif kind is bytearray:
                node[key] = bytearray(value)
    return root
