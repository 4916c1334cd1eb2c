"""The live status page: ``GET /`` (the page), ``/status`` (a JSON snapshot), ``/status/events`` (SSE).

The page is one package file, ``status.html``, with its CSS and JavaScript
inline: no build step, nothing fetched from elsewhere (its
Content-Security-Policy forbids it), so it works on a device with no
Internet. It holds no data, so it is served without the token; the data
comes from ``/status/events``, which needs the token like every other
route. A browser cannot put a header on an ``EventSource``, so the page
reads the event stream with ``fetch`` (which can): the token is given once
in the address, ``http://host:9081/#token=...`` (a fragment never reaches
the server or its logs; the page moves it to ``sessionStorage`` and clears
the address bar), or typed into the page when it is asked for.

A snapshot is plain numbers and strings from the SDK's public API
(``Runtime.status``) and the rule manager when one is plugged in; records/s
is derived by the page from two snapshots (and given in ``/status``, from
the last two snapshots the service took).
"""

from __future__ import annotations

import json
import pkgutil
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from werkzeug.wrappers import Request, Response

from ... import ConfigError, StreamNotFound, __version__
from .rest import json_response

if TYPE_CHECKING:
    from ..app import Service

PERIOD = 1.0  # seconds between two SSE events
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_SINK_KEY = re.compile(r"^sink_(.+)_(\d+)_0_(.+)$")


def page_text() -> str:
    # pkgutil, not importlib.resources: that import alone costs the service ~2 MB of RSS.
    data = pkgutil.get_data(__name__, "status.html")
    assert data is not None, "status.html is missing from the package"
    return data.decode("utf-8")


