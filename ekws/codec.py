"""Message decoding: one WebSocket payload in, a list of records out (the hot path).

:func:`make_decoder` plans the work for a stream once and returns a plain
function of the payload bytes; it never touches a socket. Per stream FORMAT:

* ``json``: a JSON object is one record; an array of objects is one record per
  element, in order (``[]`` is none). Anything else is a
  :class:`~ekws.errors.DecodeError` for that message only. A typed stream then
  converts every record (see :mod:`ekws.schema`).
* ``binary``: ``[{"self": payload}]``, or the single declared BYTEA field.
* ``delimited``: the UTF-8 text (minus one trailing line ending) split by
  DELIMITER: columns ``col0``, ``col1``, ... when schemaless, else the declared
  fields in order, converted; extra columns are dropped, missing ones take their
  DEFAULT. An empty payload is no record.

JSON backends (:data:`JSON_BACKEND`): the standard library by default;
``orjson`` when it is importable and ``EKWS_JSON`` is not ``stdlib``. They give
the same results; where they differ by nature the orjson path defers to the
standard library so behaviour does not depend on the install:

* Text messages arrive as ``str``: the wire checked their UTF-8 once (text
  that is not UTF-8 fails the connection with 1007, RFC 6455 8.1) and the
  decoders parse the ``str`` as is. Binary messages arrive as ``bytes``;
  invalid UTF-8 in one is a DecodeError for that message (the standard
  library decodes the bytes itself first: ``json.loads(bytes)`` would guess
  UTF-16/32 from NUL bytes).
* ``NaN``/``Infinity`` are not JSON: orjson rejects them, and so does the
  standard-library path here. Lone surrogate escapes (``"\\ud800"``) are
  rejected by both.
* Integers beyond 64 bits: orjson silently parses them as a (rounded) float;
  payloads with a run of 19+ digits are therefore parsed by the standard
  library, which keeps exact ``int`` values. Any orjson error is re-parsed by
  the standard library too, so error messages and edge cases (``1e400`` ->
  ``inf``) are the standard library's.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from typing import Any, Callable, Final, Union

from .ddl import StreamDef
from .errors import DecodeError
from .schema import RecordConverter, make_converter


def _import_orjson() -> Any:
    """The orjson module, or None without the [fast] extra.

    Imported by name so that the type check reads the same with or without it.
    """
    try:
        return importlib.import_module("orjson")
    except ImportError:  # pragma: no cover - orjson is an optional extra
        return None


orjson: Any = _import_orjson()

__all__ = ["JSON_BACKEND", "ORJSON_AVAILABLE", "Decoder", "json_loads", "make_decoder"]

logger = logging.getLogger(__name__)

Payload = Union[bytes, str]  # a binary message, or a text message already decoded
Decoder = Callable[[Payload], list[dict[str, Any]]]
Loads = Callable[[Payload], Any]


# --------------------------------------------------------------------------
# JSON backends


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# A prebuilt decoder: json.loads(text, parse_constant=...) would build one per call.
_STDLIB_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_stdlib_decode: Final = _STDLIB_DECODER.decode
# The decoder's scanner (json.scanner.c_make_scanner's, where the C
# accelerator is built), called directly: JSONDecoder.decode wraps it in two
# regex matches and a Python-level raw_decode (120 B objects: ~25% more per second).
_scan: Final[Callable[[str, int], tuple[Any, int]]] = getattr(_STDLIB_DECODER, "scan_once")  # noqa: B009
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# bytes.translate maps digits to "0" and the rest to " "; then one find() spots
# a run of 19+ digits (an integer that may not fit in 64 bits) at C speed.
_DIGITS: Final = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN: Final = b"0" * 19


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) holds a surrogate; iterative, any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if _SURROGATE.search(item):
                return True
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
    return False


def _loads_stdlib(data: Payload) -> Any:
    """Parse JSON with the standard library; invalid UTF-8 or JSON is a DecodeError."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 at byte {exc.start}") from None
    # The fast path takes a document that starts with its value and has only
    # whitespace after it; anything else (an error, leading whitespace) goes
    # through JSONDecoder.decode, whose errors and positions are the reference.
    try:
        value, end = _scan(text, 0)
        if end != len(text) and text[end:].strip(" \t\n\r"):  # only JSON whitespace may follow
            raise ValueError("extra data")
    except (StopIteration, ValueError, RecursionError):
        value = _decode_reference(text)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise DecodeError("invalid JSON: a string holds an unpaired surrogate escape")
    return value


