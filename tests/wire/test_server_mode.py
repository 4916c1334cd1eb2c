"""Acceptance tests for server mode: ekws as the WebSocket server, real clients.

The peers are the ``websockets`` library's sync client and raw sockets that do
the upgrade by hand when a peer must misbehave. Every server binds 127.0.0.1;
port 0 unless the test compares addresses across restarts (lifecycle, bind
failure), and the built-in default 10081 only when it is free.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import trustme
from helpers.server import (
    Collector,
    ErrorLog,
    create_sql,
    free_port,
    port_is_free,
    raw_upgrade,
    refuses,
    server_stream,
    wait_until,
    write_etc,
    ws_connect,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

import ekws


def send_json(url: str, *records: dict[str, Any], **connect_kwargs: Any) -> None:
    with ws_connect(url, **connect_kwargs) as ws:
        for record in records:
            ws.send(json.dumps(record))


def refusal_status(url: str, **connect_kwargs: Any) -> int:
    """The HTTP status with which the server refuses this upgrade."""
    with pytest.raises(InvalidStatus) as info:
        ws_connect(url, **connect_kwargs).close()
    status: int = info.value.response.status_code
    return status


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked, payload < 126 bytes), built by hand."""
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def port_of(rt: ekws.Runtime) -> int:
    address = rt.server_address
    assert address is not None, "the shared server is not running"
    return address[1]


def assert_nothing_reached(rt: ekws.Runtime, name: str = "demo") -> None:
    status = rt.status(name)
    assert status["records_in_total"] == 0
    assert status["connections_total"] == 0
    assert wait_until(lambda: rt.status(name)["connections"] == 0)


# ------------------------------------------------------------- basic delivery


def test_websockets_client_records_and_meta(tmp_path: Path) -> None:
    with server_stream(tmp_path, datasource="/api/data") as (rt, _sub, got, url):
        before_ms = int(time.time() * 1000)
        with ws_connect(url) as ws:
            local_port = ws.local_address[1]
            ws.send(json.dumps({"temperature": 21.5, "seq": 0}))
            ws.send(json.dumps([{"seq": 1}, {"seq": 2}]))  # an array is one record per object
            ws.send("not json")  # a decode error for that message only; the connection stays
            ws.send(json.dumps({"seq": 3}).encode())  # binary frames are accepted too
            assert got.wait_for(4, timeout=10)
        assert got.data == [{"temperature": 21.5, "seq": 0}, {"seq": 1}, {"seq": 2}, {"seq": 3}]
        meta = got.messages[0].meta
        assert meta["stream"] == "demo"
        assert meta["datasource"] == "/api/data"
        assert meta["peer"] == f"127.0.0.1:{local_port}"
        assert isinstance(meta["connection"], int)
        assert {msg.meta["connection"] for msg in got.messages} == {meta["connection"]}
        assert before_ms - 1000 <= meta["timestamp"] <= int(time.time() * 1000) + 1000
        status = rt.status("demo")
        assert status["records_in_total"] == 4
        assert status["decode_errors_total"] == 1
        assert status["state"] == "connected"


def test_default_config_listens_on_10081(tmp_path: Path) -> None:
    if not (port_is_free("0.0.0.0", 10081) and port_is_free("127.0.0.1", 10081)):
        pytest.skip("port 10081 (the built-in httpServerPort) is in use on this machine")
    got = Collector()
    with ekws.Runtime(config_dir=None, environ={}) as rt:
        rt.create_stream(
            'CREATE STREAM websocketDemo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'
        )
        assert rt.server_address is None
        with rt.subscribe("websocketDemo", got):
            address = rt.server_address
            assert address is not None
            assert address[1] == 10081
            send_json("ws://127.0.0.1:10081/api/data", {"temperature": 20})
            assert got.wait_for(1, timeout=10)
            assert got.data == [{"temperature": 20}]
        assert rt.server_address is None
    assert refuses(10081)


# ------------------------------------------------------------------ lifecycle


