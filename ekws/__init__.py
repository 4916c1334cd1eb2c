"""eKuiper's WebSocket source connector for edge devices, as a Python SDK and service.

ekws receives JSON (or binary, or delimited) messages over WebSocket and
hands every decoded record to your callbacks, the way an eKuiper stream of
``TYPE="websocket"`` would: as a client that dials a server and reconnects
(``addr: host:port``), or as a server that mounts paths many devices can
feed (``addr: ""``). Streams are declared with eKuiper's ``CREATE STREAM``
and configured by eKuiper's ``etc/sources/websocket.yaml``.

Main entry points:

* :class:`Runtime` -- owns streams, their sources and the shared server; a
  context manager. ``Runtime(config_dir="etc")``.
* ``Runtime.create_stream(sql)`` -- define a stream from ``CREATE STREAM``.
* ``Runtime.subscribe(name, on_message, on_error=None, on_status=None)`` --
  deliver its records; returns a :class:`Subscription` (a context manager).
* :class:`Message` -- what ``on_message`` receives: ``data`` (the record)
  and ``meta`` (stream, datasource, peer, connection, timestamp in ms).
* :class:`Status` / :class:`State` -- connection changes for ``on_status``.
* ``Runtime.status(name)`` -- eKuiper's metrics for a stream.
* ``Runtime.broadcast(path)`` -- the reverse direction: a :class:`Broadcaster`
  sends text to every client of a path on the shared server.
* The ``ekws`` command -- ``ekws run -c etc`` runs the streams of a config
  folder and prints their records as JSON lines.

A device script::

    import ekws

    def on_message(msg: ekws.Message) -> None:
        print(msg.data, msg.meta["peer"])

    with ekws.Runtime(config_dir="etc") as rt:
        rt.create_stream('CREATE STREAM demo() WITH (DATASOURCE="/api/data", TYPE="websocket")')
        with rt.subscribe("demo", on_message):
            rt.wait()  # until SIGINT/SIGTERM or rt.close()

Every error ekws raises derives from :class:`EkwsError` (see
:mod:`ekws.errors`). Time units: ``Message.timestamp`` and metrics
``*_time`` are int milliseconds since the epoch, ``Status.time`` float
seconds (see :mod:`ekws.message`).
"""

from __future__ import annotations

import logging

from .config import SourceProps, WebsocketConfig
from .ddl import StreamDef
from .errors import (
    BindError,
    CallbackError,
    ClosedError,
    ConfigError,
    ConnectError,
    DDLError,
    DecodeError,
    EkwsError,
    ErrorsCoalesced,
    MessageTooBig,
    ParseError,
    ProtocolError,
    ServerError,
    StreamError,
    StreamExists,
    StreamNotFound,
)
from .message import Message, Peer, State, Status
from .runtime import Runtime
from .subscription import Subscription
from .wire.broadcast import Broadcaster

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BindError",
    "Broadcaster",
    "CallbackError",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "DDLError",
    "DecodeError",
    "EkwsError",
    "ErrorsCoalesced",
    "Message",
    "MessageTooBig",
    "ParseError",
    "Peer",
    "ProtocolError",
    "Runtime",
    "ServerError",
    "SourceProps",
    "State",
    "Status",
    "StreamDef",
    "StreamError",
    "StreamExists",
    "StreamNotFound",
    "Subscription",
    "WebsocketConfig",
    "__version__",
]