def _decode_reference(text: str) -> Any:
    """JSONDecoder.decode, its errors worded as DecodeError."""
    try:
        return _stdlib_decode(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON at position {exc.pos}: {exc.msg}") from None
    except ValueError as exc:  # NaN/Infinity, or an int longer than int() converts
        raise DecodeError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply") from None


def _loads_orjson(data: Payload) -> Any:
    """Parse JSON with orjson, deferring to the standard library where they differ."""
    # str.translate is slow; encoding an ASCII str is a copy, then bytes.translate.
    raw = data.encode() if isinstance(data, str) else data
    if raw.translate(_DIGITS).find(_LONG_RUN) >= 0:
        return _loads_stdlib(data)  # maybe an integer beyond 64 bits
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _loads_stdlib(data)  # the standard library words the error


def _select_backend() -> tuple[str, Loads]:
    if orjson is not None and os.environ.get("EKWS_JSON", "").lower() != "stdlib":
        return "orjson", _loads_orjson
    return "stdlib", _loads_stdlib


ORJSON_AVAILABLE: Final = orjson is not None
JSON_BACKEND, _loads = _select_backend()
"""The JSON backend in use: ``"orjson"`` or ``"stdlib"`` (chosen at import)."""


def json_loads(data: Payload) -> Any:
    """Parse one JSON document (a ``str``, or UTF-8 bytes) with the chosen backend.

    Raises:
        DecodeError: invalid UTF-8 or invalid JSON (with the position).
    """
    return _loads(data)


# --------------------------------------------------------------------------
# Decoders


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def _records(value: Any) -> list[dict[str, Any]]:
    """The records of a parsed document that is not a single object."""
    if type(value) is not list:
        raise DecodeError(f"expected a JSON object or an array of objects, got {_json_type(value)}")
    for index, item in enumerate(value):
        if type(item) is not dict:
            raise DecodeError(
                f"expected a JSON object or an array of objects, got an array with {_json_type(item)} "
                f"at index {index}"
            )
    return value


def _json_decoder(loads: Loads, convert: RecordConverter | None) -> Decoder:
    if convert is None:

        def decode_json(data: Payload) -> list[dict[str, Any]]:
            value = loads(data)
            if type(value) is dict:
                return [value]
            return _records(value)

        return decode_json

    def decode_typed(data: Payload) -> list[dict[str, Any]]:
        value = loads(data)
        if type(value) is dict:
            return [convert(value)]
        records = _records(value)
        out = []
        for index, record in enumerate(records):
            try:
                out.append(convert(record))
            except DecodeError as exc:
                raise DecodeError(f"record {index}: {exc}") from None
        return out

    return decode_typed


def _binary_decoder(key: str) -> Decoder:
    def decode_binary(data: Payload) -> list[dict[str, Any]]:
        return [{key: data.encode() if type(data) is str else data}]  # a text frame: its UTF-8 bytes

    return decode_binary


def _delimited_decoder(delimiter: str, names: tuple[str, ...], convert: RecordConverter | None) -> Decoder:
    def decode_delimited(data: Payload) -> list[dict[str, Any]]:
        if isinstance(data, str):
            text = data
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"invalid UTF-8 at byte {exc.start}") from None
        if text.endswith("\n"):
            text = text[:-2] if text.endswith("\r\n") else text[:-1]
        if not text:
            return []
        values = text.split(delimiter)
        if convert is None:
            return [{f"col{index}": value for index, value in enumerate(values)}]
        return [convert(dict(zip(names, values)))]

    return decode_delimited


def make_decoder(stream: StreamDef, *, loads: Loads | None = None) -> Decoder:
    """Return the payload decoder for ``stream`` (planned once, called per message).

    Args:
        stream: the stream definition (FORMAT, schema, STRICT_VALIDATION).
        loads: a JSON backend to use instead of :func:`json_loads` (for tests
            and benchmarks).

    The decoder raises :class:`~ekws.errors.DecodeError` for a payload it
    cannot decode; it is pure and safe to call from several threads.
    """
    convert = None if stream.schemaless else make_converter(stream.fields, strict=stream.strict_validation)
    logger.debug("decoder for stream %s: format %s, json %s", stream.name, stream.format, JSON_BACKEND)
    if stream.format == "binary":
        return _binary_decoder(stream.fields[0].name if len(stream.fields) == 1 else "self")
    if stream.format == "delimited":
        names = tuple(f.name for f in stream.fields)
        return _delimited_decoder(stream.delimiter, names, convert)
    if stream.format != "json":
        raise ValueError(f"unknown FORMAT {stream.format!r}")
    return _json_decoder(loads or _loads, convert)
