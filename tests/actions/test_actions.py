"""Actions end to end: records sent by a `websockets` client through a rule into each action.

file: the lines on disk (flushed while the rule idles), fsync and rotation;
websocket: a real `websockets` server receives every record, in order, and
records sent while it is away arrive after it comes back; log: one line per
record. (python is in test_rules.py, mqtt in test_actions_mqtt.py.)
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import make_pki
from helpers.rules import send
from helpers.server import free_port, wait_until
from websockets.sync.server import Server, ServerConnection, serve

import ekws
from ekws.actions import ActionError, parse_action
from ekws.rules.manager import RuleManager


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --------------------------------------------------------------------------- file


def test_file_action_appends_json_lines_flushed_when_idle(rules: RuleManager, runtime: ekws.Runtime,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    out.write_text('{"before": true}\n')
    # eKuiper's file sink sample, with a path of this test's own.
    rules.create({"id": "f", "sql": "SELECT * from demo where temperature>50", "actions": [
        {"file": {"path": str(out), "fileType": "lines", "format": "json", "fsync": True}}]})
    send(runtime, {"temperature": 60, "t": "ü"}, {"temperature": 10}, {"temperature": 70, "raw": [1, None]})
    # No close needed: the rule flushes (and fsyncs) once no record is waiting.
    assert wait_until(lambda: len(lines(out)) == 3)
    # eKuiper's default (sendSingle false): a line a message, the JSON array of its rows.
    assert lines(out) == [{"before": True}, [{"temperature": 60, "t": "ü"}],
                          [{"temperature": 70, "raw": [1, None]}]]
    status = rules.status("f")
    assert status["sink_file_0_0_records_out_total"] == 2
    assert status["sink_file_0_0_file_size_bytes"] == out.stat().st_size


def test_file_action_rotates_by_size(rules: RuleManager, runtime: ekws.Runtime, tmp_path: Path) -> None:
    out = tmp_path / "rot.jsonl"
    rules.create({"id": "rot", "stream": "demo", "actions": [
        {"file": {"path": str(out), "rotateSize": "100b", "rotateCount": 2, "sendSingle": True}}]})
    records = [{"n": n, "pad": "x" * 20} for n in range(12)]  # 31-32 bytes a line: 3 lines a file
    send(runtime, *records)
    assert wait_until(lambda: rules.status("rot")["sink_file_0_0_records_out_total"] == 12)
    rules.stop("rot")
    files = [out, Path(f"{out}.1"), Path(f"{out}.2")]
    assert not Path(f"{out}.3").exists()
    assert all(f.stat().st_size <= 100 for f in files)
    kept = lines(files[2]) + lines(files[1]) + lines(files[0])
    assert kept == records[-len(kept):] and len(kept) >= 6  # the oldest file was dropped
    assert rules.status("rot")["sink_file_0_0_rotations_total"] >= 3


def test_file_action_missing_folder_fails_the_start_with_its_path(rules: RuleManager, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "out.jsonl"
    rules.create({"id": "bad", "stream": "demo", "actions": [{"file": {"path": str(missing)}}]})
    status = rules.status("bad")
    assert status["status"] == "stopped"
    assert str(missing) in status["message"]


@pytest.mark.parametrize(("props", "match"), [
    ({"path": 3}, "path: expected a string"),
    ({"path": "x", "rotateSize": "ten"}, "rotateSize: expected a size"),
    ({"path": "x", "fsync": "yes"}, "fsync: expected true or false"),
    ({"path": "x", "fileType": "csv"}, "fileType: expected one of lines"),
    ({"path": "x", "format": "delimited"}, "format: format 'delimited' is not supported by ekws actions"),
])
def test_file_action_props_are_checked(props: dict[str, Any], match: str) -> None:
    with pytest.raises(ActionError, match=f"action file #3: {match}"):
        parse_action({"file": props}, 3)


# --------------------------------------------------------------------------- log


def test_log_action_one_line_per_record(rules: RuleManager, runtime: ekws.Runtime,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    rules.create({"id": "lg", "sql": "SELECT upper(name) AS name FROM demo", "actions": [{"log": {}}]})
    send(runtime, {"name": "a"}, {"name": "b"})
    assert wait_until(lambda: len([r for r in caplog.records if r.name == "ekws.actions.log"]) == 2)
    # What eKuiper's log sink logs (internal/io/sink/log_sink.go): the rule id and the encoded message.
    assert [r.getMessage() for r in caplog.records if r.name == "ekws.actions.log"] == [
        'sink result for rule lg: [{"name":"A"}]', 'sink result for rule lg: [{"name":"B"}]']


# --------------------------------------------------------------------------- websocket


class Receiver:
    """A real `websockets` server that collects every text message it gets (port 0: the port it got)."""

    def __init__(self, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.ssl_context = ssl_context
        self.messages: list[Any] = []
        self.paths: list[str] = []
        self._cond = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: list[ServerConnection] = []

    def _handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        with self._cond:
            self.paths.append(conn.request.path)
            self._conns.append(conn)
        for message in conn:
            with self._cond:
                self.messages.append(json.loads(message))
                self._cond.notify_all()

    def start(self) -> None:
        self._server = serve(self._handler, "127.0.0.1", self.port, ssl=self.ssl_context)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-receiver")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close every connection (websockets' shutdown() leaves them open)."""
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        with self._cond:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close(1001)
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    if server._thread is not None and server._thread.is_alive():
        server.stop()


