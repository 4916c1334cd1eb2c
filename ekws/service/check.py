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

The dial is written out here (a socket, an ``ssl`` context, one HTTP request)
rather than borrowed from websocket-client so every failure maps to one plain
reason and nothing is retried.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
from dataclasses import dataclass

from ..config import ServerConfig, SourceProps
from ..errors import BindError, ConfigError
from ..wire.server import listen_socket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                 "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_MAX_RESPONSE = 16 * 1024  # the upgrade response head; a peer cannot make us read more


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check_client(props: SourceProps, datasource: str) -> CheckResult:
    """Dial and upgrade once, as a client-mode stream would; never raises for a peer's fault."""
    host, _, port = props.addr.rpartition(":")
    host = host.strip("[]")
    url = f"{props.scheme}://{props.addr}{datasource}"
    try:
        context = _client_context(props) if props.scheme == "wss" else None
    except ConfigError as exc:
        return CheckResult(False, f"{url}: {exc}")
    try:
        sock = socket.create_connection((host, int(port)), timeout=props.connect_timeout)
    except socket.timeout:
        return CheckResult(False, f"{url}: no answer within {props.connect_timeout:g} s")
    except ConnectionRefusedError:
        return CheckResult(False, f"{url}: connection refused (nothing listens on {props.addr})")
    except OSError as exc:
        return CheckResult(False, f"{url}: cannot connect: {exc.strerror or exc}")
    try:
        with sock:
            if context is not None:
                try:
                    sock = context.wrap_socket(sock, server_hostname=host)
                except ssl.SSLCertVerificationError as exc:
                    return CheckResult(False, f"{url}: TLS handshake failed: {exc.verify_message}")
                except ssl.SSLError as exc:
                    return CheckResult(False, f"{url}: TLS handshake failed: {exc.reason or exc}")
            return _upgrade(sock, host, props, datasource, url)
    except socket.timeout:
        return CheckResult(False, f"{url}: no answer within {props.connect_timeout:g} s")
    except OSError as exc:
        return CheckResult(False, f"{url}: connection failed during the handshake: {exc}")


def _upgrade(sock: socket.socket, host: str, props: SourceProps, datasource: str, url: str) -> CheckResult:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    lines = [f"GET {datasource} HTTP/1.1", f"Host: {props.addr}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if props.subprotocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(props.subprotocols))
    lines += [f"{name}: {value}" for name, value in props.request_header]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return CheckResult(False, f"{url}: the server closed the connection during the handshake")
        head += chunk
        if len(head) > _MAX_RESPONSE:
            return CheckResult(False, f"{url}: the handshake response is over {_MAX_RESPONSE} bytes")
    status_line, *header_lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return CheckResult(False, f"{url}: not an HTTP response: {status_line[:80]!r}")
    if parts[1] != "101":
        return CheckResult(False, f"{url}: the server refused the upgrade with HTTP {' '.join(parts[1:])}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    if headers.get("sec-websocket-accept") != expected:
        return CheckResult(False, f"{url}: the server answered 101 with a wrong Sec-WebSocket-Accept")
    # A masked close frame, code 1000: leave as a good client does.
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
    sock.sendall(b"\x88\x82" + mask + payload)
    return CheckResult(True, f"{url}: connected (HTTP 101)")


def _client_context(props: SourceProps) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _TLS_VERSIONS.get(props.tls_min_version, ssl.TLSVersion.TLSv1_2)
    try:
        if props.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif props.root_ca_path:
            ctx.load_verify_locations(props.root_ca_path)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if props.certification_path:
            ctx.load_cert_chain(props.certification_path, props.private_key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files: {exc}") from exc
    return ctx


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