def test_lifecycle_port_follows_subscriptions(tmp_path: Path) -> None:
    port = free_port()
    etc = write_etc(tmp_path, source={"httpServerPort": port})
    got_a, got_b = Collector(), Collector()
    with ekws.Runtime(config_dir=etc) as rt:
        rt.create_stream(create_sql("a", "/a"))
        rt.create_stream(create_sql("b", "/b"))
        # Closed before the first subscription.
        assert rt.server_address is None
        assert refuses(port)

        sub_a = rt.subscribe("a", got_a)
        assert rt.server_address == ("127.0.0.1", port)
        assert rt.status("a")["state"] == "connected"
        sub_b = rt.subscribe("b", got_b)  # a second path shares the one port
        assert rt.server_address == ("127.0.0.1", port)
        send_json(f"ws://127.0.0.1:{port}/a", {"to": "a"})
        send_json(f"ws://127.0.0.1:{port}/b", {"to": "b"})
        assert got_a.wait_for(1) and got_b.wait_for(1)
        assert got_a.data == [{"to": "a"}]
        assert got_b.data == [{"to": "b"}]

        sub_a.close()  # /b still mounted: the server stays, /a is gone
        assert rt.server_address == ("127.0.0.1", port)
        status, sock = raw_upgrade(port, "/a")
        sock.close()
        assert status == 404
        send_json(f"ws://127.0.0.1:{port}/b", {"to": "b", "n": 2})
        assert got_b.wait_for(2)

        sub_b.close()  # the last one: the port closes
        assert rt.server_address is None
        assert refuses(port)

        with rt.subscribe("a", got_a):  # open again, same port
            assert rt.server_address == ("127.0.0.1", port)
            send_json(f"ws://127.0.0.1:{port}/a", {"to": "a", "n": 2})
            assert got_a.wait_for(2)
        assert rt.server_address is None
        assert refuses(port)
    assert got_a.data == [{"to": "a"}, {"to": "a", "n": 2}]


def test_path_held_by_another_stream_is_refused(tmp_path: Path) -> None:
    got_a, got_b = Collector(), Collector()
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("a", "/same"))
        rt.create_stream(create_sql("b", "/same"))
        with rt.subscribe("a", got_a):
            with pytest.raises(ekws.ServerError):
                rt.subscribe("b", got_b)
            address = rt.server_address
            assert address is not None
            send_json(f"ws://127.0.0.1:{address[1]}/same", {"k": 1})
            assert got_a.wait_for(1)
        # Once "a" let go of the path, "b" may mount it.
        with rt.subscribe("b", got_b):
            address = rt.server_address
            assert address is not None
            send_json(f"ws://127.0.0.1:{address[1]}/same", {"k": 2})
            assert got_b.wait_for(1)
    assert got_a.data == [{"k": 1}]
    assert got_b.data == [{"k": 2}]


def test_bind_failure_raises_and_recovers(tmp_path: Path) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    got = Collector()
    try:
        with ekws.Runtime(config_dir=write_etc(tmp_path, source={"httpServerPort": port})) as rt:
            rt.create_stream(create_sql("demo", "/ws"))
            with pytest.raises(ekws.BindError):
                rt.subscribe("demo", got)
            assert rt.server_address is None
            blocker.close()  # free the port; a second attempt works
            with rt.subscribe("demo", got):
                assert rt.server_address == ("127.0.0.1", port)
                send_json(f"ws://127.0.0.1:{port}/ws", {"after": "bind error"})
                assert got.wait_for(1)
    finally:
        blocker.close()
    assert got.data == [{"after": "bind error"}]


@pytest.mark.parametrize("how", ["subscription", "runtime"])
def test_stop_closes_peers_with_1001(tmp_path: Path, how: str) -> None:
    got = Collector()
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt, contextlib.ExitStack() as clients:
        rt.create_stream(create_sql("demo", "/ws"))
        sub = rt.subscribe("demo", got)
        port = port_of(rt)
        peers = [clients.enter_context(ws_connect(f"ws://127.0.0.1:{port}/ws")) for _ in range(3)]
        for n, peer in enumerate(peers):
            peer.send(json.dumps({"n": n}))
        assert got.wait_for(3)
        assert wait_until(lambda: rt.status("demo")["connections"] == 3)
        if how == "subscription":
            sub.close()
        else:
            rt.close()
        for peer in peers:
            with pytest.raises(ConnectionClosed) as info:
                peer.recv(timeout=10)
            assert info.value.rcvd is not None, "the server dropped the TCP connection without a close frame"
            assert info.value.rcvd.code == 1001
        assert rt.server_address is None
        assert refuses(port)


