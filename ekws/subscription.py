"""Subscriptions: a bounded buffer (:mod:`ekws.buffer`) and a worker thread per callback set.

Wire threads offer batches through the stream; the worker takes one item at
a time and calls the user's callbacks in order.

``delivery="inline"`` has no buffer and no worker: the thread that read the
socket calls the callbacks itself, under a per-subscription lock, so the
callbacks of one subscription never run concurrently (server mode has a
thread per peer) and a peer's records arrive in order. No hand-off between
threads: lower latency and more messages per second, and back-pressure goes
straight to TCP. The price: a slow callback stalls every connection feeding
the subscription (and the stream's other subscriptions, offered after it on
that thread); ``bufferLength`` and ``overflow`` do not apply. Status and
error notices are delivered inline too, on the thread that reports them.

Callback errors, as websocket-client's ``WebSocketApp`` reports them: a
raising ``on_message`` or ``on_status`` never ends the worker; it is counted
(``failed``, the stream's ``exceptions_total``) and passed to ``on_error`` as
a :class:`~ekws.errors.CallbackError` whose ``__cause__`` is the exception
and whose ``item`` is the message or status. Where it is also reported:

* with ``on_error``: to the ``ekws.subscription`` logger at ERROR;
* without ``on_error``, or when ``on_error`` itself raises (never passed
  back to ``on_error``): to that logger when the application configured
  logging, else through :func:`threading.excepthook`, i.e. a traceback on
  stderr, like an exception in any thread the application started.

Reports are rate-limited per subscription (:mod:`ekws.throttle`): the first
traceback in full, then one summary line with the count at most every 10 s,
and a last summary when the subscription ends.
"""

from __future__ import annotations

import enum
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .buffer import MAX_NOTICES, OVERFLOW_POLICIES, TAKE, Buffer, Item
from .errors import CallbackError, ClosedError, EkwsError
from .message import Encoded, Message, Status
from .throttle import INTERVAL, Throttle, Verdict

__all__ = ["DELIVERY_MODES", "MAX_NOTICES", "OVERFLOW_POLICIES", "Buffer", "Item", "OnError", "OnMessage",
           "OnStatus", "Subscription"]

logger = logging.getLogger(__name__)

OnMessage = Callable[[Message], Any]
OnError = Callable[[EkwsError], Any]
OnStatus = Callable[[Status], Any]
Decode = Callable[[Encoded], "list[Message]"]

