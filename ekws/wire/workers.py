"""Request threads that are reused: a finished request's thread waits for the next one.

Werkzeug (socketserver's ``ThreadingMixIn``) starts a thread per request and
lets it end. Under churn (peers connecting and leaving, REST calls) that is a
new thread, a new stack and possibly a new malloc arena every time, and the
service's RSS crept up although the Python heap stayed flat (bench/soak.py,
bench/README.md). Here a thread that finishes its request parks for
:data:`IDLE` seconds waiting for the next one; at most ``max_idle`` park at
once (the rest end), so a burst of a thousand peers leaving does not keep a
thousand parked threads.

The rest of the creep was the C allocator, not Python objects (the Python
heap, by tracemalloc, grew +72 KiB over 4 minutes while RSS crept on): glibc
keeps pages freed by the threads' arenas. So, at most every
:data:`TRIM_EVERY` seconds, a finished request hands them back with
``malloc_trim(0)`` (glibc only; elsewhere nothing happens).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, Callable, Optional

__all__ = ["IDLE", "Workers"]

IDLE = 30.0  # seconds a parked thread waits for the next request before it ends
PARKED_NAME = "ekws-idle-worker"

TRIM_EVERY = 10.0  # seconds between malloc_trim calls, at most
_trim_lock = threading.Lock()
_trim_next = 0.0
_malloc_trim: Optional[Callable[[int], int]] = None
_trim_looked_up = False


def trim_memory() -> None:
    """``malloc_trim(0)`` when glibc has it and :data:`TRIM_EVERY` passed since the last call."""
    global _trim_next, _malloc_trim, _trim_looked_up
    now = time.monotonic()
    if now < _trim_next or not _trim_lock.acquire(blocking=False):
        return
    try:
        _trim_next = now + TRIM_EVERY
        if not _trim_looked_up:
            _trim_looked_up = True
            if sys.platform.startswith("linux"):
                try:
                    import ctypes

                    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
                except (OSError, AttributeError):  # musl and other libcs: no malloc_trim
                    _malloc_trim = None
        if _malloc_trim is not None:
            _malloc_trim(0)
    finally:
        _trim_lock.release()


_Job = Optional[tuple[Callable[..., Any], tuple[Any, ...], str]]


class Workers:
    """Runs each submitted call on a parked thread, or on a new one when none is parked."""

    def __init__(self, *, max_idle: int = 8, idle: float = IDLE) -> None:
        self._max_idle = max_idle
        self._idle_s = idle
        self._lock = threading.Lock()
        self._idle = 0  # parked threads not promised a job yet
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._closed = False

    @property
    def parked(self) -> int:
        return self._idle

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> None:
        """Call ``fn(*args)`` on a thread named ``name`` (a daemon, as Werkzeug's are)."""
        job = (fn, args, name)
        with self._lock:
            if self._idle and not self._closed:
                self._idle -= 1
                self._jobs.put(job)  # under the lock: a parked thread that times out finds it
                return
        threading.Thread(target=self._work, args=(job,), name=name, daemon=True).start()

    def close(self) -> None:
        """Parked threads end now; a thread still serving ends when its request does."""
        with self._lock:
            self._closed = True
            parked, self._idle = self._idle, 0
            for _ in range(parked):
                self._jobs.put(None)

    def _work(self, job: _Job) -> None:
        current = threading.current_thread()
        while job is not None:
            fn, args, current.name = job
            try:
                fn(*args)
            finally:
                del fn, args  # the finished request's objects go now, not when the next one comes
                current.name = PARKED_NAME
                trim_memory()
            job = self._next()

    def _next(self) -> _Job:
        with self._lock:
            if self._closed or self._idle >= self._max_idle:
                return None
            self._idle += 1
        try:
            return self._jobs.get(timeout=self._idle_s)
        except queue.Empty:
            with self._lock:
                try:  # a job promised to this thread as it timed out
                    return self._jobs.get_nowait()
                except queue.Empty:
                    self._idle -= 1
                    return None
