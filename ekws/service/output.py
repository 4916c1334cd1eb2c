"""Records as JSON lines on stdout: what the ``log`` action of a rule prints in ``ekws run``.

Every line is valid JSON (RFC 8259), whatever the record holds:

* ``bytes`` (``FORMAT="binary"`` payloads, BYTEA fields) become base64
  strings, as eKuiper prints them;
* ``NaN`` and ``Infinity`` are not JSON: they become ``null``;
* anything else that is not JSON (a datetime from a DATETIME field) becomes
  its ``str()``.

A closed stdout (``ekws run | head -n 1``) is not an error to report per
record: the first failed write calls ``on_closed`` once, later records are
discarded, and fd 1 is pointed at /dev/null so the interpreter's final flush
stays quiet.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from collections.abc import Callable
from typing import Any, TextIO

from ..message import Message


def to_json(value: Any) -> Any:
    """``value`` with every non-JSON leaf replaced (see the module docstring)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


def json_line(msg: Message) -> str:
    """One record as a JSON line: ``{"data": {...}, "meta": {...}}``."""
    record = {"data": msg.data, "meta": msg.meta}
    try:  # the common case: plain JSON values, one pass
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(to_json(record), ensure_ascii=False, allow_nan=False)


class LinePrinter:
    """A thread-safe ``on_message`` callback writing JSON lines to ``out``."""

    def __init__(self, out: TextIO, on_closed: Callable[[], None]) -> None:
        self._out = out
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self.closed = False

    def __call__(self, msg: Message) -> None:
        line = json_line(msg) + "\n"
        with self._lock:
            if self.closed:
                return
            try:
                self._out.write(line)
                self._out.flush()
            except (BrokenPipeError, ValueError):  # ValueError: the file object was closed
                self.closed = True
                _silence_stdout(self._out)
            else:
                return
        self._on_closed()


def _silence_stdout(out: TextIO) -> None:
    """Point the descriptor at /dev/null: the interpreter's exit flush would raise again."""
    try:
        fd = out.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):
        pass