def test_server_closes_tcp_after_close_handshake(tmp_path: Path) -> None:
    """RFC 6455 7.1.1: after the close handshake the server closes TCP first.

    Clients wait for that EOF (websockets: close_timeout, Node ws: 30 s), so a
    server that keeps the socket open stalls every client's close().
    """
    with server_stream(tmp_path) as (rt, _sub, got, _url):
        status, sock = raw_upgrade(port_of(rt), "/ws")
        with sock:
            assert status == 101
            sock.sendall(masked_frame(0x1, b'{"n": 1}') + masked_frame(0x8, (1000).to_bytes(2, "big")))
            sock.settimeout(3.0)
            received = b""
            while chunk := sock.recv(4096):  # socket.timeout here means the server never closed
                received += chunk
        assert received[:1] == b"\x88", "expected the server's close frame"
        assert received[2:4] == (1000).to_bytes(2, "big")
        assert got.wait_for(1)
        assert got.data == [{"n": 1}]


# ---------------------------------------------------------- HTTP refusals


def test_unknown_path_is_404(tmp_path: Path) -> None:
    with server_stream(tmp_path, datasource="/ws") as (rt, _sub, got, url):
        assert refusal_status(url.replace("/ws", "/nope")) == 404
        status, sock = raw_upgrade(port_of(rt), "/ws/deeper")
        sock.close()
        assert status == 404
        assert_nothing_reached(rt)
        assert got.data == []


def test_plain_get_on_ws_path_is_426(tmp_path: Path) -> None:
    with server_stream(tmp_path, datasource="/ws") as (rt, _sub, got, _url):
        address = rt.server_address
        assert address is not None
        conn = http.client.HTTPConnection("127.0.0.1", address[1], timeout=5)
        try:
            conn.request("GET", "/ws")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        assert response.status in (426, 400)
        assert_nothing_reached(rt)
        assert got.data == []


def test_auth_token_401_and_both_forms_accepted(tmp_path: Path) -> None:
    with server_stream(tmp_path, conf={"authToken": "s3cret"}) as (rt, _sub, got, url):
        assert refusal_status(url) == 401
        assert refusal_status(url, additional_headers={"Authorization": "Bearer nope"}) == 401
        assert refusal_status(url + "?token=nope") == 401
        assert refusal_status(url, additional_headers={"Authorization": "s3cret"}) == 401  # no scheme
        assert_nothing_reached(rt)
        send_json(url, {"via": "header"}, additional_headers={"Authorization": "Bearer s3cret"})
        send_json(url + "?token=s3cret", {"via": "query"})
        assert got.wait_for(2)
        assert sorted(d["via"] for d in got.data) == ["header", "query"]
        assert rt.status("demo")["connections_total"] == 2


def test_origin_not_allowed_is_403(tmp_path: Path) -> None:
    conf = {"allowedOrigins": ["https://ok.example"]}
    with server_stream(tmp_path, conf=conf) as (rt, _sub, got, url):
        assert refusal_status(url, origin="https://evil.example") == 403
        assert refusal_status(url, origin="https://ok.example.evil.example") == 403
        assert_nothing_reached(rt)
        send_json(url, {"origin": "ok"}, origin="https://ok.example")
        send_json(url, {"origin": None})  # non-browser clients send no Origin: allowed
        assert got.wait_for(2)
        assert sorted(str(d["origin"]) for d in got.data) == ["None", "ok"]


def test_over_max_connections_is_503(tmp_path: Path) -> None:
    with server_stream(tmp_path, conf={"maxConnections": 2}) as (rt, _sub, got, url):
        with ws_connect(url), ws_connect(url) as second:
            assert wait_until(lambda: rt.status("demo")["connections"] == 2)
            assert refusal_status(url) == 503
            assert rt.status("demo")["connections_total"] == 2
            assert rt.status("demo")["records_in_total"] == 0
            second.close()
            assert wait_until(lambda: rt.status("demo")["connections"] == 1)
            send_json(url, {"third": True})  # a slot is free again
            assert got.wait_for(1)
        assert got.data == [{"third": True}]


# -------------------------------------------------------------------- TLS


def write_tls(tmp_path: Path, ca: trustme.CA) -> tuple[str, str, str]:
    """Server cert chain, key and CA bundle as files; returns their paths."""
    server = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return str(certfile), str(keyfile), str(cafile)


def test_tls_wss_with_verified_server(tmp_path: Path) -> None:
    ca = trustme.CA()
    certfile, keyfile, _ = write_tls(tmp_path, ca)
    source = {"httpServerTls": {"certfile": certfile, "keyfile": keyfile}}
    with server_stream(tmp_path, source=source) as (_rt, _sub, got, url):
        wss = url.replace("ws://", "wss://")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        send_json(wss, {"secure": True}, ssl=trusting)
        assert got.wait_for(1)
        # A client that does not trust the CA refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            ws_connect(wss, ssl=ssl.create_default_context()).close()
        assert got.data == [{"secure": True}]


