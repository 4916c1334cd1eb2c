"""The values that travel down the pipeline, and the contract of a source.

Wire modules (``client``, ``server``) know nothing of streams: they hand raw
payloads to a :class:`Sink` together with the :class:`Peer` they came from.
The stream implements the sink, decodes, and fans :class:`Message` objects
out to subscriptions. Keeping these types here lets data flow one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .errors import EkwsError

CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
STOPPED = "stopped"


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
    peer and the receive time.
    """

    __slots__ = ("data", "peer", "timestamp")

    def __init__(self, data: dict[str, Any], peer: Peer, timestamp: int) -> None:
        self.data = data
        self.peer = peer
        self.timestamp = timestamp  # receive time, ms since the epoch

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


@dataclass(frozen=True)
class Status:
    """A connection-state change of a stream's source.

    Client mode: ``connecting`` before every dial, ``connected`` after a
    handshake, ``disconnected`` (with ``error``) after a failed dial or a
    drop, ``stopped`` when the source ends (closed, or retries exhausted).
    Server mode: ``connected`` while the path is mounted, ``stopped`` after.
    """

    stream: str
    state: str
    time: float  # seconds since the epoch
    error: str | None = None
    url: str | None = None
    attempt: int = 0


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

    def connection_closed(self, peer: Peer) -> None:
        """A server-mode peer went away."""


class Source(Protocol):
    """A running source: a client dial loop or a mounted server path."""

    def start(self) -> None: ...

    def stop(self) -> None: ...
