"""Records as JSON, the one encoder for every output: the log, file, websocket and mqtt actions, stdout, tail.

orjson when the ``[fast]`` extra is installed (and ``EKWS_JSON`` is not
``stdlib``), else the standard library's C encoder; both give the same
bytes for the same record (compact separators, UTF-8 unescaped):

* ``bytes`` become base64 strings, as eKuiper encodes ``[]byte``;
* ``NaN`` and infinities are not JSON: they become ``null``;
* a datetime, date or time becomes its ``isoformat()`` (as orjson writes
  it); anything else JSON has no type for is a ``TypeError`` (an action
  skips and counts that record), or its ``str()`` in :func:`dumps_text`,
  the spaced form people read on stdout and in tail;
* an integer beyond 64 bits is written exactly (orjson refuses it: the
  standard library takes over for that record).
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import os
from typing import Any

orjson: Any  # typed loosely on purpose: mypy must pass with and without the [fast] extra
try:
    import orjson as _orjson

    orjson = _orjson
except ImportError:  # pragma: no cover - orjson is an optional extra
    orjson = None

__all__ = ["dumps", "dumps_text", "dumps_line", "dumps_lines"]


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")  # as eKuiper encodes []byte
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()  # what orjson writes natively (no OPT_ flags)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _as_text(value: Any) -> Any:
    """``value`` with every leaf JSON (and :func:`_default`) cannot hold replaced by its ``str()``."""
    if isinstance(value, dict):
        return {str(k): _as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_text(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bytes, bytearray, memoryview, datetime.datetime,
                                           datetime.date, datetime.time)):
        return value
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (null), as orjson writes them."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k: _finite(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_finite(v) for v in value]
    return value


# EKWS_JSON=stdlib turns orjson off here as in the decoders (ekws.codec), so the
# standard-library path can be measured and tested on a machine that has orjson.
if os.environ.get("EKWS_JSON", "").lower() == "stdlib":
    orjson = None

# allow_nan=False: a non-finite float raises ValueError, and the careful path
# (:func:`_finite`) writes null instead of the ``NaN`` that is not JSON.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default, allow_nan=False)
# CPython's C encoder built once: json.dumps builds it again for every call,
# which costs as much as the encoding of a small record. No cycle check
# (markers None): records come from JSON or a projection, never cyclic.
# The arguments are those json.JSONEncoder.iterencode passes (3.9 to 3.13).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Any = None if _c_make_encoder is None else _c_make_encoder(
    None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, False)


def _stdlib_dumps(record: Any) -> str:
    encode = _c_encode
    try:
        return "".join(encode(record, 0)) if encode is not None else _encoder.encode(record)
    except ValueError:  # NaN or infinity: written as null
        record = _finite(record)
    return "".join(encode(record, 0)) if encode is not None else _encoder.encode(record)


def dumps(record: Any) -> bytes:
    """A record as compact JSON (UTF-8); bytes become base64 strings, NaN and infinities null."""
    if orjson is not None:
        try:
            data: bytes = orjson.dumps(record, default=_default)
            return data
        except orjson.JSONEncodeError:
            pass  # an integer beyond 64 bits, say: the standard library writes it exactly
    return _stdlib_dumps(record).encode("utf-8")


# What people read (stdout of ``ekws run``, ``ekws tail``): json.dumps' spaced
# separators, as the README shows the lines; orjson cannot space them.
_text_encoder = json.JSONEncoder(ensure_ascii=False, default=_default, allow_nan=False)


def dumps_text(record: Any) -> str:
    """A record as one line of readable JSON (``", "`` and ``": "``); never raises for its values.

    The value rules of :func:`dumps`, except that a value JSON has no type
    for is written as its ``str()``: stdout and tail print every record.
    """
    try:
        return _text_encoder.encode(record)
    except TypeError:
        record = _as_text(record)
    except ValueError:  # NaN or infinity: written as null
        pass
    try:
        return _text_encoder.encode(record)
    except ValueError:
        return _text_encoder.encode(_finite(record))


def dumps_line(record: Any) -> bytes:
    """:func:`dumps` plus a newline: one line of a JSON-lines file."""
    if orjson is not None:
        try:
            line: bytes = orjson.dumps(record, default=_default, option=orjson.OPT_APPEND_NEWLINE)
            return line
        except orjson.JSONEncodeError:
            pass
    return (_stdlib_dumps(record) + "\n").encode("utf-8")


def dumps_lines(records: list[dict[str, Any]]) -> bytes:
    """:func:`dumps_line` of each record, joined: a batch of JSON lines written at once.

    The standard library encodes the whole list in one call (the per-call set-up
    costs as much as a small record), then turns the ``},{`` between records
    into line breaks. That is exact only when ``},{`` occurs nowhere else (a
    string or nested value could hold it); the count says so, else each record
    is encoded alone. JSON text never holds a raw line break, so the result
    splits back into the records' lines at every ``\\n``.

    Raises:
        TypeError, ValueError: a record JSON cannot hold; the caller encodes
        record by record to find it.
    """
    if not records:
        return b""
    if orjson is not None:
        try:
            option = orjson.OPT_APPEND_NEWLINE
            return b"".join([orjson.dumps(r, default=_default, option=option) for r in records])
        except orjson.JSONEncodeError:
            return b"".join([dumps_line(r) for r in records])
    encode = _c_encode
    if encode is not None:
        try:
            text = "".join(encode(records, 0))
        except ValueError:  # NaN or infinity somewhere: the careful path writes null
            text = ""
        if text and text.count("},{") == len(records) - 1:
            return (text[1:-1].replace("},{", "}\n{") + "\n").encode("utf-8")
    return b"".join([dumps_line(r) for r in records])
