"""Records as JSON lines on stdout: what the ``log`` action of a rule prints in ``ekws run``.

Every line is valid JSON (RFC 8259), whatever the record holds, encoded by
the one encoder every output shares (:mod:`ekws.actions.jsonout`): bytes as
base64, ``NaN`` as ``null``, a datetime as its ISO text, anything else
JSON has no type for as its ``str()``.

A closed stdout (``ekws run | head -n 1``) is not an error to report per
record: the first failed write calls ``on_closed`` once, later records are
discarded, and fd 1 is pointed at /dev/null so the interpreter's final flush
stays quiet.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TextIO

from ..actions.jsonout import dumps_text
from ..message import Message


def json_line(msg: Message) -> str:
    """One record as a JSON line: ``{"data": {...}, "meta": {...}}`` (see :mod:`ekws.actions.jsonout`)."""
    return dumps_text({"data": msg.data, "meta": msg.meta})


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