def test_mutual_tls_requires_client_cert(tmp_path: Path) -> None:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    certfile, keyfile, _ = write_tls(tmp_path, server_ca)
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    source = {
        "httpServerTls": {"certfile": certfile, "keyfile": keyfile, "clientCaFile": str(client_ca_file)}
    }
    with server_stream(tmp_path, source=source) as (rt, _sub, got, url):
        wss = url.replace("ws://", "wss://")
        without_cert = ssl.create_default_context()
        server_ca.configure_trust(without_cert)
        with pytest.raises((OSError, WebSocketException)):
            send_json(wss, {"cert": "none"}, ssl=without_cert)
        wrong_cert = ssl.create_default_context()
        server_ca.configure_trust(wrong_cert)
        server_ca.issue_cert("intruder@example.com").configure_cert(wrong_cert)  # not from client_ca
        with pytest.raises((OSError, WebSocketException)):
            send_json(wss, {"cert": "wrong"}, ssl=wrong_cert)
        assert rt.status("demo")["records_in_total"] == 0

        with_cert = ssl.create_default_context()
        server_ca.configure_trust(with_cert)
        client_ca.issue_cert("device-1@example.com").configure_cert(with_cert)
        send_json(wss, {"cert": "good"}, ssl=with_cert)
        assert got.wait_for(1)
        assert got.data == [{"cert": "good"}]


