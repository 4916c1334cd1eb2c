"""ekws: eKuiper's WebSocket source connector for edge devices."""

from __future__ import annotations

import logging

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
    "MessageTooBig",
    "ProtocolError",
    "ServerError",
    "StreamError",
    "StreamExists",
    "StreamNotFound",
    "__version__",
]
