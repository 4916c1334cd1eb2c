"""The values that travel down the pipeline, and the contract of a source.

Wire modules (``client``, ``server``) know nothing of streams: they hand raw
payloads to a :class:`Sink` together with the :class:`Peer` they came from.
The stream implements the sink, decodes, and fans :class:`Message` objects
out to subscriptions. Keeping these types here lets data flow one way.

Time units in the public API, one per value:

* :attr:`Message.timestamp` and ``meta["timestamp"]``: ``int`` milliseconds
  since the epoch (eKuiper's unit for tuple timestamps).
* :attr:`Status.time`: ``float`` seconds since the epoch (``time.time()``).
* metrics ``*_time`` (``Runtime.status()``): ``int`` milliseconds since the
  epoch, or None, as eKuiper reports them.
* durations in configuration and arguments (``connectTimeout``,
  ``reconnect.*``, ``pingInterval``, ``drain_timeout``): ``float`` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import EkwsError


class State(str, enum.Enum):
    """A source's connection state, as :attr:`Status.state` and the ``state`` metric.

    A ``str`` enum: ``State.CONNECTED == "connected"``, and it prints and
    serialises to JSON as its value.
    """

    CONNECTING = "connecting"  # client mode: dialling (before every attempt)
    CONNECTED = "connected"  # client: handshake done; server: path mounted
    DISCONNECTED = "disconnected"  # client mode: a dial failed or the connection dropped
    STOPPED = "stopped"  # the source ended: closed, or retries exhausted
    # Server mode, one peer (Status.peer): never a stream's own state or metric.
    PEER_CONNECTED = "peer_connected"  # a peer's upgrade is done; its records follow
    PEER_DISCONNECTED = "peer_disconnected"  # a peer left: Status.close_code says how

    def __str__(self) -> str:  # "connected", not "State.CONNECTED", on every Python
        return self.value

    def __format__(self, spec: str) -> str:  # f"{state}" likewise (3.9-3.11 differ from 3.12+)
        return self.value.__format__(spec)


# The wire modules use these names.
CONNECTING = State.CONNECTING
CONNECTED = State.CONNECTED
DISCONNECTED = State.DISCONNECTED
STOPPED = State.STOPPED
PEER_CONNECTED = State.PEER_CONNECTED
PEER_DISCONNECTED = State.PEER_DISCONNECTED


@dataclass(frozen=True)
class Peer:
    """One WebSocket connection feeding a stream."""

    stream: str
    datasource: str
    address: str  # the remote side, "host:port"
    id: int  # unique per connection within a runtime


class Message:
    """One decoded record and where it came from.

    ``meta`` is built on access: the hot path only stores the record, the
    peer and the time. ``timestamp`` is ``int`` milliseconds since the
    epoch: the receive time, or the record's event time when the stream
    declares ``TIMESTAMP``. ``data`` belongs to this message's subscription:
    a callback may change it without affecting another subscription.
    """

    __slots__ = ("data", "peer", "timestamp")

    def __init__(self, data: dict[str, Any], peer: Peer, timestamp: int) -> None:
        self.data = data
        self.peer = peer
        self.timestamp = timestamp  # ms since the epoch

    @property
    def meta(self) -> dict[str, Any]:
        peer = self.peer
        return {
            "stream": peer.stream,
            "datasource": peer.datasource,
            "peer": peer.address,
            "connection": peer.id,
            "timestamp": self.timestamp,
        }

    def __repr__(self) -> str:
        return f"Message(data={self.data!r}, meta={self.meta!r})"


class Encoded:
    """A received payload not decoded yet, queued for a subscription that decodes it itself.

    A stream with one queued subscription hands its worker these instead of
    :class:`Message` objects (see :mod:`ekws.stream`). Internal: callbacks
    only ever see messages.
    """

    __slots__ = ("payload", "peer", "timestamp")

    def __init__(self, payload: bytes | str, peer: Peer, timestamp: int) -> None:
        self.payload = payload
        self.peer = peer
        self.timestamp = timestamp  # receive time, ms since the epoch


@dataclass(frozen=True)
class Status:
    """A connection-state change of a stream's source.

    Client mode: ``connecting`` before every dial, ``connected`` after a
    handshake, ``disconnected`` (with ``error``) after a failed dial or a
    drop, ``stopped`` when the source ends (closed, or retries exhausted).
    Server mode: ``connected`` while the path is mounted, ``stopped`` after,
    and for each peer (``peer`` set) ``peer_connected`` once its upgrade is
    done and ``peer_disconnected`` when it leaves, with ``close_code``: the
    peer's close code (1000, 1001, ...; 1005 when its close frame had none),
    1006 when TCP ended without a close frame, or the code ekws failed the
    connection with (1002 protocol error, 1007 bad UTF-8, 1009 too big, 1011
    keepalive timeout), and then ``error`` says why. Peer events leave the
    stream's state alone. ``time`` is when it happened, ``float`` seconds
    since the epoch.
    """

    stream: str
    state: State
    time: float  # seconds since the epoch
    error: str | None = None
    url: str | None = None
    attempt: int = 0
    peer: Peer | None = None  # peer_connected / peer_disconnected: the connection
    close_code: int | None = None  # peer_disconnected: how it ended (see above)


class Sink(Protocol):
    """What a source feeds: implemented by :class:`ekws.stream.Stream`."""

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        """Decode and deliver payloads received on one connection, in order.

        A text message arrives as ``str`` (UTF-8 checked and decoded once, by
        the wire), a binary message as ``bytes``.

        May block (``overflow: block``): that is the back-pressure a wire
        thread passes on to its socket.
        """

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        """Record a connection-state change (see :class:`Status`)."""

    def report_error(self, exc: EkwsError) -> None:
        """Count and forward an error that did not stop the source."""

    def connection_opened(self, peer: Peer) -> None:
        """A server-mode peer connected."""

    def connection_closed(self, peer: Peer, code: int | None = None, error: str | None = None) -> None:
        """A server-mode peer went away with close ``code`` (``error``: why ekws failed it)."""


class Source(Protocol):
    """A running source: a client dial loop or a mounted server path."""

    def start(self) -> None: ...

    def stop(self) -> None: ...
