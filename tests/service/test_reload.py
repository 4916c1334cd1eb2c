"""SIGHUP (``systemctl reload ekws``) applies the config files' difference to a running `ekws run`.

Each test runs the service as a real subprocess, edits its files, sends
SIGHUP and waits for the reload's log line: untouched streams keep their
peers (a peer sending through the reload loses nothing), a conf key change
restarts only the streams using it, and a file that does not load leaves
the running config as it was.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

from helpers.server import ws_connect
from helpers.service import DEMO, DEMO_RULE, Service, log_rule, write_etc
from websockets.exceptions import ConnectionClosed

S2 = 'CREATE STREAM s2() WITH (DATASOURCE="/s2", FORMAT="json", TYPE="websocket")'
SOURCES = "default:\n  addr: ''\n{extra}source:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n"


def reload(service: Service, count: int = 1) -> str:
    """SIGHUP, then wait for the reload's ``count``-th outcome line; returns it."""
    service.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    pattern = r"reload: done|reload failed"
    while True:
        service.err.wait_for(pattern, timeout=max(0.1, deadline - time.monotonic()))
        hits = [line for line in service.err.lines if "reload: done" in line or "reload failed" in line]
        if len(hits) >= count:
            return hits[count - 1]
        with service.err.cond:
            service.err.cond.wait(max(0.0, deadline - time.monotonic()))
        assert time.monotonic() < deadline, service.err.text


def records(service: Service, stream: str) -> list[dict]:
    out = []
    for line in service.out.lines:
        record = json.loads(line)
        if record["meta"]["stream"] == stream:
            out.append(record["data"])
    return out


class Sender:
    """A WebSocket peer sending {"seq": n} as fast as the connection takes them, until stopped."""

    def __init__(self, ws):
        self.ws = ws
        self.sent = 0
        self.closed: int | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.ws.send(json.dumps({"seq": self.sent}))
                self.sent += 1
                if self.sent % 50 == 0:
                    time.sleep(0.005)  # keep the machine usable for the service
        except ConnectionClosed as exc:
            self.closed = exc.rcvd.code if exc.rcvd else 1006

    def stop(self) -> int:
        self._stop.set()
        self.thread.join(10)
        return self.sent


