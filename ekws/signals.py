"""Waiting in the main thread for SIGINT or SIGTERM (and SIGHUP), with handlers that take no lock.

A Python signal handler runs in the main thread between two bytecodes, maybe
while that thread holds a lock: the one inside ``threading.Event.wait()``, or
a logging handler's. A handler that sets an Event or logs can then deadlock
on that lock (``ekws run`` hung on about one SIGTERM in ten that way). Here
the handler only appends the signal's name to a list; the C-level handler
also writes a byte to a socket (:func:`signal.set_wakeup_fd`) on which the
main thread waits in ``select()``, so it wakes at once, and another thread
ends the wait the same way through :meth:`SignalWait.wake`.

SIGHUP, when asked for (``SignalWait(reload=True)``, the service), is no
stop: it ends the wait too and :meth:`SignalWait.take_reload` says a reload
was asked for. Without it a SIGHUP keeps its default action (the process
ends), as for any program that does not reload.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["SignalWait"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD = getattr(signal, "SIGHUP", None)  # not on Windows


class SignalWait:
    """One wait at a time for SIGINT/SIGTERM or a condition; :meth:`wake` may be called from any thread."""

    def __init__(self, *, reload: bool = False) -> None:
        self._wake: socket.socket | None = None
        self.received: list[str] = []  # stop signals' names, in order, including any after the wait ended
        self._reload = reload and RELOAD is not None
        self._reloads: list[int] = []  # one entry per SIGHUP
        self._reloads_taken = 0

    def wake(self) -> None:
        """End a wait in progress so that it checks its condition again (any thread)."""
        wake = self._wake
        if wake is not None:
            try:
                wake.send(b"\0")
            except OSError:  # closed (the wait is over), or the buffer is full (already woken)
                pass

    def install(self) -> None:
        """Take over SIGINT/SIGTERM (main thread only): from here on a signal is recorded, not fatal.

        Install before anything that announces readiness: a signal that came
        between "ready" and the wait would otherwise end the process with the
        default action.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("SignalWait must be installed in the main thread")

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if signum == RELOAD:
                self._reloads.append(signum)  # list.append takes no lock
            else:
                self.received.append(signal.Signals(signum).name)

        signals = SIGNALS + ((RELOAD,) if self._reload and RELOAD is not None else ())
        self._previous = {sig: signal.signal(sig, on_signal) for sig in signals}
        self._reader, self._wake = socket.socketpair()
        for end in (self._reader, self._wake):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._wake.fileno(), warn_on_full_buffer=False)

    def take_reload(self) -> bool:
        """True once for any number of SIGHUPs since the last call (several make one reload)."""
        count = len(self._reloads)
        if count == self._reloads_taken:
            return False
        self._reloads_taken = count
        return True

    def wait(self, done: Callable[[], bool], timeout: float | None = None) -> str | None:
        """Block until a signal, ``done()``, or ``timeout`` seconds; return the first stop signal's name.

        Between :meth:`install` and :meth:`restore`. A signal that came
        before the wait ends it at once; one after it is kept in
        :attr:`received`. A SIGHUP not yet taken (:meth:`take_reload`) ends
        it too, returning None unless a stop signal came.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.received and not done() and len(self._reloads) == self._reloads_taken:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            select.select([self._reader], [], [], remaining)
            _drain(self._reader)
        return self.received[0] if self.received else None

    def restore(self) -> None:
        """Put back the previous handlers and wake-up fd (after the caller has stopped)."""
        if self._wake is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        wake, self._wake = self._wake, None
        wake.close()
        self._reader.close()


def _drain(sock: socket.socket) -> None:
    """Read and drop what waits on a non-blocking socket."""
    try:
        while sock.recv(4096):
            pass
    except OSError:  # BlockingIOError: nothing more
        pass
