"""What an action with a far end (``websocket`` client, ``mqtt``) holds until it is delivered.

Two queues with one interface, used under the action's own lock:
:meth:`push` a payload, :meth:`peek` the oldest (it is then "in flight"),
:meth:`ack` it once the far end took it, or :meth:`release` it after a failed
send, to be sent again.

* :class:`MemoryQueue` (the default): ``bufferLength`` payloads in memory;
  when full, the oldest one not in flight is dropped and counted.
* :class:`DiskCache` (``enableCache: true``), eKuiper's sink cache
  (``docs/en_US/guide/sinks/overview.md#caching``): the oldest
  ``memoryCacheThreshold`` payloads in memory, the newer ones in a sqlite
  table of ``<data dir>/cache.db`` (one table per rule action, as eKuiper's
  ``data/cache.db``), at most ``maxDiskCache`` there; when both are full the
  oldest payload is dropped (counted) and the oldest on disk moves up. When
  the rule stops, what is in memory is written to disk ahead of the rest
  (unless ``cleanCacheAtStop``), so a broker outage, a rule restart and a
  service restart lose nothing; a power cut loses the memory part, as in
  eKuiper.

The data dir is set once per process by :func:`set_directory` (``ekws run``
sets its ``dataDir``; a device script calls it itself).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["CacheConf", "DiskCache", "MemoryQueue", "directory", "set_directory"]

PAGE = 256  # payloads moved from disk to memory at once (eKuiper's bufferPageSize default)
_directory: Optional[str] = None
_lock = threading.Lock()  # one schema change at a time across the rules of a process


def set_directory(path: Optional[str]) -> None:
    """Where ``cache.db`` lives (None: no cache; an action with ``enableCache`` then fails to start)."""
    global _directory
    _directory = None if path is None else os.fspath(path)


def directory() -> Optional[str]:
    return _directory


@dataclass(frozen=True)
class CacheConf:
    memory_threshold: int = 1024
    max_disk: int = 1024000
    page_size: int = PAGE
    resend_interval: float = 0.0  # seconds between two resent payloads after a recovery
    clean_at_stop: bool = False


class MemoryQueue:
    """``limit`` payloads; full: the oldest not in flight is dropped and counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[bytes] = deque()
        self._flight = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, payload: bytes) -> None:
        items = self._items
        if len(items) >= self.limit:
            if self._flight and len(items) > 1:
                del items[1]
            elif not self._flight:
                items.popleft()
            else:  # only the payload in flight is held: the new one is the one dropped
                self.dropped += 1
                return
            self.dropped += 1
        items.append(payload)

    def peek(self) -> Optional[bytes]:
        if not self._items:
            return None
        self._flight = True
        return self._items[0]

    def ack(self) -> None:
        if self._flight and self._items:
            self._items.popleft()
        self._flight = False

    def release(self) -> None:
        self._flight = False

    def close(self) -> None:
        """Nothing survives the action: the payloads in memory are gone."""

    def metrics(self) -> dict[str, Any]:
        return {"buffer_length": len(self._items), "dropped_total": self.dropped}


class DiskCache(MemoryQueue):
    """Memory first (the oldest payloads), then a sqlite table (the newer); see the module doc."""

    def __init__(self, conf: CacheConf, table: str) -> None:
        super().__init__(conf.memory_threshold)
        folder = _directory
        if folder is None:
            raise OSError("enableCache needs a data directory: ekws run uses its dataDir; a script calls "
                          "ekws.actions.cache.set_directory(path) first")
        os.makedirs(folder, exist_ok=True)
        self.conf = conf
        self.path = os.path.join(folder, "cache.db")
        self._table = '"' + table.replace('"', '""') + '"'
        # Used from the rule's worker and the action's sender, always under the action's lock.
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        with _lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {self._table} "
                             "(seq INTEGER PRIMARY KEY, payload BLOB)")
        self._disk: int = self._db.execute(f"SELECT count(*) FROM {self._table}").fetchone()[0]
        self.restored = self._disk  # payloads found from an earlier run
        self._load()

    def __len__(self) -> int:
        return len(self._items) + self._disk

    @property
    def on_disk(self) -> int:
        return self._disk

    def push(self, payload: bytes) -> None:
        if self._disk == 0 and len(self._items) < self.limit:
            self._items.append(payload)
            return
        if self.conf.max_disk == 0:  # no disk part: memory alone, the oldest dropped
            super().push(payload)
            return
        if self._disk >= self.conf.max_disk:
            self._drop_oldest()
        self._db.execute(f"INSERT INTO {self._table} (seq, payload) VALUES "
                         f"((SELECT coalesce(max(seq), 0) + 1 FROM {self._table}), ?)", (payload,))
        self._disk += 1

    def _drop_oldest(self) -> None:
        self.dropped += 1
        items = self._items
        if items and not (self._flight and len(items) == 1):
            del items[1 if self._flight else 0]
            self._load(1)
            return
        row = self._db.execute(f"SELECT seq FROM {self._table} ORDER BY seq LIMIT 1").fetchone()
        if row is not None:
            self._db.execute(f"DELETE FROM {self._table} WHERE seq = ?", (row[0],))
            self._disk -= 1

    def _load(self, count: int = 0) -> None:
        """Move up to ``count`` (a page) of the oldest payloads on disk into memory."""
        room = count or min(self.conf.page_size, self.limit - len(self._items))
        if room <= 0 or self._disk == 0:
            return
        rows = self._db.execute(f"SELECT seq, payload FROM {self._table} ORDER BY seq LIMIT ?",
                                (room,)).fetchall()
        if not rows:
            self._disk = 0
            return
        self._items.extend(bytes(payload) for _, payload in rows)
        self._db.execute(f"DELETE FROM {self._table} WHERE seq <= ?", (rows[-1][0],))
        self._disk -= len(rows)

    def ack(self) -> None:
        super().ack()
        if not self._items:
            self._load()

    def close(self) -> None:
        """Write what is in memory ahead of the disk part (or clean all); idempotent."""
        db = self._db
        if db is None:
            return
        try:
            if self.conf.clean_at_stop:
                db.execute(f"DELETE FROM {self._table}")
            elif self._items:
                first = db.execute(f"SELECT coalesce(min(seq), 1) FROM {self._table}").fetchone()[0]
                start = first - len(self._items)
                db.execute("BEGIN")
                db.executemany(f"INSERT INTO {self._table} (seq, payload) VALUES (?, ?)",
                               [(start + n, payload) for n, payload in enumerate(self._items)])
                db.execute("COMMIT")
            self._items.clear()
        finally:
            self._db = None  # type: ignore[assignment]
            db.close()

    def metrics(self) -> dict[str, Any]:
        return {"buffer_length": len(self), "cache_length": len(self), "cache_disk_length": self._disk,
                "dropped_total": self.dropped}