def test_a_new_declared_rule_applies_while_a_peer_keeps_sending_and_nothing_is_lost(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as service:
        with ws_connect(f"ws://127.0.0.1:{service.ws_port}/api/data") as ws:
            sender = Sender(ws)
            service.out.wait_count(100)  # records flow before the reload
            write_etc(tmp_path, streams=(DEMO, S2), rules=[DEMO_RULE, log_rule("s2")])
            assert "reload: done (streams added: s2; rules added or changed: s2Log)" in reload(service)
            with ws_connect(f"ws://127.0.0.1:{service.ws_port}/s2") as other:  # the new path is mounted
                other.send(json.dumps({"on": "s2"}))
                service.out.wait_for('"on": "s2"|"on":"s2"')
            sent = sender.stop()
            assert sender.closed is None  # the demo peer was never disconnected
        assert service.stop() == 0
    got = [r["seq"] for r in records(service, "websocketDemo")]
    assert got == list(range(sent)), (len(got), sent)


def test_a_bad_config_on_reload_is_logged_and_the_running_one_kept(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as service:
        good = (etc / "ekws.yaml").read_text()
        (etc / "ekws.yaml").write_text(good + "rules: [\n")  # bad YAML
        line = reload(service)
        assert "ERROR" in line and "reload failed, keeping the running configuration" in line
        assert "ekws.yaml" in line
        # A rule on a stream that does not exist: refused, nothing applied.
        write_etc(tmp_path, streams=(DEMO,), rules=[DEMO_RULE, log_rule("nope")])
        line = reload(service, 2)
        assert "reload failed" in line and "nope" in line
        # A bad prop in websocket.yaml.
        write_etc(tmp_path, websocket_yaml=SOURCES.format(extra="  bufferLength: -1\n"))
        line = reload(service, 3)
        assert "reload failed" in line and "websocket.yaml" in line
        assert service.proc.poll() is None
        assert service.json("GET", "/rules")[1] == [{"id": "demoLog", "status": "running"}]
        with ws_connect(f"ws://127.0.0.1:{service.ws_port}/api/data") as peer:
            peer.send('{"still": "here"}')
            service.out.wait_for('"still"')
        # Fixed: the next reload applies.
        write_etc(tmp_path, streams=(DEMO, S2))
        assert "streams added: s2" in reload(service, 4)
        assert sorted(service.json("GET", "/streams")[1]) == ["s2", "websocketDemo"]
        assert service.stop() == 0


def test_removed_and_changed_declared_rules_and_streams(tmp_path):
    etc = write_etc(tmp_path, streams=(DEMO, S2), rules=[DEMO_RULE, log_rule("s2")])
    with Service(etc) as service, ws_connect(f"ws://127.0.0.1:{service.ws_port}/api/data") as peer:
        peer.send('{"before": 1}')
        service.out.wait_count(1)
        changed = {"id": "demoLog", "sql": "SELECT seq FROM websocketDemo WHERE seq > 1",
                   "actions": [{"log": {}}]}
        write_etc(tmp_path, streams=(DEMO,), rules=[changed])
        line = reload(service)
        assert "streams removed: s2" in line and "rules added or changed: demoLog" in line
        assert "rules removed: s2Log" in line
        assert sorted(service.json("GET", "/streams")[1]) == ["websocketDemo"]
        assert service.json("GET", "/rules")[1] == [{"id": "demoLog", "status": "running"}]
        assert service.json("GET", "/rules/demoLog")[1]["sql"] == changed["sql"]
        # The rule on the stream changed, the stream did not: its peer is still connected.
        for seq in range(4):
            peer.send(json.dumps({"seq": seq, "x": 1}))
        service.out.wait_count(3)
        service.out.lines.pop(0)
        assert records(service, "websocketDemo") == [{"seq": 2}, {"seq": 3}]
        # Removed from the file, still declared-only: the path is gone, and REST may now use the name.
        assert service.request("POST", "/streams", {"sql": S2})[0] == 201
        assert service.stop() == 0


def test_a_conf_key_change_restarts_only_the_streams_that_use_it(tmp_path):
    b = 'CREATE STREAM b() WITH (DATASOURCE="/b", CONF_KEY="k2", FORMAT="json", TYPE="websocket")'
    sources = SOURCES.format(extra="k2:\n  maxMessageSize: 1MiB\n")
    etc = write_etc(tmp_path, streams=(DEMO, b), rules=[DEMO_RULE, log_rule("b")], websocket_yaml=sources)
    with Service(etc) as service:
        base = f"ws://127.0.0.1:{service.ws_port}"
        with ws_connect(f"{base}/api/data") as ws, ws_connect(f"{base}/b") as other:
            demo = Sender(ws)
            service.out.wait_count(50)
            write_etc(tmp_path, streams=(DEMO, b), rules=[DEMO_RULE, log_rule("b")],
                      websocket_yaml=SOURCES.format(extra="k2:\n  maxMessageSize: 2MiB\n"))
            assert "streams restarted: b" in reload(service)
            # b's peer was closed (going away) and can reconnect; the demo peer never noticed.
            try:
                other.recv(timeout=10)
                raise AssertionError("b's peer was not closed")
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1001
            with ws_connect(f"{base}/b") as again:
                again.send('{"b": 1}')
                service.out.wait_for('"b"')
            sent = demo.stop()
            assert demo.closed is None
        assert service.stop() == 0
    assert [r["seq"] for r in records(service, "websocketDemo")] == list(range(sent))
    assert records(service, "b") == [{"b": 1}]


def test_restart_only_settings_are_kept_with_a_warning_and_log_level_applies(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as service:
        text = (etc / "ekws.yaml").read_text()
        (etc / "ekws.yaml").write_text(text.replace("restPort: 0", "restPort: 1").replace(
            "logLevel: INFO", "logLevel: DEBUG"))
        assert "nothing changed" in reload(service)
        service.err.wait_for(r"WARNING .*reload: restPort changed")
        assert service.json("GET", "/streams")[0] == 200  # still on the old port
        with ws_connect(f"ws://127.0.0.1:{service.ws_port}/api/data") as peer:
            peer.send('{"x": 1}')
            service.out.wait_for('"x"')
        assert service.stop() == 0
    assert " DEBUG " in service.err.text  # logLevel applied at once


def test_reload_tells_systemd_reloading_then_ready(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    try:
        with Service(write_etc(tmp_path), env={"NOTIFY_SOCKET": path}) as service:
            messages = [sock.recv(4096).decode()]
            assert messages[0].startswith("READY=1")
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            service.proc.send_signal(signal.SIGHUP)
            reloading = sock.recv(4096).decode().split("\n")
            while "RELOADING=1" not in reloading:  # a STATUS= from start may come first
                reloading = sock.recv(4096).decode().split("\n")
            usec = [int(x.split("=", 1)[1]) for x in reloading if x.startswith("MONOTONIC_USEC=")]
            assert usec and before <= usec[0] <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            ready = sock.recv(4096).decode().split("\n")
            assert ready[0] == "READY=1"
            assert service.stop() == 0
    finally:
        sock.close()


def test_a_changed_statement_remakes_the_stream_and_its_rules_run_on_the_new_one(tmp_path):
    etc = write_etc(tmp_path)
    with Service(etc) as service:
        typed = 'CREATE STREAM websocketDemo(seq BIGINT) WITH (DATASOURCE="/api/data", FORMAT="json")'
        write_etc(tmp_path, streams=(typed,), rules=[DEMO_RULE])
        assert "streams restarted: websocketDemo" in reload(service)
        assert service.json("GET", "/rules")[1] == [{"id": "demoLog", "status": "running"}]
        fields = service.json("GET", "/streams/websocketDemo")[1]["StreamFields"]
        assert [f["Name"] for f in fields] == ["seq"]
        # Its only path was unmounted and mounted again: the shared server restarted, and
        # on port 0 (these tests) that is a new port.
        (stream,) = service.json("GET", "/status")[1]["streams"]
        with ws_connect(stream["url"]) as peer:
            peer.send('{"seq": 7, "dropped": "by the schema"}')
            service.out.wait_count(1)
        assert records(service, "websocketDemo") == [{"seq": 7}]
        # A rule stored over REST reads seq: a statement without it is refused, naming both.
        seqs = {"id": "seqs", "sql": "SELECT seq FROM websocketDemo", "actions": [{"log": {}}]}
        assert service.request("POST", "/rules", seqs)[0] == 201
        other = 'CREATE STREAM websocketDemo(other BIGINT) WITH (DATASOURCE="/api/data", FORMAT="json")'
        write_etc(tmp_path, streams=(other,), rules=[DEMO_RULE])
        line = reload(service, 2)
        assert "reload failed" in line and "rule seqs on stream websocketDemo" in line and "seq" in line, line
        fields = service.json("GET", "/streams/websocketDemo")[1]["StreamFields"]
        assert [f["Name"] for f in fields] == ["seq"]  # the running statement kept
        assert service.stop() == 0


def test_a_stored_stream_follows_its_conf_key_and_a_needed_stream_cannot_be_removed(tmp_path):
    sources = SOURCES.format(extra="k2:\n  bufferLength: 10\n")
    etc = write_etc(tmp_path, websocket_yaml=sources)
    with Service(etc) as service:
        stored = 'CREATE STREAM viaRest() WITH (DATASOURCE="/rest", CONF_KEY="k2", FORMAT="json")'
        assert service.request("POST", "/streams", {"sql": stored})[0] == 201
        rule = {"id": "restLog", "sql": "SELECT * FROM viaRest", "actions": [{"log": {}}]}
        assert service.request("POST", "/rules", rule)[0] == 201
        write_etc(tmp_path, websocket_yaml=SOURCES.format(extra="k2:\n  bufferLength: 20\n"))
        assert "reload: done (streams restarted: viaRest)" in reload(service)
        assert {"id": "restLog", "status": "running"} in service.json("GET", "/rules")[1]
        with ws_connect(f"ws://127.0.0.1:{service.ws_port}/rest") as peer:
            peer.send('{"via": "rest"}')
            service.out.wait_for('"via"')
        # A rule stored over REST on the declared stream keeps it from being removed from the file.
        on_demo = {"id": "mine", "sql": "SELECT * FROM websocketDemo", "actions": [{"log": {}}]}
        assert service.request("POST", "/rules", on_demo)[0] == 201
        write_etc(tmp_path, streams=(), rules=[],
                  websocket_yaml=SOURCES.format(extra="k2:\n  bufferLength: 20\n"))
        line = reload(service, 2)
        assert "reload failed" in line and "rule mine reads it" in line, line
        assert "websocketDemo" in service.json("GET", "/streams")[1]
        assert service.stop() == 0