_ids = itertools.count(1)
DELIVERY_MODES = ("queue", "inline")


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class Subscription:
    """A set of callbacks fed by one stream through its own buffer and thread (or inline).

    Use it as a context manager or call :meth:`close`. ``close()`` is
    idempotent; it delivers what was already buffered and returns within
    ``drain_timeout`` seconds even if a callback hangs.

    Counters, read at any time: ``delivered`` (``on_message`` returned),
    ``failed`` (callbacks that raised), ``dropped`` (overflow policy),
    ``coalesced`` (notices summed up), ``last_exception`` and
    ``last_exception_time`` (``float`` seconds since the epoch).
    """

    def __init__(self, stream: str, on_message: OnMessage, on_error: OnError | None = None,
                 on_status: OnStatus | None = None, *, buffer_length: int = 1024,
                 overflow: str = "block", on_close: Callable[[Subscription], None] | None = None,
                 drain_timeout: float = 5.0, delivery: str = "queue", decode: Decode | None = None) -> None:
        if not callable(on_message):
            raise TypeError("on_message must be callable")
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery must be queue or inline, got {delivery!r}")
        self.stream = stream
        self.id = next(_ids)
        self._on_message = on_message
        self._on_error = on_error
        self._on_status = on_status
        self._on_close = on_close
        self._drain_timeout = drain_timeout
        self._buffer = Buffer(buffer_length, overflow)
        self._in_hand = 0  # items of the batch the worker holds, not yet delivered
        self._state = _State.NEW
        self._state_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0  # callbacks that raised
        self.last_exception: str | None = None
        self.last_exception_time: float | None = None
        self._handled = Throttle()  # reports of errors passed to on_error
        self._unhandled = Throttle()  # reports of errors nobody handled
        self.delivery = delivery
        self._inline = delivery == "inline"
        # Queued, with the stream's decoder: the stream may offer Encoded payloads, decoded by the worker.
        self._decode = None if self._inline else decode
        self.decodes = self._decode is not None
        # The stream counts one record per payload it offers encoded; a payload that held
        # another number (a JSON array, or none: a decode error) is corrected here.
        self.records_extra = 0
        # Inline: callbacks run under this lock on the offering thread. Reentrant: a
        # callback may close its own subscription, or report a status to it.
        self._inline_lock = threading.RLock()
        # Daemon: the worker runs user callbacks, and a callback that never
        # returns must not keep the interpreter from exiting; close() joins it
        # with a timeout instead.
        self._thread = threading.Thread(target=self._run, name=f"ekws-sub-{stream}-{self.id}", daemon=True)

    # -- producer side (wire threads via the stream) ---------------------------------

    def offer(self, messages: list[Message]) -> None:
        if self._inline:
            self._offer_inline(messages)
        else:
            self._buffer.put_batch(messages)

    def offer_encoded(self, payloads: list[Encoded]) -> None:
        """Queue payloads for the worker to decode (only when :attr:`decodes`)."""
        self._buffer.put_batch(payloads)

    def notify(self, item: Status | EkwsError) -> None:
        if self._inline:
            self._notify_inline(item)
        else:
            self._buffer.put_notice(item)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        with self._state_lock:
            if self._state is not _State.NEW:
                raise ClosedError(f"subscription {self.id} to stream {self.stream!r} cannot be started twice")
            self._state = _State.RUNNING
        if not self._inline:
            self._thread.start()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def finished(self) -> bool:
        """Closed, and the worker has delivered everything it will deliver."""
        if self._inline:
            return self._state is _State.CLOSED and self._inline_done
        return self._state is _State.CLOSED and not self._thread.is_alive()

    # -- inline delivery (see the module doc) ----------------------------------------

    _inline_done = False  # closed, and no callback runs any more

    def _offer_inline(self, messages: list[Message]) -> None:
        with self._inline_lock:
            if self._state is not _State.RUNNING:
                return
            on_message = self._on_message
            failed = 0
            for message in messages:
                try:
                    on_message(message)
                except BaseException as exc:  # SystemExit too: it must not end the reader
                    failed += 1
                    self._callback_failed("on_message", exc, message)
            self.delivered += len(messages) - failed

    def _notify_inline(self, item: Status | EkwsError) -> None:
        with self._inline_lock:
            if self._state is not _State.RUNNING:
                return
            self._deliver_notice(item)

    def _close_inline(self) -> None:
        """Wait for a callback in progress (not our own), then report what the throttles hold."""
        if not self._inline_lock.acquire(timeout=self._drain_timeout):
            logger.warning("subscription %s to stream %s: a callback did not return within %.1f s",
                           self.id, self.stream, self._drain_timeout)
            return
        try:
            self._summarise(self._handled.flush(), handled=True)
            self._summarise(self._unhandled.flush(), handled=False)
            self._inline_done = True
        finally:
            self._inline_lock.release()

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def coalesced(self) -> int:
        return self._buffer.coalesced

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def backlog(self) -> int:
        """Messages still to deliver after the one being delivered: buffered plus the worker's batch.

        Zero in a callback means it handles the last record there is for now (a
        good moment to flush what it batches). Status and error notices do not
        count: a peer leaving right after its last record leaves it at zero.
        """
        return len(self._buffer) + self._in_hand

    @property
    def notices(self) -> int:
        """Status and error notices waiting (at most :data:`MAX_NOTICES`)."""
        return self._buffer.notices

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
        if self._inline:
            self._close_inline()
        elif started and threading.current_thread() is not self._thread:
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
        take = self._buffer.take
        limit = TAKE if self._buffer.overflow == "block" else 1  # see ekws.buffer
        on_message = self._on_message
        decode = self._decode
        # The batch just delivered goes back to the buffer with no reference
        # left here, so that the wire thread frees it (see ekws.buffer).
        done: list[list[Item]] = []
        item: Item | None = None
        batch: list[Item] | None = None
        message: Message | None = None
        try:
            while (batch := take(limit, done)) is not None:
                # Messages only: a notice behind the last record (a peer
                # leaving) must not keep backlog from reaching zero.
                self._in_hand = len(batch) - self._buffer.taken_notices
                for item in batch:
                    if type(item) is Message:
                        self._in_hand -= 1
                        try:
                            on_message(item)
                        except BaseException as exc:  # SystemExit too: it must not end the worker
                            self._callback_failed("on_message", exc, item)
                        else:
                            self.delivered += 1
                    elif type(item) is Encoded and decode is not None:
                        self._in_hand -= 1
                        # Decoded, delivered and (unless the callback keeps it) freed on
                        # this thread, while the record is still in this core's cache.
                        try:
                            messages = decode(item)
                        except Exception as exc:  # a bug: bad input is a DecodeError, reported by the stream
                            self._unhandled_error("the decoder", exc)
                            continue
                        if len(messages) != 1:
                            self.records_extra += len(messages) - 1
                        for message in messages:
                            try:
                                on_message(message)
                            except BaseException as exc:
                                self._callback_failed("on_message", exc, message)
                            else:
                                self.delivered += 1
                        messages.clear()
                        message = None
                    else:
                        assert isinstance(item, (Status, EkwsError))
                        self._deliver_notice(item)
                done.append(batch)
                batch = item = None
        finally:
            self._summarise(self._handled.flush(), handled=True)
            self._summarise(self._unhandled.flush(), handled=False)

    def _deliver_notice(self, item: Status | EkwsError) -> None:
        if isinstance(item, Status):
            if self._on_status is not None:
                try:
                    self._on_status(item)
                except BaseException as exc:
                    self._callback_failed("on_status", exc, item)
        elif self._on_error is not None:
            try:
                self._on_error(item)
            except BaseException as exc:
                self._unhandled_error("on_error", exc)

    # -- callback errors ------------------------------------------------------------

    def _callback_failed(self, what: str, exc: BaseException, item: Message | Status) -> None:
        """Count a raising on_message/on_status and pass it to on_error (see the module doc)."""
        on_error = self._on_error
        if on_error is None:
            self._unhandled_error(what, exc)
            return
        self._count(what, exc)
        error = CallbackError(f"stream {self.stream}, subscription {self.id}: {_describe(what, exc)}",
                              callback=what, item=item)
        error.__cause__ = exc
        verdict = self._handled.hit(_describe(what, exc))
        if verdict.full:
            logger.error("stream %s, subscription %s: %s raised (passed to on_error; repeats are "
                         "summarised every %.0f s)", self.stream, self.id, what, INTERVAL, exc_info=exc)
        self._summarise(verdict, handled=True)
        try:
            on_error(error)
        except BaseException as inner:  # never passed back to on_error
            self._unhandled_error("on_error", inner)

    def _unhandled_error(self, what: str, exc: BaseException) -> None:
        self._count(what, exc)
        verdict = self._unhandled.hit(_describe(what, exc))
        if verdict.full:
            if _logging_configured():
                logger.error("stream %s, subscription %s: %s raised (repeats are summarised every %.0f s)",
                             self.stream, self.id, what, INTERVAL, exc_info=exc)
            else:
                _excepthook(exc)
        self._summarise(verdict, handled=False)

    def _count(self, what: str, exc: BaseException) -> None:
        self.failed += 1
        self.last_exception = _describe(what, exc)
        self.last_exception_time = time.time()

    def _summarise(self, verdict: Verdict, *, handled: bool) -> None:
        if not verdict.summary:
            return
        line = (f"stream {self.stream}, subscription {self.id}: {verdict.summary} more callback errors "
                f"since the last report; the last: {verdict.last}")
        if handled or _logging_configured():
            logger.error("%s", line)
        elif sys.stderr is not None:
            try:
                print(f"ekws: {line}", file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr closed: nowhere left to report
                pass


def _describe(what: str, exc: BaseException) -> str:
    return f"{what} raised {type(exc).__name__}: {exc}"


def _logging_configured() -> bool:
    """Whether a record of this module's logger reaches a real handler.

    The package logger carries a NullHandler (a library must not print by
    default), which also keeps ``logging.lastResort`` away; for errors nobody
    handles, this tells whether the application set up logging to see them.
    """
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(handler, logging.NullHandler) for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _excepthook(exc: BaseException) -> None:
    """Report ``exc`` as an uncaught exception of the current thread would be."""
    args = threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, threading.current_thread()))
    try:
        threading.excepthook(args)
    except Exception:  # a broken hook must not end the worker
        pass
