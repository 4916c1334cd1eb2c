"""ekws: eKuiper's WebSocket source connector for edge devices."""

from __future__ import annotations

import logging

from .config import SourceProps, WebsocketConfig
from .ddl import StreamDef
from .errors import (
    BindError,
    ClosedError,
    ConfigError,
    ConnectError,
    DDLError,
    DecodeError,
    EkwsError,
    MessageTooBig,
    ProtocolError,
    ServerError,
    StreamError,
    StreamExists,
    StreamNotFound,
)
from .message import Message, Peer, Status
from .runtime import Runtime
from .subscription import Subscription

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BindError",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "DDLError",
    "DecodeError",
    "EkwsError",
    "Message",
    "MessageTooBig",
    "Peer",
    "ProtocolError",
    "Runtime",
    "ServerError",
    "SourceProps",
    "Status",
    "StreamDef",
    "StreamError",
    "StreamExists",
    "StreamNotFound",
    "Subscription",
    "WebsocketConfig",
    "__version__",
]
