"""Subscriptions: a bounded buffer and a worker thread per callback set.

The stream offers a batch of messages per socket read from wire threads, so
the producer side takes the lock once per read, not once per message; the
worker takes one item at a time and calls the user's callbacks in order.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Union

from .errors import ClosedError, EkwsError
from .message import Message, Status

logger = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("block", "dropOldest", "dropNewest")

OnMessage = Callable[[Message], Any]
OnError = Callable[[EkwsError], Any]
OnStatus = Callable[[Status], Any]
Item = Union[Message, Status, EkwsError]

_ids = itertools.count(1)


class Buffer:
    """A bounded FIFO of messages, like ``queue.Queue`` but batch-aware.

    Only messages count against ``capacity``; status and error notices are
    never dropped and never block (they are rare and small). ``overflow``
    says what a full buffer does to a new batch: ``block`` waits (lossless
    back-pressure), ``dropOldest`` evicts from the head, ``dropNewest``
    discards what does not fit. Every drop is counted.
    """

    def __init__(self, capacity: int, overflow: str) -> None:
        if capacity < 1:
            raise ValueError(f"bufferLength must be at least 1, got {capacity}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        self.capacity = capacity
        self.overflow = overflow
        self.dropped = 0
        self._items: deque[Item] = deque()
        self._messages = 0  # messages in _items (notices excluded)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._blocked = 0  # producers waiting for room

    def __len__(self) -> int:
        return self._messages

    def put_batch(self, messages: list[Message]) -> None:
        """Add messages in order, applying the overflow policy."""
        with self._lock:
            if self._closed:
                return
            room = self.capacity - self._messages
            if len(messages) <= room:
                self._items.extend(messages)
                self._messages += len(messages)
            elif self.overflow == "block":
                self._put_blocking(messages)
            elif self.overflow == "dropNewest":
                if room > 0:
                    self._items.extend(messages[:room])
                    self._messages += room
                self.dropped += len(messages) - max(room, 0)
            else:
                self._put_drop_oldest(messages)
            self._not_empty.notify()

    def _put_blocking(self, messages: list[Message]) -> None:
        start = 0
        while start < len(messages):
            while self._messages >= self.capacity and not self._closed:
                self._not_empty.notify()
                self._blocked += 1
                try:
                    self._not_full.wait()
                finally:
                    self._blocked -= 1
            if self._closed:
                return
            end = start + self.capacity - self._messages
            chunk = messages[start:end]
            self._items.extend(chunk)
            self._messages += len(chunk)
            start += len(chunk)

    def _put_drop_oldest(self, messages: list[Message]) -> None:
        if len(messages) >= self.capacity:
            # Everything buffered and the head of this batch go.
            keep = messages[-self.capacity:]
            self.dropped += self._messages + len(messages) - len(keep)
            notices = [item for item in self._items if not isinstance(item, Message)]
            self._items = deque(notices)
            self._items.extend(keep)
            self._messages = len(keep)
            return
        excess = self._messages + len(messages) - self.capacity
        kept: deque[Item] = deque()
        while excess > 0:
            item = self._items.popleft()
            if isinstance(item, Message):
                excess -= 1
                self.dropped += 1
            else:
                kept.append(item)
        self._items.extendleft(reversed(kept))
        self._items.extend(messages)
        self._messages = self.capacity

    def put_notice(self, item: Status | EkwsError) -> None:
        with self._lock:
            if not self._closed:
                self._items.append(item)
                self._not_empty.notify()

    def get(self) -> Item | None:
        """Remove and return the oldest item; wait while empty and open.

        Returns None once the buffer is closed and drained. One item at a
        time, so that ``capacity`` bounds what waits besides the one item a
        callback is handling, exactly as with ``queue.Queue``.
        """
        with self._lock:
            while not self._items:
                if self._closed:
                    return None
                self._not_empty.wait()
            item = self._items.popleft()
            if type(item) is Message:
                self._messages -= 1
                if self._blocked:
                    self._not_full.notify()
            return item

    def close(self) -> None:
        """Refuse new items and wake every waiter; what is buffered stays."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class Subscription:
    """A set of callbacks fed by one stream through its own buffer and thread.

    Use it as a context manager or call :meth:`close`. ``close()`` is
    idempotent; it delivers what was already buffered and returns within
    ``drain_timeout`` seconds even if a callback hangs.
    """

    def __init__(self, stream: str, on_message: OnMessage, on_error: OnError | None = None,
                 on_status: OnStatus | None = None, *, buffer_length: int = 1024,
                 overflow: str = "block", on_close: Callable[[Subscription], None] | None = None,
                 drain_timeout: float = 5.0) -> None:
        if not callable(on_message):
            raise TypeError("on_message must be callable")
        self.stream = stream
        self.id = next(_ids)
        self._on_message = on_message
        self._on_error = on_error
        self._on_status = on_status
        self._on_close = on_close
        self._drain_timeout = drain_timeout
        self._buffer = Buffer(buffer_length, overflow)
        self._state = _State.NEW
        self._state_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0  # callbacks that raised
        self.last_exception: str | None = None
        self.last_exception_time: float | None = None
        # Daemon: the worker runs user callbacks, and a callback that never
        # returns must not keep the interpreter from exiting; close() joins it
        # with a timeout instead.
        self._thread = threading.Thread(target=self._run, name=f"ekws-sub-{stream}-{self.id}", daemon=True)

    # -- producer side (wire threads via the stream) ---------------------------------

    def offer(self, messages: list[Message]) -> None:
        self._buffer.put_batch(messages)

    def notify(self, item: Status | EkwsError) -> None:
        self._buffer.put_notice(item)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        with self._state_lock:
            if self._state is not _State.NEW:
                raise ClosedError(f"subscription {self.id} to stream {self.stream!r} cannot be started twice")
            self._state = _State.RUNNING
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def finished(self) -> bool:
        """Closed, and the worker has delivered everything it will deliver."""
        return self._state is _State.CLOSED and not self._thread.is_alive()

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        """Stop receiving, deliver what is buffered, stop the worker."""
        with self._state_lock:
            if self._state is _State.CLOSED:
                return
            started = self._state is _State.RUNNING
            self._state = _State.CLOSED
        self._buffer.close()  # first: a wire thread blocked on a full buffer lets go
        if self._on_close is not None:
            self._on_close(self)
        if started and threading.current_thread() is not self._thread:
            self._thread.join(self._drain_timeout)
            if self._thread.is_alive():
                logger.warning("subscription %s to stream %s: a callback did not return within %.1f s",
                               self.id, self.stream, self._drain_timeout)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- worker ---------------------------------------------------------------------

    def _run(self) -> None:
        get = self._buffer.get
        on_message = self._on_message
        while (item := get()) is not None:
            if type(item) is Message:
                try:
                    on_message(item)
                except Exception as exc:
                    self._callback_failed("on_message", exc)
                else:
                    self.delivered += 1
            elif isinstance(item, Status):
                self._call("on_status", self._on_status, item)
            else:
                self._call("on_error", self._on_error, item)

    def _call(self, what: str, callback: Callable[[Any], Any] | None, arg: object) -> None:
        """Run an optional callback; a raising one is logged and counted, never re-raised."""
        if callback is None:
            return
        try:
            callback(arg)
        except Exception as exc:
            self._callback_failed(what, exc)

    def _callback_failed(self, what: str, exc: Exception) -> None:
        self.failed += 1
        self.last_exception = f"{what} raised {type(exc).__name__}: {exc}"
        self.last_exception_time = time.time()
        logger.error("stream %s, subscription %s: %s raised", self.stream, self.id, what, exc_info=exc)
