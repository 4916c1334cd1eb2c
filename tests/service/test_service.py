"""The service as a real subprocess: every REST path and error, auth, limits, persistence, SIGTERM."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers.service import DEMO, ENV, Lines, Service, log_rule, write_etc
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

S2 = 'CREATE STREAM s2 (temperature FLOAT, tags ARRAY(STRING), pos STRUCT(x BIGINT)) WITH (DATASOURCE="/s2")'


@pytest.fixture
def service(tmp_path):
    with Service(write_etc(tmp_path)) as svc:
        yield svc


def test_import_ekws_does_not_load_the_service():
    code = (
        "import sys, ekws; print(sorted(m for m in sys.modules "
        "if m.split('.')[:2] in (['ekws', 'service'], ['ekws', 'cli']) or m == 'sqlite3'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert out.stdout.strip() == "[]"


def test_ping_and_streams_crud_with_ekuipers_messages(service):
    assert service.request("GET", "/ping")[0] == 200
    assert service.json("GET", "/streams") == (200, ["websocketDemo"])
    status, ctype, text = service.request("POST", "/streams", {"sql": S2})
    assert (status, text) == (201, "Stream s2 is created.") and ctype.startswith("text/plain")
    assert service.json("GET", "/streams") == (200, ["s2", "websocketDemo"])
    status, body = service.json("GET", "/streams/s2")
    assert status == 200 and body["Name"] == "s2" and body["Options"]["datasource"] == "/s2"
    assert [f["Name"] for f in body["StreamFields"]] == ["temperature", "tags", "pos"]
    assert service.json("GET", "/streams/s2/schema") == (
        200,
        {
            "temperature": {"type": "float", "index": 0},  # eKuiper's JsonStreamField: index always
            "tags": {"type": "array", "items": {"type": "string", "index": 0}, "index": 0},
            "pos": {"type": "struct", "properties": {"x": {"type": "bigint", "index": 0}}, "index": 0},
        },
    )
    assert service.json("GET", "/streams/websocketDemo/schema") == (200, {})
    status, details = service.json("GET", "/streamdetails")
    assert status == 200 and {d["name"]: d["origin"] for d in details} == {
        "s2": "rest",
        "websocketDemo": "ekws.yaml",
    }
    status, metrics = service.json("GET", "/streams/s2/status")
    # No rule reads it: as in eKuiper, its source does not run.
    assert status == 200 and metrics["records_in_total"] == 0 and metrics["subscriptions"] == 0
    assert metrics["connection_status"] == -1
    new = S2.replace("/s2", "/s2b")
    assert service.request("PUT", "/streams/s2", {"sql": new})[::2] == (200, "Stream s2 is updated.")
    assert service.json("GET", "/streams/s2")[1]["Options"]["datasource"] == "/s2b"
    assert service.request("DELETE", "/streams/s2")[::2] == (200, "Stream s2 is dropped.")
    assert service.json("GET", "/streams") == (200, ["websocketDemo"])


def test_records_of_a_rest_created_stream_reach_stdout_through_a_log_rule(service):
    assert service.request("POST", "/streams", {"sql": S2})[0] == 201
    assert service.request("POST", "/rules", log_rule("s2"))[0] == 201
    with connect(f"ws://127.0.0.1:{service.ws_port}/s2", open_timeout=5) as ws:
        ws.send(json.dumps({"temperature": 21, "tags": ["a"], "pos": {"x": 1}}))
        line = service.out.wait_for(r'"stream": "s2"').string
    assert json.loads(line)["data"] == {"temperature": 21.0, "tags": ["a"], "pos": {"x": 1}}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/streams", None, 400, "body is empty"),
        ("POST", "/streams", b"{nope", 400, "not valid JSON"),
        ("POST", "/streams", [1], 400, "expected a JSON object"),
        ("POST", "/streams", b"[" * 100000, 400, "nests deeper than 32"),
        ("POST", "/streams", b"[" * 900 + b"]" * 900, 400, "nests deeper than 32"),
        ("PUT", "/metadata/sources/websocket/confKeys/k", b'{"a":' * 500 + b"1" + b"}" * 500, 400, "nests"),
        ("POST", "/streams", {"sql": 5}, 400, 'expected {"sql"'),
        ("POST", "/streams", {"sql": 'CREATE STREAM x() WITH (DATASORCE="/x")'}, 400, "at line 1, column"),
        ("POST", "/streams", {"sql": 'CREATE STREAM x() WITH (CONF_KEY="nokey")'}, 400, "unknown conf key"),
        ("POST", "/streams", {"sql": DEMO}, 400, "Create stream fails: Item websocketDemo already exists"),
        ("GET", "/streams/nope", None, 404, "nope"),
        ("GET", "/streams/nope/schema", None, 404, "nope"),
        ("GET", "/streams/nope/status", None, 404, "nope"),
        ("DELETE", "/streams/nope", None, 404, "nope"),
        ("PUT", "/streams/nope", {"sql": S2}, 404, "nope"),
        ("PUT", "/streams/websocketDemo", {"sql": DEMO}, 409, "declared in"),
        ("DELETE", "/streams/websocketDemo", None, 409, "declared in"),
        ("GET", "/nothing/here", None, 404, "no such path"),
        ("PATCH", "/streams", None, 405, "PATCH is not allowed"),
        ("DELETE", "/metadata/sources/websocket/confKeys/nokey", None, 404, "conf key nokey is not found"),
        ("DELETE", "/metadata/sources/websocket/confKeys/remote", None, 409, "edit the file"),
        ("PUT", "/metadata/sources/websocket/confKeys/k1", {"addr": "http://x"}, 400, "holds a URL"),
        ("PUT", "/metadata/sources/websocket/confKeys/source", {"httpServerPort": 1}, 400, "shared server"),
        ("POST", "/metadata/sources/connection/websocket", {"addr": 5}, 400, "addr"),
    ],
)
def test_errors_are_ekuipers_json_shape(service, method, path, body, status, message):
    raw = body if isinstance(body, bytes) else None
    got, ctype, text = service.request(method, path, None if raw else body, raw=raw)
    assert got == status and ctype == "application/json", text
    parsed = json.loads(text)
    # eKuiper's numeric codes (pkg/errorx): 1002 for not found, 3000 for a stream statement that
    # fails in POST /streams (internal/processor/stream.go), 1000 for the rest.
    statement = path == "/streams" and isinstance(body, dict) and isinstance(body.get("sql"), str)
    code = 1002 if status == 404 else 3000 if statement else 1000
    assert parsed["error"] == code and message in parsed["message"]


def test_put_with_another_name_is_refused_and_the_old_definition_stays(service):
    assert service.request("POST", "/streams", {"sql": S2})[0] == 201
    status, body = service.json("PUT", "/streams/s2", {"sql": DEMO.replace("websocketDemo", "other")})
    assert status == 400 and "not 's2'" in body["message"]
    status, body = service.json("PUT", "/streams/s2", {"sql": 'CREATE STREAM s2() WITH (BAD="1")'})
    assert status == 400 and "BAD" in body["message"]
    assert service.json("GET", "/streams/s2")[1]["Options"]["datasource"] == "/s2"


def test_bodies_over_one_mib_get_413(service):
    status, _, text = service.request("POST", "/streams", raw=b"{" + b" " * (1 << 20) + b"}")
    assert status == 413 and json.loads(text)["error"] == 1000


def test_chunked_bodies_over_one_mib_get_413_too(service):
    import http.client

    conn = http.client.HTTPConnection(service.host, service.port, timeout=20)
    try:
        chunks = iter([b"{"] + [b" " * 65536] * 17 + [b"}"])
        conn.request("POST", "/streams", body=chunks, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["error"] == 1000
    finally:
        conn.close()
    assert service.request("GET", "/ping")[0] == 200


def test_conf_keys_over_rest_are_stored_masked_and_used(service, tmp_path):
    status, keys = service.json("GET", "/metadata/sources/yaml/websocket")
    assert status == 200 and set(keys) == {"default", "remote", "source"}
    props = {"addr": "", "authToken": "s3cret", "maxConnections": 3}
    assert service.request("PUT", "/metadata/sources/websocket/confKeys/k1", props)[::2] == (
        200,
        "Conf key k1 is saved.",
    )
    keys = service.json("GET", "/metadata/sources/yaml/websocket")[1]
    assert keys["k1"] == {"addr": "", "authToken": "******", "maxConnections": 3}
    sql = 'CREATE STREAM k() WITH (DATASOURCE="/k", CONF_KEY="k1")'
    assert service.request("POST", "/streams", {"sql": sql})[0] == 201
    status, body = service.json("DELETE", "/metadata/sources/websocket/confKeys/k1")
    assert status == 400 and "used by stream(s) k" in body["message"]  # InUse: eKuiper's 400
    assert service.request("DELETE", "/streams/k")[0] == 200
    assert service.request("DELETE", "/metadata/sources/websocket/confKeys/k1")[0] == 200
    assert "k1" not in service.json("GET", "/metadata/sources/yaml/websocket")[1]
    assert "s3cret" not in service.err.text


def test_bearer_token_is_required_and_never_logged(tmp_path):
    with Service(write_etc(tmp_path, token="tok-123")) as svc:
        status, ctype, text = svc.request("GET", "/streams")
        assert status == 401 and json.loads(text) == {
            "error": 1000,
            "message": "missing or wrong bearer token",
        }
        assert svc.request("GET", "/streams", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert svc.request("GET", "/ping", headers={"Authorization": "Basic tok-123"})[0] == 401
        assert svc.request("GET", "/streams", headers={"Authorization": "Bearer tok-123"})[0] == 200
        assert svc.stop() == 0
    assert "tok-123" not in svc.err.text


def test_streams_and_conf_keys_survive_a_sigterm_restart_and_a_kill_9(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as svc:
        assert svc.request("PUT", "/metadata/sources/websocket/confKeys/k1", {"addr": ""})[0] == 200
        assert svc.request("POST", "/streams", {"sql": S2})[0] == 201
        assert svc.stop() == 0
    with Service(etc) as svc:
        assert svc.json("GET", "/streams") == (200, ["s2", "websocketDemo"])
        assert "k1" in svc.json("GET", "/metadata/sources/yaml/websocket")[1]
        sql = 'CREATE STREAM s3() WITH (DATASOURCE="/s3", CONF_KEY="k1")'
        assert svc.request("POST", "/streams", {"sql": sql})[0] == 201
        assert svc.request("DELETE", "/streams/s2")[0] == 200
        svc.stop(signal.SIGKILL)
    db = sqlite3.connect(str(tmp_path / "data" / "ekws.db"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    with Service(etc) as svc:
        assert svc.json("GET", "/streams") == (200, ["s3", "websocketDemo"])
        assert svc.stop() == 0


def test_the_yaml_wins_a_name_clash_and_the_stored_stream_comes_back_when_removed(tmp_path):
    with Service(write_etc(tmp_path, streams=())) as svc:
        assert svc.request("POST", "/streams", {"sql": DEMO.replace("/api/data", "/stored")})[0] == 201
        assert svc.stop() == 0
    with Service(write_etc(tmp_path)) as svc:
        assert svc.json("GET", "/streams/websocketDemo")[1]["Options"]["datasource"] == "/api/data"
        assert "shadowed by" in svc.err.text
        assert svc.stop() == 0
    with Service(write_etc(tmp_path, streams=())) as svc:
        assert svc.json("GET", "/streams/websocketDemo")[1]["Options"]["datasource"] == "/stored"
        assert svc.stop() == 0


def test_sigterm_delivers_every_received_record_and_closes_peers_with_1001(tmp_path):
    count = 600
    with (
        Service(write_etc(tmp_path)) as svc,
        connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", open_timeout=5) as ws,
    ):
        payload = "x" * 200
        for n in range(count):
            ws.send(json.dumps({"n": n, "pad": payload}))
        deadline = time.monotonic() + 10
        while svc.json("GET", "/streams/websocketDemo/status")[1]["records_in_total"] < count:
            assert time.monotonic() < deadline, "the service did not receive every record"
            time.sleep(0.05)
        assert svc.stop() == 0
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        lines = svc.out.wait_count(count)
    assert [json.loads(line)["data"]["n"] for line in lines] == list(range(count))
    assert "WARNING" not in svc.err.text


def test_sigterm_with_stdout_unread_warns_with_the_count_and_exits_0_within_10_s(tmp_path):
    """Nobody reads stdout: the printer blocks, the buffer fills; the stop cannot deliver them all."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ekws", "run", "-c", str(write_etc(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        err = Lines(proc.stderr)
        ready = err.wait_for(r"ready: REST API on http://[\d.]+:(\d+).* ws://[\d.]+:(\d+)/api/data")
        rest, ws_port = int(ready.group(1)), int(ready.group(2))
        with connect(f"ws://127.0.0.1:{ws_port}/api/data", open_timeout=5) as ws:
            for n in range(600):
                ws.send(json.dumps({"n": n, "pad": "y" * 500}))
            deadline = time.monotonic() + 10
            while True:  # the pipe (64 KiB) is full and records wait in the buffer
                metrics = http_json(rest, "/streams/websocketDemo/status")
                if metrics["buffer_length"] > 100:
                    break
                assert time.monotonic() < deadline, metrics
                time.sleep(0.05)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert time.monotonic() - start < 10
        warning = err.wait_for(r"WARNING .*stopped at the deadline .*: (\d+) received record")
        assert int(warning.group(1)) > 100
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def http_json(port, path):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def test_a_signal_stops_the_service_whenever_it_lands(tmp_path):
    # The handler once set a threading.Event: a signal landing inside the main
    # thread's Event.wait() deadlocked on the Event's own lock (about one stop
    # in ten hung). Signals at spread-out moments after READY, then a second
    # signal while stopping, must all end in a clean exit.
    etc = write_etc(tmp_path)
    for attempt in range(8):
        with Service(etc) as svc:
            time.sleep(0.061 * attempt)
            assert svc.stop(signal.SIGINT if attempt % 2 else signal.SIGTERM, timeout=10) == 0, svc.err.text
    with Service(etc) as svc:
        svc.proc.send_signal(signal.SIGTERM)
        svc.proc.send_signal(signal.SIGINT)
        assert svc.proc.wait(10) == 0
        svc.err.wait_for(r"received SIG(TERM|INT): stopping")
