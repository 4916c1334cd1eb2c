"""The service's sqlite store: streams, conf keys and rules created over REST.

One file, ``<dataDir>/ekws.db``, in WAL mode with ``synchronous=FULL``: every
change is one transaction, so a ``kill -9`` or a power cut leaves either the
old or the new row, never half of one. The standard library's ``sqlite3``
only; one connection shared by the REST threads behind a lock (writes are
rare and tiny, reads are a handful of rows).

Tables (the rules module relies on them)::

    streams(name TEXT PRIMARY KEY, sql TEXT)
    rules(id TEXT PRIMARY KEY, body TEXT /* json */, running INTEGER)
    confkeys(key TEXT PRIMARY KEY, props TEXT /* json */)
    sink_confkeys(kind TEXT, key TEXT, props TEXT /* json */, PRIMARY KEY (kind, key))
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EkwsError

logger = logging.getLogger(__name__)

FILE_NAME = "ekws.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams(name TEXT PRIMARY KEY, sql TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rules(id TEXT PRIMARY KEY, body TEXT NOT NULL, running INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS confkeys(key TEXT PRIMARY KEY, props TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sink_confkeys(kind TEXT NOT NULL, key TEXT NOT NULL, props TEXT NOT NULL,
                                         PRIMARY KEY (kind, key));
"""


class StoreError(EkwsError):
    """The store cannot be opened, read or written (disk full, permissions, corruption)."""


class Store:
    """Streams, conf keys and rules that outlive the process.

    Args:
        data_dir: the folder of ``ekws.db``; created if missing.

    Raises:
        ConfigError: the folder cannot be created or the file opened.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        folder = Path(data_dir)
        self.path = folder / FILE_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot open the store {self.path}: {exc}", key="dataDir") from exc
        self._instance = _lock_instance(folder)
        try:
            # check_same_thread=False: REST handlers run in server threads; _lock serialises them.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._instance.close()
            raise ConfigError(f"cannot open the store {self.path}: {exc}", key="dataDir") from exc
        self._lock = threading.Lock()
        logger.debug("store %s open", self.path)

    # -- plumbing ------------------------------------------------------------------------

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            try:
                return self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the store {self.path}: {exc}") from exc

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._instance.close()  # releases the data dir for the next ekws run

    # -- streams ---------------------------------------------------------------------------

    def put_stream(self, name: str, sql: str) -> None:
        self._write("INSERT OR REPLACE INTO streams(name, sql) VALUES (?, ?)", (name, sql))

    def delete_stream(self, name: str) -> bool:
        return self._write("DELETE FROM streams WHERE name = ?", (name,)) > 0

    def streams(self) -> dict[str, str]:
        """Stream name -> its CREATE STREAM statement, in name order."""
        return {name: sql for name, sql in self._read("SELECT name, sql FROM streams ORDER BY name")}

    # -- conf keys ---------------------------------------------------------------------------

    def put_confkey(self, key: str, props: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO confkeys(key, props) VALUES (?, ?)", (key, json.dumps(props)))

    def delete_confkey(self, key: str) -> bool:
        return self._write("DELETE FROM confkeys WHERE key = ?", (key,)) > 0

    def confkeys(self) -> dict[str, dict[str, Any]]:
        """Conf key name -> its props (camelCase, as given over REST)."""
        rows = self._read("SELECT key, props FROM confkeys ORDER BY key")
        return {key: json.loads(props) for key, props in rows}

    # -- sink conf keys (eKuiper's resourceId) -------------------------------------------------

    def put_sink_confkey(self, kind: str, key: str, props: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO sink_confkeys(kind, key, props) VALUES (?, ?, ?)",
                    (kind, key, json.dumps(props)))

    def delete_sink_confkey(self, kind: str, key: str) -> bool:
        return self._write("DELETE FROM sink_confkeys WHERE kind = ? AND key = ?", (kind, key)) > 0

    def sink_confkeys(self, kind: str) -> dict[str, dict[str, Any]]:
        """An action kind's conf keys (``PUT /metadata/sinks/{kind}/confKeys/{key}``): key -> props."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT key, props FROM sink_confkeys WHERE kind = ? ORDER BY key",
                                        (kind,)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the store {self.path}: {exc}") from exc
        return {key: json.loads(props) for key, props in rows}

    # -- rules ---------------------------------------------------------------------------------

    def put_rule(self, rule_id: str, body: dict[str, Any], running: bool = True) -> None:
        self._write("INSERT OR REPLACE INTO rules(id, body, running) VALUES (?, ?, ?)",
                    (rule_id, json.dumps(body), int(running)))

    def delete_rule(self, rule_id: str) -> bool:
        return self._write("DELETE FROM rules WHERE id = ?", (rule_id,)) > 0

    def set_running(self, rule_id: str, running: bool) -> bool:
        return self._write("UPDATE rules SET running = ? WHERE id = ?", (int(running), rule_id)) > 0

    def rules(self) -> list[tuple[str, dict[str, Any], bool]]:
        """``(id, body, running)`` for every rule, in id order."""
        rows = self._read("SELECT id, body, running FROM rules ORDER BY id")
        return [(rule_id, json.loads(body), bool(running)) for rule_id, body, running in rows]


LOCK_NAME = "ekws.lock"


def _lock_instance(folder: Path) -> Any:
    """One ``ekws run`` per data dir: an exclusive ``flock`` on ``ekws.lock`` (holding the pid),
    held until :meth:`Store.close` or the process ends (the kernel drops it on ``kill -9`` too).
    Two services on one dir would both run every rule and split the stored state."""
    path = folder / LOCK_NAME
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open: the lock lives with it)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc}", key="dataDir") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"the data dir {folder} is in use by another ekws run (pid {holder}); "
                          f"one instance per data dir", key="dataDir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
