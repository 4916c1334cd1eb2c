"""systemd's notify protocol over ``$NOTIFY_SOCKET``, with the standard library.

``Type=notify`` units learn readiness, stopping and status from datagrams of
``KEY=value`` lines sent to the unix socket named by ``$NOTIFY_SOCKET`` (a
leading ``@`` is the Linux abstract namespace). Outside systemd the variable
is unset and every call is a no-op. See sd_notify(3).

The watchdog: with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``); :class:`Notifier` then sends ``WATCHDOG=1`` every half
period from a thread for as long as ``alive()`` says the service is healthy,
so a hung REST server gets the process restarted.

A reload (SIGHUP) is told as ``RELOADING=1`` with ``MONOTONIC_USEC=`` (the
time it began, which systemd 253+ requires to accept it), then ``READY=1``
once the new config is applied or refused.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; does nothing when ``NOTIFY_SOCKET`` is unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_usec = 0
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self._watchdog_usec = int(usec)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of ``WATCHDOG_USEC``), or None."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec and self.enabled else None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; False (logged once per call) if it failed."""
        if not self._address:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.connect(self._address)
                    sock.sendall(payload)
            except OSError as exc:
                logger.warning("cannot notify systemd at %s: %s", self._address.replace("\0", "@"), exc)
                return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        """A reload begins; :meth:`ready` ends it (sd_notify(3): RELOADING=1 with the monotonic time)."""
        if not self.enabled:
            return
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", "STATUS=reloading", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def start_watchdog(self, alive: Callable[[], bool]) -> None:
        """Ping the watchdog every half period while ``alive()`` is true (no-op without one)."""
        interval = self.watchdog_interval
        if interval is None or self._thread is not None:
            return
        # Daemon: a ping thread must never keep a stopping process alive; close() joins it.
        self._thread = threading.Thread(target=self._watch, args=(interval, alive),
                                        name="ekws-watchdog", daemon=True)
        self._thread.start()

    def _watch(self, interval: float, alive: Callable[[], bool]) -> None:
        while not self._stop.wait(interval):
            if alive():
                self.send("WATCHDOG=1")
            else:
                logger.error("health check failed: not pinging the systemd watchdog")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
