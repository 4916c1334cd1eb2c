"""Live views on the REST port: ``ekws tail``'s websocket endpoint and the status page.

A service plugin (:class:`LivePlugin`): routes, a start and a stop step.

``GET /streams/{name}/tail`` upgrades to a WebSocket (token-protected like
every route: ``Authorization: Bearer`` on the upgrade) and sends the
stream's records, one text frame each, the JSON line ``ekws run`` prints
(``{"data": ..., "meta": ...}``). It is read-only: what the client sends is
discarded. It never slows the stream:

* the tail is a subscription with ``overflow: dropNewest`` (the stream's
  wire thread never waits for it), whose callback only queues the line on a
  :class:`~ekws.Broadcaster` of one client (a full queue drops its oldest
  line), so a slow terminal or network loses lines, never the stream;
* what was dropped is said: a ``{"dropped": N}`` frame (N the total so far)
  at most every second while N grows; ``ekws tail`` prints it on stderr;
* a tail that takes nothing for :data:`TAIL_SEND_TIMEOUT` seconds is
  disconnected (1008).

A browser's upgrade from another origin is refused (403): WebSockets are not
covered by CORS, so without that check any web page could read the streams of
a service that runs without a token.

Like a rule, a tail subscribes: on a stream nothing else reads it starts
the source for as long as it runs. At most :data:`MAX_LIVE` tails and
status event streams run at once (each holds one of the REST server's
request threads); more are answered 503.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from ... import Broadcaster, ClosedError, Message, SourceProps, StreamNotFound, __version__
from ..output import json_line
from . import status
from .rest import ApiError, Route, json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .ports import ServicePort

logger = logging.getLogger(__name__)

MAX_LIVE = 8  # tails + status event streams at once
TAIL_BUFFER = 1024  # lines queued per tail before the oldest is dropped
TAIL_SEND_TIMEOUT = 30.0  # seconds a tail may take nothing before it is disconnected
NOTICE_EVERY = 1.0  # seconds between two {"dropped": N} notices


_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
            "i386": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}


def info(service: ServicePort, request: Request) -> Response:
    """eKuiper's ``GET /`` (internal/server/rest.go rootHandler): version, os, arch (Go's names),
    upTimeSeconds and memoryTotal. It names the host, so it needs the token when one is set."""
    rest = service.rest
    if rest is not None and not rest.app.authorized(request):
        raise ApiError(401, "missing or wrong bearer token")
    machine = platform.machine().lower()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    go_os = {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)
    return json_response({"version": __version__, "os": go_os,
                          "arch": _GO_ARCH.get(machine, machine),
                          "upTimeSeconds": int(time.time() - service.started), "memoryTotal": str(memory)})


class LivePlugin:
    """Plug into :class:`~ekws.service.app.Service`: ``Service(..., plugins=[LivePlugin()])``."""

    def __init__(self) -> None:
        self.routes: Sequence[Route] = [
            Route("/", ("GET",), self._page, public=True),
            Route("/status", ("GET",), self._status),
            Route("/status/events", ("GET",), self._events),
            Route("/health", ("GET",), status.health),
            Route("/streams/<name>/tail", ("GET",), self._tail),
        ]
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_LIVE)
        self._lock = threading.Lock()
        self._tails: set[Broadcaster] = set()
        self.rates = status.Rates()

    def start(self, service: ServicePort) -> None:
        self._stopping.clear()

    def stop(self, service: ServicePort) -> None:
        """End every event stream and close every tail (1001)."""
        self._stopping.set()
        with self._lock:
            tails = list(self._tails)
        for tail in tails:
            tail.close()

    # -- routes ---------------------------------------------------------------------------

    def _page(self, service: ServicePort, request: Request) -> Response:
        """The status page to a browser (its Accept names text/html); eKuiper's JSON info to the rest."""
        if any(value == "text/html" and quality > 0 for value, quality in request.accept_mimetypes):
            return status.page(service, request)
        return info(service, request)

    def _status(self, service: ServicePort, request: Request) -> Response:
        return status.json_snapshot(status.snapshot(service, self.rates))

    def _take_slot(self) -> None:
        if self._stopping.is_set():
            raise ApiError(503, "the service is stopping")
        if not self._slots.acquire(blocking=False):
            raise ApiError(503, f"too many live views (tails and status pages) at once: at most {MAX_LIVE}")

    def _events(self, service: ServicePort, request: Request) -> Response:
        self._take_slot()
        return status.event_response(status.events(lambda: status.snapshot(service, self.rates),
                                                   self._stopping, self._slots.release))

    def _tail(self, service: ServicePort, request: Request, name: str) -> Response:
        if name not in service.runtime.streams():
            raise ApiError(404, f"no stream named {name!r}")
        origin = request.headers.get("Origin")
        if origin and urlsplit(origin).netloc.lower() != request.host.lower():
            # Browsers let any page open a WebSocket anywhere (no CORS): without this,
            # a web page could read a stream of a service that has no token.
            raise ApiError(403, f"origin {origin!r} is not this service's; tails are for ekws tail "
                                "and pages served from this port")
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            raise ApiError(426, f"GET /streams/{name}/tail is a WebSocket endpoint: "
                                "send an Upgrade: websocket request (ekws tail does)")
        self._take_slot()
        return _TailResponse(self, service, name)

    # -- one tail, in its request thread ----------------------------------------------------

    def serve_tail(self, service: ServicePort, name: str, environ: WSGIEnvironment,
                   start_response: StartResponse) -> Iterable[bytes]:
        props = SourceProps(max_connections=1, ping_interval=20.0, max_message_size=64 * 1024)
        tail = Broadcaster.standalone(f"/streams/{name}/tail", props, buffer_length=TAIL_BUFFER,
                                      send_timeout=TAIL_SEND_TIMEOUT)
        with self._lock:
            self._tails.add(tail)
        notices = _Notices(tail)
        try:
            try:
                sub = service.runtime.subscribe(name, notices.on_message, overflow="dropNewest",
                                                buffer_length=TAIL_BUFFER)
            except (StreamNotFound, ClosedError) as exc:
                body = json.dumps({"error": 404, "message": str(exc)}).encode()
                start_response("404 Not Found", [("Content-Type", "application/json"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
            notices.start(sub)
            logger.info("tail of stream %s started", name)
            try:
                return tail.wsgi_app(environ, start_response)  # the whole tail; raises when it ends
            finally:
                notices.stop()
                sub.close()
                logger.info("tail of stream %s ended: %d line(s) sent, %d dropped", name, tail.sent_total,
                            notices.dropped())
        finally:
            tail.close()
            with self._lock:
                self._tails.discard(tail)
            self._slots.release()


class _TailResponse(Response):
    """A response that, when Werkzeug calls it, serves the tail over the upgraded socket."""

    def __init__(self, plugin: LivePlugin, service: ServicePort, name: str) -> None:
        super().__init__()
        self._serve = (plugin, service, name)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        plugin, service, name = self._serve
        return plugin.serve_tail(service, name, environ, start_response)


class _Notices:
    """The tail's subscription callback, and its ``{"dropped": N}`` notices every NOTICE_EVERY seconds."""

    def __init__(self, tail: Broadcaster) -> None:
        self.tail = tail
        self.sub: Any = None
        self._reported = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ekws-tail-notices-{id(self):x}")

    def on_message(self, msg: Message) -> None:
        try:
            self.tail.send_text(json_line(msg))
        except ClosedError:  # the tail ended; its subscription is closing
            pass

    def dropped(self) -> int:
        sub = self.sub
        return self.tail.dropped_total + (sub.dropped if sub is not None else 0)

    def start(self, sub: Any) -> None:
        self.sub = sub
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._done.wait(NOTICE_EVERY):
            if self.sub is not None and self.sub.closed:  # the stream was dropped or the runtime closed
                self.tail.close()
                return
            dropped = self.dropped()
            if dropped > self._reported and self.tail.clients:
                self._reported = dropped
                try:
                    self.tail.send_text(json.dumps({"dropped": dropped}))
                except ClosedError:
                    return
