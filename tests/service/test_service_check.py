"""The connectivity check against real servers: live, dead, TLS-misconfigured, 404-ing, silent."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http import HTTPStatus

import pytest
from helpers.certs import make_pki
from helpers.service import Service, write_etc
from websockets.sync.server import serve

from ekws.config import ServerConfig, SourceProps
from ekws.service.check import check_client, check_server


@contextmanager
def ws_server(ssl_context=None, refuse=False):
    def handler(ws):
        for _ in ws:
            pass

    def process_request(connection, request):
        if refuse:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such path\n")
        return None

    with serve(handler, "127.0.0.1", 0, ssl=ssl_context, process_request=process_request) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(10)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_live_server_passes():
    with ws_server() as port:
        result = check_client(SourceProps(addr=f"127.0.0.1:{port}"), "/api/data")
    assert result.ok and result.message == f"ws://127.0.0.1:{port}/api/data: connected (HTTP 101)"


def test_a_dead_server_is_refused():
    port = dead_port()
    result = check_client(SourceProps(addr=f"127.0.0.1:{port}"), "/")
    assert not result.ok and "connection refused" in result.message and f"127.0.0.1:{port}" in result.message


def test_a_404_names_the_status():
    with ws_server(refuse=True) as port:
        result = check_client(SourceProps(addr=f"127.0.0.1:{port}"), "/nope")
    assert not result.ok and "refused the upgrade with HTTP 404" in result.message


def test_tls_with_an_unknown_ca_fails_with_the_reason(tmp_path):
    pki, other = make_pki(tmp_path), make_pki(tmp_path, name="other")
    with ws_server(pki.server_context()) as port:
        good = check_client(
            SourceProps(addr=f"127.0.0.1:{port}", scheme="wss", root_ca_path=str(pki.ca_path)), "/"
        )
        bad = check_client(
            SourceProps(addr=f"127.0.0.1:{port}", scheme="wss", root_ca_path=str(other.ca_path)), "/"
        )
        skip = check_client(
            SourceProps(addr=f"127.0.0.1:{port}", scheme="wss", insecure_skip_verify=True), "/"
        )
    assert good.ok and skip.ok
    assert not bad.ok and "TLS handshake failed" in bad.message and "certificate" in bad.message


def test_wss_against_a_plain_server_is_a_tls_failure():
    with ws_server() as port:
        result = check_client(
            SourceProps(addr=f"127.0.0.1:{port}", scheme="wss", insecure_skip_verify=True), "/"
        )
    assert not result.ok and "TLS handshake failed" in result.message


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        result = check_client(SourceProps(addr=f"127.0.0.1:{port}", connect_timeout=0.3), "/")
    assert not result.ok and "no answer within 0.3 s" in result.message


def test_server_mode_checks_the_address():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = check_server(ServerConfig(http_server_ip="127.0.0.1", http_server_port=port), None)
        served = check_server(
            ServerConfig(http_server_ip="127.0.0.1", http_server_port=port), ("127.0.0.1", port)
        )
    assert not taken.ok and f"cannot listen on 127.0.0.1:{port}" in taken.message
    assert served.ok and "served by this ekws" in served.message
    free = check_server(ServerConfig(http_server_ip="127.0.0.1", http_server_port=dead_port()), None)
    assert free.ok


def test_the_check_over_rest_and_the_cli(tmp_path):
    with Service(write_etc(tmp_path)) as svc, ws_server() as live, ws_server(refuse=True) as refusing:
        path = "/metadata/sources/connection/websocket"
        status, body = svc.json("POST", path, {"addr": f"127.0.0.1:{live}", "datasource": "/x"})
        assert status == 200 and "connected" in body["message"]
        status, body = svc.json("POST", path, {"addr": f"127.0.0.1:{dead_port()}"})
        assert status == 400 and body["error"] == 1000 and "connection refused" in body["message"]
        status, body = svc.json("POST", path, {"addr": f"127.0.0.1:{refusing}"})
        assert status == 400 and "HTTP 404" in body["message"]
        status, body = svc.json("POST", path, {"addr": ""})  # server mode: this ekws serves it
        assert status == 200 and "served by this ekws" in body["message"]
        status, body = svc.json("POST", path, {"addr": "", "datasource": "no-slash"})
        assert status == 400 and "datasource" in body["message"]
        out = svc.cli("check", "websocket", json.dumps({"addr": f"127.0.0.1:{live}"}))
        assert out.returncode == 0 and "connected (HTTP 101)" in out.stdout
        out = svc.cli("CHECK", "WebSocket", json.dumps({"addr": f"127.0.0.1:{refusing}"}))
        assert out.returncode == 1 and "HTTP 404" in out.stderr


@pytest.mark.parametrize(
    "props", [{"addr": "nothost"}, {"addr": "127.0.0.1:1", "scheme": "ftp"}, {"nope": 1}]
)
def test_bad_props_are_400_naming_the_prop(tmp_path, props):
    with Service(write_etc(tmp_path)) as svc:
        status, body = svc.json("POST", "/metadata/sources/connection/websocket", props)
    assert status == 400 and "request body" in body["message"]
