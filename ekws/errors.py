"""The exceptions ekws raises.

Every error derives from :class:`EkwsError`, so one ``except ekws.EkwsError``
catches everything the library raises on purpose. Dependency exceptions
(websocket-client, werkzeug, ssl, yaml) are translated at the boundary and
chained with ``raise ... from exc``: a user never imports a dependency to
catch an error.

::

    EkwsError
    ├── ConfigError (also ValueError)    bad file, key or value; names file:key
    ├── ParseError (also ValueError)     a statement does not parse; names line and column
    │   ├── DDLError                     bad CREATE STREAM
    │   └── SQLError                     bad rule SQL, or a construct ekws does not run
    ├── DecodeError                      one message could not be decoded
    ├── NotFound (also KeyError)         no stream, rule or conf key has this name
    ├── Exists                           the name is taken
    ├── InUse                            something still uses it (a rule reads the stream)
    ├── ReadOnly                         declared in a file; edit the file, not the API
    ├── StreamError                      unknown stream, duplicate name, in use
    │   ├── StreamNotFound (also NotFound)
    │   └── StreamExists (also Exists)
    ├── ConnectError                     client dial or handshake failed
    ├── ProtocolError                    a peer broke the WebSocket protocol
    │   └── MessageTooBig                a message over maxMessageSize
    ├── ServerError                      the shared server cannot serve
    │   └── BindError                    port in use, permission denied
    ├── ClosedError                      the object was closed already
    ├── CallbackError                    a user callback raised (cause attached)
    └── ErrorsCoalesced                  errors summed up while on_error was behind
"""

from __future__ import annotations

from typing import Any


class EkwsError(Exception):
    """Root of every exception raised by ekws."""


class ConfigError(EkwsError, ValueError):
    """A configuration file, key or value is wrong.

    The message names the file and key and says what was expected.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ":".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message  # without the place: another layer (an action's props) names it its way
        self.file = file
        self.key = key


class ParseError(EkwsError, ValueError):
    """A statement could not be parsed: a ``CREATE STREAM`` or a rule's SQL.

    ``line`` and ``column`` are 1-based and point at the offending token (0
    when the problem has no place, e.g. the SQL is not a string); the
    message ends with ``at line L, column C``. ``reason`` is the message
    without the place, for a layer that words it its own way. Both front
    ends share one lexer (:mod:`ekws.sqllex`).
    """

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        super().__init__(f"{message} at line {line}, column {column}" if line else message)
        self.reason = message
        self.line = line
        self.column = column


class DDLError(ParseError):
    """A ``CREATE STREAM`` (or another stream statement) could not be parsed."""


class SQLError(ParseError):
    """A rule's SQL is malformed or uses what ekws does not run (also ``ekws.rules.sql.SQLError``)."""


class DecodeError(EkwsError):
    """One message could not be decoded; the connection is kept."""


class _Named(EkwsError):
    """A domain error about one named thing; ``name`` says which."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:  # KeyError (a NotFound) would quote the message
        return str(self.args[0]) if self.args else ""


class NotFound(_Named, KeyError):
    """No stream, rule or conf key has this name."""


class Exists(_Named):
    """The name is taken already."""


class InUse(_Named):
    """The thing is still used (a rule reads the stream, a stream uses the conf key)."""


class ReadOnly(_Named):
    """The thing is declared in a file; change the file, not the API."""


class StreamError(EkwsError):
    """A stream operation is not possible (unknown name, duplicate, in use)."""


class StreamNotFound(StreamError, NotFound):
    """No stream has this name."""


class StreamExists(StreamError, Exists):
    """A stream with this name exists already."""


class ConnectError(EkwsError):
    """A client-mode dial, TLS handshake or WebSocket handshake failed.

    When the server answered the upgrade with another HTTP status,
    ``status`` is that status and ``body`` the response body (``ekws tail``
    shows the service's own words for a refusal); otherwise ``status`` is
    None and ``body`` empty.
    """

    def __init__(self, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ProtocolError(EkwsError):
    """A peer broke the WebSocket protocol; ``code`` is the close code to send."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code
        # Frames completed before the violation, in the same chunk: still
        # delivered, the error fails only what follows.
        self.frames: list[tuple[int, bytes]] = []


class MessageTooBig(ProtocolError):
    """A message is larger than ``maxMessageSize`` (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class ServerError(EkwsError):
    """The shared server-mode WebSocket server cannot serve a stream."""


class BindError(ServerError):
    """The shared server could not bind its address (port in use, permission)."""


class ClosedError(EkwsError):
    """The runtime or subscription was closed and cannot be used again."""


class CallbackError(EkwsError):
    """A user callback raised; what ``on_error`` receives for it.

    The exception the callback raised is ``__cause__``; ``callback`` names the
    callback (``"on_message"`` or ``"on_status"``) and ``item`` is what it was
    called with (the :class:`~ekws.Message` or :class:`~ekws.Status`).
    """

    def __init__(self, message: str, *, callback: str, item: Any) -> None:
        super().__init__(message)
        self.callback = callback
        self.item = item


class ErrorsCoalesced(EkwsError):
    """Errors that arrived while a subscription's ``on_error`` was behind, as one.

    ``count`` errors were not delivered one by one; ``last`` is the newest of
    them (also ``__cause__``). Keeps one noisy peer from queueing without bound.
    """

    def __init__(self, count: int, last: EkwsError) -> None:
        super().__init__(f"{count} errors coalesced while on_error was behind; the last: {last}")
        self.count = count
        self.last = last
        self.__cause__ = last
