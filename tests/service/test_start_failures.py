"""Loud failures: a declared rule that cannot start for a config reason ends `ekws run` with exit 2;
a transient one (a dial) is retried while STATUS=, /status and /health say "degraded".

Before, such a rule was logged, the service said READY=1 and looked healthy
(issue 19). Each case runs `ekws run` as a real subprocess.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from helpers.common import wait_until
from helpers.peers import WsPeer
from helpers.service import DEMO, ENV, Service, log_rule, write_etc

SOURCES = "default:\n  addr: ''\n{extra}source:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n{server}"


def run_to_exit(etc) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(etc)], capture_output=True,
                          text=True, env=ENV, cwd=etc.parent, timeout=30)


def test_a_missing_server_certificate_exits_2_naming_the_rule_and_the_file(tmp_path):
    missing = tmp_path / "no" / "server.crt"
    server = f"  httpServerTls:\n    certfile: {missing}\n    keyfile: {tmp_path / 'no' / 'server.key'}\n"
    etc = write_etc(tmp_path, rules=[log_rule("websocketDemo", "r1")],
                    websocket_yaml=SOURCES.format(extra="", server=server))
    out = run_to_exit(etc)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ekws: ") and "ekws.yaml:rules[0]: rule r1 cannot start" in last, last
    assert str(missing) in last


def test_a_file_action_whose_folder_does_not_exist_exits_2(tmp_path):
    path = tmp_path / "missing" / "out.jsonl"
    rule = {"id": "r1", "sql": "SELECT * FROM websocketDemo", "actions": [{"file": {"path": str(path)}}]}
    out = run_to_exit(write_etc(tmp_path, rules=[rule]))
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "rule r1 cannot start" in last and str(path) in last, last


def test_a_path_that_cannot_be_mounted_exits_2(tmp_path):
    twin = 'CREATE STREAM twin() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'
    etc = write_etc(tmp_path, streams=(DEMO, twin),
                    rules=[log_rule("websocketDemo", "r1"), log_rule("twin", "r2")])
    out = run_to_exit(etc)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "rules[1]: rule r2 cannot start" in last and "/api/data" in last, last


FEED = 'CREATE STREAM feed() WITH (DATASOURCE="/feed", CONF_KEY="remote", FORMAT="json")'


def _wss(tmp_path, tls: str) -> str:
    """websocket.yaml with a client-mode wss conf key ``remote`` (nothing listens: no dial succeeds)."""
    extra = "remote:\n  addr: 127.0.0.1:1\n  scheme: wss\n" + tls
    return SOURCES.format(extra=extra, server="")


@pytest.mark.parametrize("tls, named", [
    ("  rootCaPath: {base}/no/ca.pem\n", "remote.rootCaPath: cannot load '{base}/no/ca.pem'"),
    ("  certificationPath: {base}/no/c.pem\n  privateKeyPath: {base}/no/k.pem\n",
     "remote.certificationPath/privateKeyPath: cannot load '{base}/no/c.pem'"),
    ("  rootCaPath: {base}\n", "Is a directory"),
    ("  rootCaPath: {base}/etc/ekws.yaml\n", "cannot load '{base}/etc/ekws.yaml'"),  # not a certificate
    ("  privateKeyPath: {base}/k.pem\n", "needs both certificationPath and privateKeyPath"),
])
def test_a_client_mode_tls_file_that_does_not_load_exits_2_naming_the_rule_and_the_file(tmp_path, tls, named):
    etc = write_etc(tmp_path, streams=(FEED,), rules=[log_rule("feed", "r1")],
                    websocket_yaml=_wss(tmp_path, tls.format(base=tmp_path)))
    out = run_to_exit(etc)  # at start, not after a dial: nothing listens on port 1
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"{etc / 'ekws.yaml'}:rules[0]: rule r1 cannot start: " in last, last
    assert named.format(base=tmp_path) in last, last
    assert "connecting" not in out.stderr


def test_a_bad_tls_min_version_exits_2_naming_the_conf_key(tmp_path):
    etc = write_etc(tmp_path, streams=(FEED,), rules=[log_rule("feed", "r1")],
                    websocket_yaml=_wss(tmp_path, "  tlsMinVersion: '1.5'\n"))
    out = run_to_exit(etc)
    assert out.returncode == 2, out.stderr
    assert "sources/websocket.yaml:remote.tlsMinVersion: " in out.stderr.strip().splitlines()[-1]


def test_a_declared_wss_stream_no_rule_reads_is_checked_too(tmp_path):
    etc = write_etc(tmp_path, streams=(DEMO, FEED), rules=[log_rule("websocketDemo", "r1")],
                    websocket_yaml=_wss(tmp_path, f"  rootCaPath: {tmp_path}/no/ca.pem\n"))
    out = run_to_exit(etc)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"ekws.yaml:streams[1]: stream feed: remote.rootCaPath: cannot load '{tmp_path}/no/ca.pem'" in last


def test_a_rest_rule_on_a_bad_tls_file_is_created_as_in_ekuiper_and_never_silently_degraded(tmp_path):
    # eKuiper loads the TLS files when the connection dials (internal/io/http/httpserver/websocketConn.go,
    # pkg/cert/cert.go GenTLSConfig): POST /rules answers 201 and the rule is in error. ekws loads them
    # at the rule's start, so its status, /health and `ekws create rule` name the file at once.
    missing = f"{tmp_path}/no/ca.pem"
    etc = write_etc(tmp_path, streams=(), rules=[],
                    websocket_yaml=_wss(tmp_path, f"  rootCaPath: {missing}\n"))
    with Service(etc) as service:
        assert service.request("POST", "/streams", {"sql": FEED})[0] == 201  # no rule reads it yet
        assert service.request("POST", "/rules", log_rule("feed", "r1"))[0] == 201
        status = json.loads(service.request("GET", "/rules/r1/status")[2])
        assert status["status"] == "stopped by error" and missing in status["message"], status
        code, _, text = service.request("GET", "/health")
        assert code == 503, text
        assert text.startswith("degraded: 1 rule failing (r1: failed to start: remote.rootCaPath"), text
        assert missing in text
        out = service.cli("create", "rule", "r2", json.dumps(log_rule("feed", "r2")))
        assert out.returncode != 0 and missing in out.stderr, out
        assert service.stop() == 0


def test_a_reload_adding_a_wss_stream_whose_tls_file_is_missing_is_refused(tmp_path):
    from test_reload import reload

    missing = f"{tmp_path}/no/ca.pem"
    etc = write_etc(tmp_path, websocket_yaml=_wss(tmp_path, f"  rootCaPath: {missing}\n"))
    with Service(etc) as service:
        write_etc(tmp_path, streams=(DEMO, FEED), websocket_yaml=_wss(tmp_path, f"  rootCaPath: {missing}\n"))
        line = reload(service)
        assert "ERROR" in line and "reload failed, keeping the running configuration" in line, line
        assert f"ekws.yaml:streams[1]: stream feed: remote.rootCaPath: cannot load '{missing}'" in line, line
        assert sorted(service.json("GET", "/streams")[1]) == ["websocketDemo"]
        assert service.proc.poll() is None
        assert service.stop() == 0


def _notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(15)
    return sock


def _next_status(sock, text: str) -> str:
    while True:  # bounded by the socket's timeout
        message = sock.recv(4096).decode()
        status = [line[7:] for line in message.split("\n") if line.startswith("STATUS=")]
        if status and text in status[0]:
            return status[0]


@pytest.mark.timeout(90)
def test_a_dial_that_fails_is_retried_and_the_service_says_degraded_until_it_connects(tmp_path):
    peer = WsPeer(lambda ws: [None for _ in ws])
    port = peer.port
    feed = 'CREATE STREAM feed() WITH (DATASOURCE="/feed", CONF_KEY="remote", FORMAT="json")'
    extra = f"remote:\n  addr: 127.0.0.1:{port}\n  reconnect:\n    initialDelay: 50ms\n    maxDelay: 200ms\n"
    etc = write_etc(tmp_path, streams=(feed,), rules=[log_rule("feed", "r1")],
                    websocket_yaml=SOURCES.format(extra=extra, server=""))
    sock = _notify_socket(tmp_path)
    try:
        with Service(etc, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}) as service:
            assert wait_until(lambda: service.request("GET", "/health")[0] == 200, 10)
            assert service.request("GET", "/health")[2] == "ok\n"
            peer.close()  # the far end goes away: ekws redials, refused, again and again
            assert wait_until(lambda: service.request("GET", "/health")[0] == 503, 10)
            status, ctype, text = service.request("GET", "/health")
            assert ctype.startswith("text/plain")
            assert text.startswith("degraded: 1 rule failing (r1: stream feed: "), text
            assert json.loads(service.request("GET", "/status")[2])["health"] == text.strip()
            assert _next_status(sock, "degraded: 1 rule failing (r1: stream feed: ").endswith(
                f"; 1 stream; REST API http://127.0.0.1:{service.port}")
            service.err.wait_for(r"WARNING ekws\.service\.app: degraded: 1 rule failing \(r1: ")
            assert service.request("GET", "/ping")[0] == 200  # eKuiper's liveness is unchanged
            assert service.proc.poll() is None
            again = WsPeer(lambda ws: [None for _ in ws], port=port)  # back: it connects, healthy again
            try:
                assert wait_until(lambda: service.request("GET", "/health")[0] == 200, 15)
                assert _next_status(sock, "1 stream; REST API").startswith("1 stream")
                service.err.wait_for("healthy again")
                assert service.stop() == 0
            finally:
                again.close()
    finally:
        sock.close()
        peer.close()


def test_a_rule_stopped_on_purpose_is_not_a_failure(tmp_path):
    with Service(write_etc(tmp_path)) as service:
        assert service.request("GET", "/health")[:1] == (200,)
        assert service.cli("stop", "rule", "demoLog").returncode == 0
        assert service.request("GET", "/health")[0] == 200
        assert service.stop() == 0


def test_which_start_failures_are_the_configs_fault():
    from ekws import BindError, ConfigError, ServerError
    from ekws.actions import ActionError
    from ekws.service.health import is_config_failure, summary

    for exc in (ConfigError("cannot load '/x.crt'"), ServerError("/a is served by stream b"),
                ActionError("file: path"), FileNotFoundError(2, "No such file"), PermissionError(13, "no")):
        assert is_config_failure(exc), exc
    wrapped = ActionError("websocket: port taken")
    wrapped.__cause__ = BindError("port 10081 in use")
    for exc in (ConnectionRefusedError(111, "refused"), TimeoutError(), wrapped, BindError("in use")):
        assert not is_config_failure(exc), exc
    assert summary([]) == "ok"
    assert summary([("r1", "x")]) == "degraded: 1 rule failing (r1: x)"
    assert summary([(f"r{i}", "y " * 200) for i in range(5)]).startswith("degraded: 5 rules failing (r0: y y")
    assert summary([(f"r{i}", "y") for i in range(5)]).endswith("r2: y; 2 more)")