def test_websocket_action_sends_each_record_to_a_websockets_server(
        rules: RuleManager, runtime: ekws.Runtime, receiver: Receiver) -> None:
    rules.create({"id": "ws", "sql": "SELECT n, meta(stream) AS s FROM demo WHERE n % 2 = 0", "actions": [
        {"websocket": {"addr": f"127.0.0.1:{receiver.port}", "path": "/api/sink", "sendSingle": True}}]})
    send(runtime, *({"n": n} for n in range(10)))
    assert receiver.wait_for(5)
    assert receiver.messages == [{"n": n, "s": "demo"} for n in range(0, 10, 2)]
    assert receiver.paths == ["/api/sink"]
    assert wait_until(lambda: rules.status("ws")["sink_websocket_0_0_records_out_total"] == 5)
    assert rules.status("ws")["sink_websocket_0_0_connection_status"] == 1


def test_websocket_action_buffers_while_the_server_is_away(rules: RuleManager, runtime: ekws.Runtime,
                                                          receiver: Receiver) -> None:
    rules.create({"id": "ws", "stream": "demo", "actions": [
        {"websocket": {"address": f"127.0.0.1:{receiver.port}", "path": "/in", "sendSingle": True,
                       "reconnect": {"initialDelay": "20ms", "maxDelay": "100ms"}}}]})
    send(runtime, {"n": 0})
    assert receiver.wait_for(1)
    receiver.stop()
    assert wait_until(lambda: rules.status("ws")["sink_websocket_0_0_connection_status"] == -1)
    send(runtime, *({"n": n} for n in range(1, 30)))
    assert wait_until(lambda: rules.status("ws")["sink_websocket_0_0_buffer_length"] == 29)
    receiver.start()
    assert receiver.wait_for(30)
    assert [m["n"] for m in receiver.messages] == list(range(30))
    status = rules.status("ws")
    assert status["sink_websocket_0_0_dropped_total"] == 0
    assert status["sink_websocket_0_0_exceptions_total"] >= 1  # the failed dials, counted
    assert status["sink_websocket_0_0_connects_total"] == 2


