"""The server-mode websocket action end to end: a `websockets` client feeds a stream, a rule
broadcasts every record to the `websockets` clients of /out on the shared server."""

from __future__ import annotations

import json
import socket
import time

import pytest
from helpers.server import raw_upgrade, wait_until, ws_connect

import ekws
from ekws.rules.manager import RuleManager

RULE = {"id": "fan", "sql": "SELECT seq, v FROM demo WHERE seq >= 0",
        "actions": [{"websocket": {"addr": "", "path": "/out", "sendSingle": True}}]}


def url(runtime: ekws.Runtime, path: str) -> str:
    address = runtime.server_address
    assert address is not None
    return f"ws://127.0.0.1:{address[1]}{path}"


def sink(rules: RuleManager) -> dict[str, int]:
    status = rules.status("fan")
    prefix = "sink_websocket_0_0_"
    return {k[len(prefix):]: v for k, v in status.items() if k.startswith(prefix)}


def test_two_clients_receive_every_record(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create(RULE)
    with ws_connect(url(runtime, "/out")) as a, ws_connect(url(runtime, "/out")) as b:
        assert wait_until(lambda: sink(rules)["clients"] == 2)
        with ws_connect(url(runtime, "/api/data")) as feed:
            for seq in range(200):
                feed.send(json.dumps({"seq": seq, "v": seq * 1.5, "dropped": "by the projection"}))
        expected = [{"seq": seq, "v": seq * 1.5} for seq in range(200)]
        assert [json.loads(a.recv(timeout=5)) for _ in range(200)] == expected
        assert [json.loads(b.recv(timeout=5)) for _ in range(200)] == expected
    numbers = sink(rules)
    assert numbers["records_out_total"] == 200 and numbers["unsent_total"] == 0
    assert numbers["dropped_total"] == 0


def test_records_with_nobody_connected_are_counted(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create(RULE)
    with ws_connect(url(runtime, "/api/data")) as feed:
        for seq in range(25):
            feed.send(json.dumps({"seq": seq}))
    assert wait_until(lambda: sink(rules).get("unsent_total") == 25)
    assert sink(rules)["records_out_total"] == 0
    assert rules.status("fan")["status"] == "running"


def test_a_stalled_client_does_not_block_the_rule(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({**RULE, "actions": [{"websocket": {"addr": "", "path": "/out", "bufferLength": 32,
                                                      "sendSingle": True}}]})
    status, stalled = raw_upgrade(runtime.server_address[1], "/out")  # type: ignore[index]
    assert status == 101
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        with ws_connect(url(runtime, "/out"), max_size=None) as live:
            assert wait_until(lambda: sink(rules)["clients"] == 2)
            big = "z" * 20_000
            started = time.monotonic()
            with ws_connect(url(runtime, "/api/data")) as feed:
                for seq in range(400):  # 8 MB: the stalled client's socket fills early
                    feed.send(json.dumps({"seq": seq, "v": big}))
                    if seq % 20 == 0:  # the live client reads along
                        while True:
                            try:
                                got = json.loads(live.recv(timeout=0))
                            except TimeoutError:
                                break
                last = None
                while last is None or last["seq"] < 399:
                    got = json.loads(live.recv(timeout=10))
                    last = got
            elapsed = time.monotonic() - started
            assert elapsed < 20
            assert runtime.status("demo")["records_in_total"] == 400
            numbers = sink(rules)
            assert numbers["dropped_total"] > 0  # the stalled client's, counted
            assert numbers["records_out_total"] == 400
    finally:
        stalled.close()


def test_a_path_a_stream_serves_fails_the_rule_start(rules: RuleManager, runtime: ekws.Runtime) -> None:
    body = {**RULE, "actions": [{"websocket": {"addr": "", "path": "/api/data"}}]}
    with runtime.subscribe("demo", lambda msg: None):  # the stream's path is mounted
        rules.create(body)
        status = rules.status("fan")
    assert status["status"] == "stopped"
    assert "cannot mount a websocket broadcast (/api/data) on /api/data: stream 'demo' is serving that path" \
        in status["message"]


def test_the_last_rule_stopping_unmounts_the_path(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create(RULE)
    with ws_connect(url(runtime, "/out")) as ws:
        rules.stop("fan")
        with pytest.raises(Exception):  # noqa: B017,PT011 - websockets' ConnectionClosedOK
            ws.recv(timeout=5)
        assert ws.close_code == 1001
    assert runtime.server_address is None
