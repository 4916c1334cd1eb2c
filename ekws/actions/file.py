"""The ``file`` action: records appended as JSON lines.

Props:

- ``path`` (required): the file; opened for appending when the rule starts
  (a missing folder stops the start with an error naming the path).
- ``fsync`` (default false): also ``fsync`` at every flush, so what was
  flushed survives a power cut, not only a crash of the process.
- ``rotateSize`` (default 0 = never): once the file would grow past this
  many bytes (an integer, or ``"10MB"``, ``"512KiB"``), it is renamed
  ``path.1`` (older ones shift to ``.2`` ...) and a new one is started.
- ``rotateCount`` (default 3): how many rotated files to keep.
- eKuiper's ``fileType`` (``lines`` only) and ``format`` (``json`` only)
  are accepted; its flush ``interval``/``checkInterval`` are accepted and
  not needed (see below).

Flushing: lines are written through a buffer and flushed whenever the rule
has no more records waiting, and at least every ``FLUSH_EVERY`` records
while it is busy. A line is never split across files or buffers partially:
each record is written whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Optional

from ekws import Message

from . import Action, Props, dumps_line

FLUSH_EVERY = 256
_SIZE_RE = re.compile(r"\s*([0-9]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class FileConfig:
    path: str
    fsync: bool = False
    rotate_size: int = 0
    rotate_count: int = 3


def parse(props: Props) -> FileConfig:
    path = props.string("path", required=True)
    if not path.strip() or "\0" in path:
        raise props.fail("path", f"expected a file path, got {path!r}")
    props.choice("fileType", "lines", ("lines",))
    for ignored in ("interval", "checkInterval"):
        props.get(ignored)
    return FileConfig(
        path=path,
        fsync=props.boolean("fsync", False),
        rotate_size=_size(props, "rotateSize"),
        rotate_count=props.integer("rotateCount", 3, minimum=1, maximum=1000),
    )


def _size(props: Props, key: str) -> int:
    value = props.get(key, 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise props.fail(key, f"expected a size in bytes (like 1048576 or '10MB'), got {value!r:.60}")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b")[0].lower()]


class FileAction(Action):
    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._config: FileConfig = config
        self._file: Optional[IO[bytes]] = None
        self._size = 0
        self._limit = config.rotate_size or float("inf")
        self._pending = 0  # records written since the last flush
        self._write: Callable[[bytes], int] = _closed
        self.rotations = 0

    def start(self) -> None:
        self._open()

    def _open(self) -> None:
        self._file = open(self._config.path, "ab")  # noqa: SIM115 - held open until close()
        self._size = self._file.tell()
        self._write = self._file.write

    def send(self, msg: Message) -> None:
        line = dumps_line(msg.data)
        size = self._size + len(line)
        if size > self._limit and self._size:
            self._rotate()
            size = len(line)
        self._write(line)
        self._size = size
        self._pending += 1
        if self._pending >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        file = self._file
        if file is None or not self._pending:
            return
        self._pending = 0
        file.flush()
        if self._config.fsync:
            os.fsync(file.fileno())

    def _rotate(self) -> None:
        self._pending = max(self._pending, 1)
        self.flush()
        assert self._file is not None
        self._file.close()
        self._file, self._write = None, _closed
        path, count = self._config.path, self._config.rotate_count
        for n in range(count - 1, 0, -1):
            if os.path.exists(f"{path}.{n}"):
                os.replace(f"{path}.{n}", f"{path}.{n + 1}")
        os.replace(path, f"{path}.1")
        self.rotations += 1
        self._open()

    def close(self) -> None:
        self._write = _closed
        file, self._file = self._file, None
        if file is not None:
            try:
                file.flush()
                if self._config.fsync:
                    os.fsync(file.fileno())
            finally:
                file.close()

    def metrics(self) -> dict[str, Any]:
        return {"file_size_bytes": self._size, "rotations_total": self.rotations}


def _closed(line: bytes) -> int:
    raise OSError("the file is closed")


ACTION = FileAction