def test_websocket_action_bound_drops_oldest_and_counts(rules: RuleManager, runtime: ekws.Runtime) -> None:
    port = free_port()  # nobody listens
    rules.create({"id": "ws", "stream": "demo", "actions": [
        {"websocket": {"addr": f"127.0.0.1:{port}", "bufferLength": 5, "sendSingle": True,
                       "reconnect": {"initialDelay": "20ms", "maxDelay": "200ms"}}}]})
    send(runtime, *({"n": n} for n in range(12)))
    assert wait_until(lambda: rules.status("ws")["sink_websocket_0_0_dropped_total"] == 7)
    receiver = Receiver(port)
    receiver.start()
    try:
        assert receiver.wait_for(5)
        assert [m["n"] for m in receiver.messages] == list(range(7, 12))
    finally:
        receiver.stop()


def test_websocket_action_wss_with_mutual_tls(rules: RuleManager, runtime: ekws.Runtime,
                                              tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    receiver = Receiver(ssl_context=pki.server_context(require_client_cert=True))
    receiver.start()
    try:
        tls = {"scheme": "wss", "rootCaPath": str(pki.ca_path), "tlsMinVersion": "1.2",
               "certificationPath": str(pki.client_cert_path), "privateKeyPath": str(pki.client_key_path)}
        rules.create({"id": "wss", "stream": "demo", "actions": [
            {"websocket": {"addr": f"127.0.0.1:{receiver.port}", "path": "/secure", "sendSingle": True,
                           **tls}}]})
        other = make_pki(tmp_path, name="other")  # a CA the server's certificate does not chain to
        rules.create({"id": "untrusted", "stream": "demo", "actions": [
            {"websocket": {"addr": f"127.0.0.1:{receiver.port}", **tls, "rootCaPath": str(other.ca_path),
                           "reconnect": {"initialDelay": "1s"}}}]})
        send(runtime, {"secret": 1})
        assert receiver.wait_for(1)
        assert receiver.messages == [{"secret": 1}] and receiver.paths == ["/secure"]
        assert wait_until(lambda: rules.status("untrusted")["sink_websocket_0_0_exceptions_total"] >= 1)
        assert "certificate" in rules.status("untrusted")["sink_websocket_0_0_last_exception"].lower()
        assert rules.status("untrusted")["sink_websocket_0_0_records_out_total"] == 0
    finally:
        rules.close()
        receiver.stop()


def test_websocket_action_missing_tls_file_fails_the_start(rules: RuleManager, tmp_path: Path) -> None:
    rules.create({"id": "w", "stream": "demo", "actions": [{"websocket": {
        "addr": "127.0.0.1:1", "scheme": "wss", "rootCaPath": str(tmp_path / "none.pem")}}]})
    status = rules.status("w")
    assert status["status"] == "stopped"
    assert "none.pem" in status["message"] and "rootCaPath" in status["message"]


@pytest.mark.parametrize(("props", "match"), [
    ({}, "addr: is required"),
    ({"addr": "", "scheme": "wss"}, "scheme: is a client-mode prop"),
    ({"addr": "", "path": "out"}, "path: expected a path"),
    ({"addr": "127.0.0.1:1", "path": "nope"}, "path: expected a path"),
    ({"addr": "127.0.0.1:1", "scheme": "http"}, "scheme"),
    ({"addr": "127.0.0.1:1", "reconnect": {"maxDelay": "soon"}}, "maxDelay"),
    ({"addr": "127.0.0.1:1", "bufferLength": 0}, "bufferLength"),
])
def test_websocket_action_props_are_checked(props: dict[str, Any], match: str) -> None:
    with pytest.raises(ActionError, match=match):
        parse_action({"websocket": props}, 0)


@pytest.mark.parametrize("record", [
    {"a": 1, "b": [1.5, None, True, "ü"], "c": {"d": "x\n\"y\""}},
    {"big": 10**30, "neg": -(2**70)},
    {"raw": b"\x00\xff"},
    {},
])
def test_records_serialize_to_json_alike_with_and_without_orjson(record: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ekws.actions as actions
    import ekws.actions.jsonout as jsonout

    expected = json.loads(json.dumps(record, default=lambda b: base64.b64encode(b).decode()))
    fast = actions.dumps_line(record)
    monkeypatch.setattr(jsonout, "orjson", None)
    stdlib = actions.dumps_line(record)
    monkeypatch.setattr(jsonout, "_c_encode", None)
    pure = actions.dumps_line(record)
    for line in (fast, stdlib, pure):
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == expected


@pytest.mark.parametrize("records", [
    [{"a": 1}, {"b": "x"}, {}],
    [{"s": "},{"}, {"n": [{"x": 1}, {"y": 2}]}],  # "},{" inside a record: encoded one by one
    [{"f": float("nan"), "g": float("inf")}, {"h": -float("inf"), "ok": 1.5}],  # written as null
    [{"big": 10**30, "raw": b"\x00\xff"}, {"u": "ü\n"}],
])
def test_lines_of_a_batch_match_each_record_alone(records: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import math

    import ekws.actions as actions
    import ekws.actions.jsonout as jsonout

    def finite(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [finite(v) for v in value]
        return value

    expected = [json.loads(json.dumps(finite(r), default=lambda b: base64.b64encode(b).decode()))
                for r in records]
    blocks = [actions.dumps_lines(records)]
    monkeypatch.setattr(jsonout, "orjson", None)
    blocks.append(actions.dumps_lines(records))
    monkeypatch.setattr(jsonout, "_c_encode", None)
    blocks.append(actions.dumps_lines(records))
    for block in blocks:
        lines = block.split(b"\n")
        assert lines[-1] == b"" and [json.loads(line) for line in lines[:-1]] == expected
        assert b"NaN" not in block and b"Infinity" not in block
    assert actions.dumps_lines([]) == b""


def test_file_action_skips_a_record_json_cannot_hold_and_counts_it(tmp_path: Path) -> None:
    spec = parse_action({"file": {"path": str(tmp_path / "out.jsonl"), "sendSingle": True}}, 0)
    action = spec.build("r")
    action.start()
    peer = ekws.Peer("demo", "", "", 0)
    for data in ({"n": 1}, {"bad": object()}, {"n": 2}):
        action.send(ekws.Message(data, peer, 0))
    action.flush()
    action.close()
    written = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == [{"n": 1}, {"n": 2}]
    metrics = action.metrics()
    assert metrics["records_out_total"] == 2 and metrics["exceptions_total"] == 1
    assert "object is not JSON serializable" in metrics["last_exception"]


def test_one_encoder_gives_the_same_bytes_with_and_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    import ekws.actions.jsonout as jsonout
    from ekws.service.output import json_line

    when = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
    record = {"t": when, "d": when.date(), "n": float("nan"), "raw": b"\x01",
              "u": "ü", "l": [1, 2.5]}
    expected = (b'{"t":"2024-05-06T07:08:09.123456+00:00","d":"2024-05-06","n":null,"raw":"AQ==",'
                b'"u":"\xc3\xbc","l":[1,2.5]}')
    outputs = [jsonout.dumps(record)]
    monkeypatch.setattr(jsonout, "orjson", None)
    outputs.append(jsonout.dumps(record))
    monkeypatch.setattr(jsonout, "_c_encode", None)
    outputs.append(jsonout.dumps(record))
    assert outputs == [expected] * 3
    with pytest.raises(TypeError):
        jsonout.dumps({"o": object()})
    import decimal

    text = jsonout.dumps_text({"o": [decimal.Decimal("1.5")], "n": float("nan")})  # stdout, tail: its text
    assert text == '{"o": ["1.5"], "n": null}'
    msg = ekws.Message({"t": when}, ekws.Peer("s", "/x", "127.0.0.1:1", 1), 0)
    assert json.loads(json_line(msg))["data"] == {"t": "2024-05-06T07:08:09.123456+00:00"}