def page(service: Service, request: Request) -> Response:
    response = Response(page_text(), 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# -- the snapshot -----------------------------------------------------------------------------


def rule_manager(service: Service) -> Any:
    """The rule manager a plugin gave the service, if any (found by what it can do)."""
    candidates = [getattr(service, "rules", None)]
    for plugin in service.plugins:
        candidates += [plugin, getattr(plugin, "rules", None), getattr(plugin, "manager", None)]
    for candidate in candidates:
        if candidate is not None and all(callable(getattr(candidate, name, None))
                                         for name in ("list", "status", "describe")):
            return candidate
    return None


def _stream(service: Service, name: str) -> Optional[dict[str, Any]]:
    runtime = service.runtime
    try:
        definition = runtime.describe_stream(name)
        metrics = runtime.status(name)
    except StreamNotFound:  # dropped meanwhile
        return None
    try:
        props = runtime.config.props(definition.conf_key)
    except ConfigError:
        props = None
    server = props is None or props.is_server
    if server:
        address = runtime.server_address
        scheme = "wss" if runtime.config.server.http_server_tls else "ws"
        where = definition.datasource
        if address:
            where = f"{scheme}://{address[0]}:{address[1]}{where}"
    else:
        assert props is not None
        where = f"{props.scheme}://{props.addr}{definition.datasource}"
    out: dict[str, Any] = {
        "name": name,
        "mode": "server" if server else "client",
        "url": where,
        "origin": service.origin(name),
        "state": str(metrics.get("state", "")),
    }
    for key in ("last_error", "records_in_total", "exceptions_total", "decode_errors_total", "dropped_total",
                "last_exception", "last_exception_time", "connections", "connections_total",
                "reconnects_total", "buffer_length", "subscriptions", "connection_last_connected_time"):
        out[key] = metrics.get(key)
    return out


def _rule(manager: Any, rule_id: str) -> Optional[dict[str, Any]]:
    try:
        status = manager.status(rule_id)
        body = manager.describe(rule_id)
    except Exception:  # deleted meanwhile: RuleNotFound, whatever the manager names it
        return None
    actions: dict[tuple[str, int], dict[str, Any]] = {}
    records_in = 0
    for key, value in status.items():
        match = _SINK_KEY.match(key)
        if match:
            kind, index, name = match.group(1), int(match.group(2)), match.group(3)
            actions.setdefault((kind, index), {"kind": kind, "index": index})[name] = value
        elif key.startswith("source_") and key.endswith("_records_in_total"):
            records_in = value
    for index, entry in enumerate(body.get("actions") or ()):
        if isinstance(entry, dict) and len(entry) == 1:
            ((kind, props),) = entry.items()
            if (kind, index) in actions and isinstance(props, dict):
                actions[(kind, index)]["target"] = _target(kind, props)
    return {
        "id": rule_id,
        "status": status.get("status"),
        "message": status.get("message") or "",
        "sql": body.get("sql") or f"SELECT * FROM {body.get('stream')}",
        "records_in_total": records_in,
        "actions": [actions[key] for key in sorted(actions, key=lambda k: k[1])],
    }


def _target(kind: str, props: dict[str, Any]) -> str:
    """Where an action sends, in a few words: a path, a URL, a file, a topic."""
    if kind == "websocket":
        addr = props.get("addr", props.get("address"))
        path = props.get("path", "/")
        return f"serves {path}" if addr == "" else f"{props.get('scheme', 'ws')}://{addr}{path}"
    for key in ("path", "topic", "callable", "server"):
        if isinstance(props.get(key), str):
            return str(props[key])
    return ""


class Rates:
    """records/s per stream from the last two snapshots at least ``PERIOD`` apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, int]] = (0.0, {})
        self._rates: dict[str, float] = {}

    def update(self, now: float, counts: dict[str, int]) -> dict[str, float]:
        with self._lock:
            then, before = self._last
            if now - then >= PERIOD * 0.9:
                if then:
                    self._rates = {name: max(0, count - before.get(name, count)) / (now - then)
                                   for name, count in counts.items()}
                self._last = (now, counts)
            return dict(self._rates)


def snapshot(service: Service, rates: Rates) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values."""
    now = time.time()
    streams = [s for s in (_stream(service, name) for name in service.runtime.streams()) if s is not None]
    per_second = rates.update(now, {s["name"]: s["records_in_total"] or 0 for s in streams})
    for stream in streams:
        stream["records_per_s"] = round(per_second.get(stream["name"], 0.0), 1)
    manager = rule_manager(service)
    rules: list[dict[str, Any]] = []
    if manager is not None:
        for entry in manager.list():
            rule = _rule(manager, entry["id"])
            if rule is not None:
                rules.append(rule)
    rest = service.rest.address if service.rest is not None else None
    return {
        "time": int(now * 1000),
        "version": __version__,
        "uptime_s": int(now - service.started),
        "rest": f"{rest[0]}:{rest[1]}" if rest else None,
        "streams": streams,
        "rules": rules if manager is not None else None,
        "health": service.health(),
    }


# -- the health endpoint ------------------------------------------------------------------------


def health(service: Service, request: Request) -> Response:
    """``GET /health`` for monitors: 200 ``ok``, or 503 ``degraded: 1 rule failing (r1: ...)``.

    ``/ping`` (eKuiper's) says the process answers; this says whether every
    rule that should run does, and connects (see :mod:`ekws.service.health`).
    """
    state = service.health()
    response = Response(state + "\n", 200 if state == "ok" else 503, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- the event stream --------------------------------------------------------------------------


def events(snap: Any, stopping: threading.Event, release: Any) -> Iterator[bytes]:
    """SSE: a snapshot every PERIOD until the client leaves or the service stops.

    ``release`` is called once the stream ends, however it ends (the slot it held).
    """
    try:
        yield b"retry: 2000\n\n"
        while not stopping.is_set():
            yield b"event: status\ndata: " + json.dumps(snap(), allow_nan=False).encode() + b"\n\n"
            if stopping.wait(PERIOD):
                break
    finally:
        release()


def event_response(body: Iterator[bytes]) -> Response:
    response = Response(body, 200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def json_snapshot(value: dict[str, Any]) -> Response:
    response = json_response(value)
    response.headers["Cache-Control"] = "no-store"
    return response


__all__ = ["PERIOD", "Rates", "event_response", "events", "health", "json_snapshot", "page",
           "rule_manager", "snapshot"]
