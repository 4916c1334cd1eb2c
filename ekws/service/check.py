"""The connectivity check: can a websocket source with these props connect?

``POST /metadata/sources/connection/websocket`` (eKuiper's path) with conf-key
props as the body. eKuiper's own check always fails for websocket; this one
does the real thing:

* client mode (``addr`` set): dial ``{scheme}://{addr}{datasource}``, do the
  TLS handshake (wss) and the WebSocket upgrade within ``connectTimeout``, then
  close politely (1000). Failure reasons: refused, timeout, TLS (with the
  ssl reason), an HTTP status instead of 101, a bad ``Sec-WebSocket-Accept``.
* server mode (``addr`` empty): the shared server's address must be bindable,
  or already served by this ekws.

The dial is client mode's own (:func:`ekws.wire.client.dial`): the same TCP
connect, TLS context, upgrade and ``connectTimeout`` deadline as a stream, so
the check fails exactly where a stream would. Nothing is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ServerConfig, SourceProps
from ..errors import BindError, ConfigError, ConnectError
from ..wire.client import dial
from ..wire.frames import OP_CLOSE, encode_frame
from ..wire.server import listen_socket


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check_client(props: SourceProps, datasource: str) -> CheckResult:
    """Dial and upgrade once, as a client-mode stream would; never raises for a peer's fault."""
    url = f"{props.scheme}://{props.addr}{datasource}"
    try:
        sock = dial(url, props)
    except ConfigError as exc:
        return CheckResult(False, f"{url}: {exc}")
    except ConnectError as exc:
        return CheckResult(False, str(exc))
    with sock:
        try:  # leave as a good client does: a masked close frame, code 1000
            sock.settimeout(props.connect_timeout)
            sock.sendall(encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), mask=True))
        except OSError:
            pass
    return CheckResult(True, f"{url}: connected (HTTP 101)")


def check_server(server: ServerConfig, served: tuple[str, int] | None) -> CheckResult:
    """Can the shared server listen on its address (or does this ekws serve it already)?"""
    ip, port = server.http_server_ip, server.http_server_port
    where = f"{ip}:{port}"
    if served is not None and (port == 0 or served[1] == port):
        return CheckResult(True, f"{served[0]}:{served[1]} is served by this ekws")
    try:
        listen_socket(ip, port, backlog=1, what="source.httpServerIp/httpServerPort").close()
    except BindError as exc:
        return CheckResult(False, str(exc))
    return CheckResult(True, f"{where} is free: server-mode streams can listen there")