def test_missing_cert_file_is_config_error_at_subscribe(tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    source = {"httpServerTls": {"certfile": str(missing), "keyfile": str(tmp_path / "missing.key")}}
    with ekws.Runtime(config_dir=write_etc(tmp_path, source=source)) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        with pytest.raises(ekws.ConfigError) as info:
            rt.subscribe("demo", Collector())
        assert "missing.crt" in str(info.value)
        assert rt.server_address is None


# ------------------------------------------------------- limits and liveness


def test_oversize_message_closes_only_that_connection_with_1009(tmp_path: Path) -> None:
    with server_stream(tmp_path, conf={"maxMessageSize": 1024}) as (rt, _sub, got, url):
        with ws_connect(url) as good, ws_connect(url) as bad:
            good.send(json.dumps({"client": "good", "seq": 0}))
            bad.send(json.dumps({"client": "bad", "seq": 0}))
            bad.send(json.dumps({"client": "bad", "seq": 1, "pad": os.urandom(2048).hex()}))
            with pytest.raises(ConnectionClosed) as info:
                bad.recv(timeout=10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
            good.send(json.dumps({"client": "good", "seq": 1}))
            assert got.wait_for(3)
            assert wait_until(lambda: rt.status("demo")["connections"] == 1)
        by_client = collections.defaultdict(list)
        for record in got.data:
            by_client[record["client"]].append(record["seq"])
        assert dict(by_client) == {"good": [0, 1], "bad": [0]}


def test_peer_that_never_answers_pings_is_dropped(tmp_path: Path) -> None:
    with server_stream(tmp_path, conf={"pingInterval": 0.2}) as (rt, _sub, got, url):
        port = port_of(rt)
        with ws_connect(url) as healthy:  # answers pings automatically
            status, mute = raw_upgrade(port, "/ws")
            try:
                assert status == 101
                assert wait_until(lambda: rt.status("demo")["connections"] == 2)
                # Dropped within a few intervals; the healthy peer stays.
                assert wait_until(lambda: rt.status("demo")["connections"] == 1, timeout=10)
            finally:
                mute.close()
            healthy.send(json.dumps({"still": "here"}))
            assert got.wait_for(1)
            assert rt.status("demo")["connections"] == 1
        assert got.data == [{"still": "here"}]


def test_metrics_connections_and_total(tmp_path: Path) -> None:
    with server_stream(tmp_path) as (rt, _sub, _got, url):
        status = rt.status("demo")
        assert (status["connections"], status["connections_total"]) == (0, 0)
        with contextlib.ExitStack() as clients:
            first, *_ = [clients.enter_context(ws_connect(url)) for _ in range(3)]
            assert wait_until(lambda: rt.status("demo")["connections"] == 3)
            assert rt.status("demo")["connections_total"] == 3
            first.close()
            assert wait_until(lambda: rt.status("demo")["connections"] == 2)
            clients.enter_context(ws_connect(url))
            assert wait_until(lambda: rt.status("demo")["connections"] == 3)
            assert rt.status("demo")["connections_total"] == 4
        assert wait_until(lambda: rt.status("demo")["connections"] == 0)
        assert rt.status("demo")["connections_total"] == 4


# ------------------------------------------------------------------- load


def test_fifty_concurrent_clients_exactly_once_in_order(tmp_path: Path) -> None:
    clients, per_client = 50, 200
    with server_stream(tmp_path) as (rt, _sub, got, url):
        ready = threading.Barrier(clients, timeout=15)
        local_ports: dict[int, int] = {}
        failures: list[BaseException] = []

        def run(client: int) -> None:
            try:
                with ws_connect(url) as ws:
                    local_ports[client] = ws.local_address[1]
                    ready.wait()
                    for seq in range(per_client):
                        ws.send(json.dumps({"client": client, "seq": seq}))
            except BaseException as exc:  # reported below; a thread cannot fail the test
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(n,), name=f"client-{n}") for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures, failures[:3]
        assert got.wait_for(clients * per_client, timeout=30)
        seen = collections.Counter((d["client"], d["seq"]) for d in got.data)
        assert len(seen) == clients * per_client
        assert set(seen.values()) == {1}
        order: dict[int, list[int]] = collections.defaultdict(list)
        connection_of: dict[int, set[int]] = collections.defaultdict(set)
        for msg in got.messages:
            client = msg.data["client"]
            order[client].append(msg.data["seq"])
            connection_of[client].add(msg.meta["connection"])
            assert msg.meta["peer"] == f"127.0.0.1:{local_ports[client]}"
        assert all(seqs == list(range(per_client)) for seqs in order.values())
        assert all(len(ids) == 1 for ids in connection_of.values())
        assert len({next(iter(ids)) for ids in connection_of.values()}) == clients
        status = rt.status("demo")
        assert status["records_in_total"] == clients * per_client
        assert status["connections_total"] == clients
        assert wait_until(lambda: rt.status("demo")["connections"] == 0)


def test_slow_consumer_with_block_overflow_bounds_memory(tmp_path: Path) -> None:
    total, buffer_length = 50_000, 256
    gate = threading.Event()  # the consumer stalls until the queue has filled up

    def slow(_msg: ekws.Message) -> None:
        if not gate.wait(timeout=5):
            gate.set()  # the queue never reported full; stop stalling (asserted below)
        time.sleep(0)

    got = Collector(on_each=slow)
    errors = ErrorLog()
    process = psutil.Process()
    with server_stream(
        tmp_path, collector=got, buffer_length=buffer_length, overflow="block", on_error=errors
    ) as (rt, sub, _got, url):
        peak = {"rss": 0, "queued": 0}
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                peak["rss"] = max(peak["rss"], process.memory_info().rss)
                queued = rt.status("demo")["buffer_length"]
                peak["queued"] = max(peak["queued"], queued)
                if queued >= buffer_length:
                    gate.set()
                stop_sampling.wait(0.005)

        sent = threading.Event()
        send_errors: list[BaseException] = []

        def send() -> None:
            pad = "x" * 60
            try:
                with ws_connect(url, compression=None) as ws:
                    for seq in range(total):
                        ws.send(json.dumps({"client": "slow", "seq": seq, "pad": pad}))
            except BaseException as exc:  # reported below
                send_errors.append(exc)
            finally:
                sent.set()

        baseline = process.memory_info().rss
        sampler = threading.Thread(target=sample, name="rss-sampler")
        sender = threading.Thread(target=send, name="slow-sender")
        sampler.start()
        sender.start()
        try:
            assert got.wait_for(total, timeout=45), f"only {len(got.messages)} of {total} delivered"
            assert sent.wait(timeout=10)
        finally:
            gate.set()
            stop_sampling.set()
            sampler.join(timeout=5)
            sender.join(timeout=10)
        assert not send_errors, send_errors
        assert [d["seq"] for d in got.data] == list(range(total))
        assert sub.dropped == 0
        assert rt.status("demo")["dropped_total"] == 0
        assert errors.errors == []
        # The queue really filled (so "block" was exercised) and never exceeded its bound.
        assert buffer_length // 2 <= peak["queued"] <= buffer_length
        growth_mb = (peak["rss"] - baseline) / 2**20
        assert growth_mb < 100, f"RSS grew by {growth_mb:.1f} MB"
