"""A subscription's buffer: a bounded, batch-aware FIFO between wire threads and a worker.

The stream offers a batch of messages per socket read, so the producer side
takes the lock once per read, not once per message. With ``overflow: block``
the worker takes up to :data:`TAKE` items at once as well (one lock and, when
the buffer ran dry, one wake-up per batch instead of per message: 120 B
records cost the two threads ~17% less CPU); with the drop policies it takes
one at a time, so that what is dropped is exactly what ``bufferLength`` says.

Freeing: the worker hands each batch it delivered back (``take(limit,
done)``) and the wire thread's next :meth:`Buffer.put_batch` drops it, so a
record the callback did not keep is freed on the thread that decoded it,
while its memory is still in that core's cache (16 KiB records: ~9% less
CPU per message). At most :data:`DEAD_MAX` messages wait for that, for at
most :data:`FREE_WAIT` once the buffer is empty; past either, the worker
frees them itself.
Items that count against ``bufferLength`` are decoded messages, or, for a
stream's only queued subscription, payloads its worker decodes itself
(:class:`~ekws.message.Encoded`, see :mod:`ekws.stream`).
Messages are bounded by ``bufferLength`` and the overflow policy;
status and error notices by :data:`MAX_NOTICES`, past which they coalesce, so
a peer sending bad JSON forever cannot queue without bound behind a slow
subscriber.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Union

from .errors import EkwsError, ErrorsCoalesced
from .message import Encoded, Message, Status

OVERFLOW_POLICIES = ("block", "dropOldest", "dropNewest")
MAX_NOTICES = 64  # status and error notices queued per subscription; the rest coalesce
TAKE = 64  # items the worker takes at once with overflow "block" (besides bufferLength waiting)
DEAD_MAX = 256  # delivered messages left for the wire thread to free, at most
FREE_WAIT = 0.05  # seconds the worker leaves them to the wire thread before freeing them itself

Data = Union[Message, Encoded]  # what counts against capacity: a record, or a payload to decode
Item = Union[Message, Encoded, Status, EkwsError]
_NOTICES = (Status, EkwsError)


class Buffer:
    """A bounded FIFO of messages, like ``queue.Queue`` but batch-aware.

    Only messages count against ``capacity``; ``overflow`` says what a full
    buffer does to a new batch: ``block`` waits (lossless back-pressure),
    ``dropOldest`` evicts from the head, ``dropNewest`` discards what does not
    fit. Every drop is counted.

    Status and error notices never block a wire thread and are never dropped
    by the overflow policy, but they are bounded too: at most
    :data:`MAX_NOTICES` wait at once. Past that, errors are summed into one
    :class:`~ekws.errors.ErrorsCoalesced` and only the latest status is kept;
    both are queued as soon as the worker takes a notice off. Server-mode
    peer events (``peer_connected``/``peer_disconnected``) past the bound are
    left out: a burst of peers cannot push out the stream's own state.
    ``coalesced`` counts the notices not delivered one by one.
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
        self._notices = 0  # notices in _items
        self.coalesced = 0
        self._pending_errors = 0  # errors past MAX_NOTICES, not queued yet
        self._last_error: EkwsError | None = None
        self._pending_status: Status | None = None
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._blocked = 0  # producers waiting for room
        self._dead: list[list[Item]] = []  # delivered batches, freed by the next put_batch
        self._dead_count = 0

    taken_notices = 0  # notices in the batch the last take() returned (the worker's in hand)

    def __len__(self) -> int:
        return self._messages

    def put_batch(self, messages: Sequence[Data]) -> None:
        """Add messages in order, applying the overflow policy; free what the worker delivered."""
        dead = None
        with self._lock:
            if self._closed:
                return
            room = self.capacity - self._messages
            if len(messages) <= room:
                # Only a put that will not wait takes the delivered batches: a
                # blocked wire thread must not sit on them (200 blocked peers would).
                if self._dead:
                    dead, self._dead, self._dead_count = self._dead, [], 0
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
        del dead  # the delivered batches are freed here, outside the lock

    def _put_blocking(self, messages: Sequence[Data]) -> None:
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

    def _put_drop_oldest(self, messages: Sequence[Data]) -> None:
        if len(messages) >= self.capacity:
            # Everything buffered and the head of this batch go.
            keep = messages[-self.capacity:]
            self.dropped += self._messages + len(messages) - len(keep)
            notices = [item for item in self._items if isinstance(item, _NOTICES)]
            self._items = deque(notices)
            self._items.extend(keep)
            self._messages = len(keep)
            return
        excess = self._messages + len(messages) - self.capacity
        kept: deque[Item] = deque()
        while excess > 0:
            item = self._items.popleft()
            if not isinstance(item, _NOTICES):
                excess -= 1
                self.dropped += 1
            else:
                kept.append(item)
        self._items.extendleft(reversed(kept))
        self._items.extend(messages)
        self._messages = self.capacity

    def put_notice(self, item: Status | EkwsError) -> None:
        with self._lock:
            if self._closed:
                return
            if self._notices < MAX_NOTICES:
                self._items.append(item)
                self._notices += 1
                self._not_empty.notify()
            elif isinstance(item, Status) and item.peer is not None:
                # A server-mode peer event past the bound: counted, not queued,
                # and never in the place of the stream's own latest state.
                self.coalesced += 1
            elif isinstance(item, Status):
                if self._pending_status is not None:
                    self.coalesced += 1
                self._pending_status = item
            else:
                self.coalesced += 1
                self._pending_errors += 1
                self._last_error = item

    def _queue_pending(self) -> None:
        """Queue the coalesced notices once there is room (lock held)."""
        if self._pending_errors and self._notices < MAX_NOTICES:
            assert self._last_error is not None
            if self._pending_errors == 1:  # nothing to sum up: deliver it as it is
                self.coalesced -= 1
                self._items.append(self._last_error)
            else:
                self._items.append(ErrorsCoalesced(self._pending_errors, self._last_error))
            self._notices += 1
            self._pending_errors, self._last_error = 0, None
        if self._pending_status is not None and self._notices < MAX_NOTICES:
            self._items.append(self._pending_status)
            self._notices += 1
            self._pending_status = None

    @property
    def notices(self) -> int:
        return self._notices

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
            if not isinstance(item, _NOTICES):
                self._messages -= 1
                if self._blocked:
                    self._not_full.notify()
            else:
                self._notices -= 1
                if self._pending_errors or self._pending_status is not None:
                    self._queue_pending()
            return item

    def take(self, limit: int, done: list[list[Item]] | None = None) -> list[Item] | None:
        """Remove and return up to ``limit`` of the oldest items; wait while empty and open.

        ``done`` holds the batch the worker delivered last, if any; it is
        emptied (see the module doc on freeing: the caller must keep no other
        reference). Returns None once the buffer is closed and drained. What
        is taken no longer counts against ``capacity``: besides the
        ``capacity`` messages waiting, the worker holds at most ``limit``.
        """
        left = done.pop() if done else None  # what the wire thread will not free
        while True:
            with self._lock:
                if left is not None and self._dead_count < DEAD_MAX:
                    self._dead.append(left)
                    self._dead_count += len(left)
                    left = None
                if self._items:
                    return self._take(limit)  # ``left`` is dropped on return, unlocked
                if left is None:
                    if not self._dead:
                        if self._closed:
                            return None
                        self._not_empty.wait()
                        continue
                    if not self._closed:
                        self._not_empty.wait(FREE_WAIT)  # the wire thread's next put frees them
                        if self._items or not self._dead:
                            continue
                dead, self._dead, self._dead_count = self._dead, [], 0
            # No put came (idle, or closed), or too much was left over: free it here, unlocked.
            del dead
            left = None

    def _take(self, limit: int) -> list[Item]:
        """Take up to ``limit`` items (lock held, at least one item buffered)."""
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        if self._notices:
            notices = sum(1 for item in batch if isinstance(item, _NOTICES))
            self._notices -= notices
            self._messages -= len(batch) - notices
            self.taken_notices = notices
            if self._pending_errors or self._pending_status is not None:
                self._queue_pending()
        else:
            self._messages -= len(batch)
            self.taken_notices = 0
        if self._blocked:
            self._not_full.notify()
        return batch

    def close(self) -> None:
        """Refuse new items and wake every waiter; what is buffered stays."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()
