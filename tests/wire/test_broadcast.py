"""The SDK's broadcast: Runtime.broadcast mounts a path; every `websockets` client of it gets every message.

All against real sockets; the clients are the `websockets` library or hand-made upgrades that stall.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest
from helpers.certs import make_pki
from helpers.server import create_sql, raw_upgrade, wait_until, write_etc, ws_connect
from websockets.exceptions import InvalidStatus

import ekws


def port_of(rt: ekws.Runtime) -> int:
    address = rt.server_address
    assert address is not None
    return address[1]


def test_two_clients_get_every_message_in_order(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt, rt.broadcast("/out") as out:
        url = f"ws://127.0.0.1:{port_of(rt)}/out"
        assert out.url == url
        with ws_connect(url) as a, ws_connect(url) as b:
            assert wait_until(lambda: out.clients == 2)
            for i in range(500):
                assert out.send_text(f'{{"seq":{i}}}') == 2
            got_a = [a.recv(timeout=5) for _ in range(500)]
            got_b = [b.recv(timeout=5) for _ in range(500)]
        expected = [f'{{"seq":{i}}}' for i in range(500)]
        assert got_a == expected and got_b == expected
        assert wait_until(lambda: out.clients == 0)
        metrics = out.metrics()
        assert metrics["sent_total"] == 1000 and metrics["dropped_total"] == 0
        assert metrics["clients_total"] == 2 and metrics["messages_total"] == 500


def test_messages_with_nobody_connected_are_counted(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt, rt.broadcast("/out") as out:
        assert [out.send_text("x") for _ in range(7)] == [0] * 7
        assert out.metrics()["unsent_total"] == 7 and out.sent_total == 0


def test_a_stalled_client_never_blocks_the_sender_nor_the_others(tmp_path: Path) -> None:
    """A client that stops reading loses its oldest messages; the live one gets all; send_text stays fast."""
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt, rt.broadcast("/out", buffer_length=64) as out:
        port = port_of(rt)
        status, stalled = raw_upgrade(port, "/out")
        assert status == 101
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            with ws_connect(f"ws://127.0.0.1:{port}/out", max_size=None) as live:
                assert wait_until(lambda: out.clients == 2)
                text = "x" * 20_000
                slowest = 0.0
                received = 0
                for i in range(600):  # 12 MB: far past the stalled client's socket buffers
                    started = time.perf_counter()
                    out.send_text(f"{i} {text}")
                    slowest = max(slowest, time.perf_counter() - started)
                    while True:  # the live client keeps up
                        try:
                            live.recv(timeout=0 if received >= i else 5)
                        except TimeoutError:
                            break
                        received += 1
                while received < 600:
                    live.recv(timeout=5)
                    received += 1
                assert received == 600
                assert slowest < 2.0, f"send_text waited {slowest:.3f} s"  # blocked: 10 s
                assert out.dropped_total > 0
                assert max(out.client_drops()) == out.dropped_total  # all are the stalled client's
        finally:
            stalled.close()


def test_a_client_that_takes_nothing_is_disconnected_with_1008(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        out = ekws.Broadcaster(rt._server, "/slow", rt.config.props(None), lambda: 1, send_timeout=0.5)
        out.start()
        try:
            status, stalled = raw_upgrade(port_of(rt), "/slow")
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            assert wait_until(lambda: out.clients == 1)
            text = "y" * 65_000
            deadline = time.monotonic() + 20
            while out.slow_total == 0 and time.monotonic() < deadline:
                out.send_text(text)
                time.sleep(0.005)
            assert out.slow_total == 1
            assert wait_until(lambda: out.clients == 0)
            stalled.close()
        finally:
            out.close()


def test_mounting_a_path_a_stream_serves_fails_clearly(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/api/data"))
        serving = r"broadcast \(/api/data\).*stream 'demo' is serving"
        with rt.subscribe("demo", lambda msg: None), pytest.raises(ekws.ServerError, match=serving):
            rt.broadcast("/api/data")
        taken = r"stream 'demo' on /api/data: a websocket broadcast"
        with rt.broadcast("/api/data"), pytest.raises(ekws.ServerError, match=taken):
            rt.subscribe("demo", lambda msg: None)


def test_the_last_path_closing_stops_the_shared_server_and_clients_get_1001(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        out = rt.broadcast("/out")
        port = port_of(rt)
        with ws_connect(f"ws://127.0.0.1:{port}/out") as ws:
            assert wait_until(lambda: out.clients == 1)
            out.close()
            with pytest.raises(Exception):  # noqa: B017,PT011 - websockets' ConnectionClosedOK
                ws.recv(timeout=5)
            assert ws.close_code == 1001
        assert rt.server_address is None
        with pytest.raises(ekws.ClosedError):
            out.send_text("late")
        out.close()  # idempotent


def test_clients_are_admitted_with_the_conf_keys_token(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, extra_keys={"secured": {"authToken": "s3cret", "maxConnections": 1}})
    with ekws.Runtime(config_dir=etc) as rt, rt.broadcast("/out", "secured") as out:
        url = f"ws://127.0.0.1:{port_of(rt)}/out"
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url)
        assert refused.value.response.status_code == 401
        with ws_connect(url, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            assert wait_until(lambda: out.clients == 1)
            with pytest.raises(InvalidStatus) as full:
                ws_connect(url + "?token=s3cret")
            assert full.value.response.status_code == 503
            out.send_text("hello")
            assert ws.recv(timeout=5) == "hello"


def test_a_tls_shared_server_broadcasts_over_wss(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    source = {"httpServerTls": {"certfile": str(pki.server_cert_path), "keyfile": str(pki.server_key_path)}}
    with ekws.Runtime(config_dir=write_etc(tmp_path, source=source)) as rt, rt.broadcast("/out") as out:
        assert out.url is not None and out.url.startswith("wss://")
        trusting = ssl.create_default_context()
        pki.ca.configure_trust(trusting)
        with ws_connect(out.url, ssl=trusting) as ws:
            assert wait_until(lambda: out.clients == 1)
            for i in range(300):
                out.send_text(f"secure {i}")
            assert [ws.recv(timeout=5) for _ in range(300)] == [f"secure {i}" for i in range(300)]
