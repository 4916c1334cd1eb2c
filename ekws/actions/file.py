"""The ``file`` action: messages appended as lines (JSON lines unless a ``dataTemplate`` says otherwise).

One line per outgoing message, as eKuiper's file sink with ``fileType: lines``:
the JSON array of an emission's rows by default, one row a line with
``sendSingle: true`` (see :mod:`ekws.actions.sink`).

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

Flushing: records are collected and written as one block of lines (one
encoding call and one ``write`` per block: per record, that is what a
busy rule saves), then flushed, whenever the rule has no more records
waiting, and at least every ``FLUSH_EVERY`` records while it is busy. A
line is never split across files: near the rotation size, the block is
written line by line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Optional

from .. import Message
from . import Action, Item, Props, dumps_line, dumps_lines

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
    """Collects records and writes them as one block of lines per flush (see the module doc).

    It counts what it wrote itself (``records_out_total``: lines on disk, or
    in the file's buffer until the next flush) and a record JSON cannot hold
    (``exceptions_total``: skipped, the others written). A failed write
    raises from :meth:`flush`, which the rule counts and logs.
    """

    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._config: FileConfig = config
        self._file: Optional[IO[bytes]] = None
        self._size = 0
        self._limit = config.rotate_size or float("inf")
        self._batch: list[Item] = []  # messages sent since the last write
        self._pending = 0  # lines written since the last flush
        self._write: Callable[[bytes], int] = _closed
        self.rotations = 0
        self.written = 0
        self.exceptions = 0
        self.last_exception = ""

    def start(self) -> None:
        self._open()

    def _open(self) -> None:
        self._file = open(self._config.path, "ab")  # noqa: SIM115 - held open until close()
        self._size = self._file.tell()
        self._write = self._file.write

    def deliver(self, item: Item) -> None:
        batch = self._batch
        batch.append(item)
        if len(batch) >= FLUSH_EVERY:
            self.flush()

    def send(self, msg: Message) -> None:  # the Action interface; the sink calls deliver()
        self.deliver(Item(msg.data, msg.data, msg.peer, msg.timestamp))

    def _write_batch(self) -> None:
        """Encode the records collected so far and write them as lines."""
        items, self._batch = self._batch, []
        if not items:
            return
        if self._file is None:
            raise OSError("the file is closed")
        lines = len(items)
        if any(item.encoded for item in items):  # a template's text: written as it is, a line each
            block = b"".join([item.payload + b"\n" for item in items])
            lines = block.count(b"\n")
        else:
            records = [item.value for item in items]
            try:
                block = dumps_lines(records)
            except (TypeError, ValueError, OverflowError, RecursionError):
                block = self._encode_each(records)
                lines = block.count(b"\n")  # JSON text holds no raw line break
        if self._size + len(block) > self._limit:
            for line in block.splitlines(keepends=True):
                self._write_line(line)
            return
        self._write(block)
        self._size += len(block)
        self._pending += lines
        self.written += lines

    def _encode_each(self, records: list[Any]) -> bytes:
        lines = []
        for record in records:
            try:
                lines.append(dumps_line(record))
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                self.exceptions += 1
                self.last_exception = f"{type(exc).__name__}: {exc}"
        return b"".join(lines)

    def _write_line(self, line: bytes) -> None:
        size = self._size + len(line)
        if size > self._limit and self._size:
            self._rotate()
            size = len(line)
        self._write(line)
        self._size = size
        self._pending += 1
        self.written += 1

    def flush(self) -> None:
        self._write_batch()
        file = self._file
        if file is None or not self._pending:
            return
        self._pending = 0
        file.flush()
        if self._config.fsync:
            os.fsync(file.fileno())

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.flush()
        if self._config.fsync:
            os.fsync(self._file.fileno())
        self._pending = 0
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
        try:
            if self._file is not None:
                self._write_batch()
        finally:
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
        out: dict[str, Any] = {"records_out_total": self.written, "file_size_bytes": self._size,
                               "rotations_total": self.rotations}
        if self.exceptions:
            out["exceptions_total"] = self.exceptions
            out["last_exception"] = self.last_exception
        return out


def _closed(line: bytes) -> int:
    raise OSError("the file is closed")


ACTION = FileAction
