"""Configuration: ``etc/sources/websocket.yaml``, conf keys and env overrides.

Pure functions over plain values: files are read once, merged and checked, and
the result is a tree of frozen dataclasses. Every error is a
:class:`~ekws.errors.ConfigError` that names the file, the key and what was
expected.

TODO(loader): implemented by the config work; the dataclasses below are the
contract the rest of the package relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Overflow = Literal["block", "dropOldest", "dropNewest"]


@dataclass(frozen=True)
class Reconnect:
    """Client-mode reconnection policy (seconds; ``max_retries`` 0 = forever)."""

    initial_delay: float = 0.1
    max_delay: float = 10.0
    max_retries: int = 0


@dataclass(frozen=True)
class SourceProps:
    """The props of one conf key, ``default`` overlaid by the named key.

    ``addr`` empty means server mode; ``"host:port"`` means client mode.
    Durations are seconds.
    """

    name: str = "default"
    addr: str = ""
    # client mode
    scheme: str = "ws"
    request_header: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    insecure_skip_verify: bool = False
    root_ca_path: str | None = None
    certification_path: str | None = None
    private_key_path: str | None = None
    tls_min_version: str = "1.2"
    connect_timeout: float = 10.0
    reconnect: Reconnect = field(default_factory=Reconnect)
    ping_interval: float = 30.0  # 0 disables keepalive pings
    ping_timeout: float = 10.0
    open_messages: tuple[str, ...] = ()
    max_message_size: int = 1 << 20
    # server mode
    max_connections: int = 0  # 0 = unlimited
    allowed_origins: tuple[str, ...] = ()  # empty = any Origin
    auth_token: str | None = None
    # subscriptions
    buffer_length: int = 1024
    overflow: Overflow = "block"

    @property
    def is_server(self) -> bool:
        return not self.addr


@dataclass(frozen=True)
class TlsConfig:
    """``source.httpServerTls``: server certificate, optional client CA."""

    certfile: str
    keyfile: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """The reserved ``source:`` block: the shared server-mode server."""

    http_server_ip: str = "0.0.0.0"
    http_server_port: int = 10081
    http_server_tls: TlsConfig | None = None


@dataclass(frozen=True)
class WebsocketConfig:
    """Everything in ``sources/websocket.yaml`` after env overrides."""

    path: str | None = None  # the file it came from; None for built-in defaults
    conf_keys: dict[str, SourceProps] = field(default_factory=lambda: {"default": SourceProps()})
    server: ServerConfig = field(default_factory=ServerConfig)

    def props(self, conf_key: str | None) -> SourceProps:
        """The props of ``conf_key`` (case-insensitive; None means ``default``)."""
        raise NotImplementedError
