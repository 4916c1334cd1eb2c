"""Client mode against independent servers: the acceptance test of ``ekws.wire.client``.

The peers are the ``websockets`` library's sync server (code ekws does not
share) and, where a conforming library will not misbehave on request, a raw
socket server (dead peer). Each test writes its own ``etc`` in ``tmp_path``
with a ``remote`` conf key pointing at the peer and runs a real
:class:`ekws.Runtime`. Waits are events, queues or 10 ms polls, all bounded.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import make_pki
from helpers.client import Recorder, create_stream, write_etc
from helpers.common import wait_until as wait_for
from helpers.peers import RawConnection, RawPeer, WsPeer, drain_until_closed, run_server, unused_port
from websockets.sync.server import ServerConnection

import ekws

pytestmark = pytest.mark.timeout(30)


def _send_all(ws: ServerConnection, frames: list[Any]) -> None:
    for item in frames:
        ws.send(item if isinstance(item, (str, bytes)) else json.dumps(item))


SLOW_RECONNECT = {"initialDelay": 20, "maxDelay": 30, "maxRetries": 0}


# -- data -----------------------------------------------------------------------------------


def test_objects_and_arrays_arrive_in_order(tmp_path: Path) -> None:
    frames: list[Any] = [{"i": 0}, [{"i": 1}, {"i": 2}, {"i": 3}], {"i": 4}, []]
    frames += [[{"i": i}] if i % 3 else {"i": i} for i in range(5, 60)]
    frames += [[{"i": i} for i in range(60, 100)]]

    def handler(ws: ServerConnection) -> None:
        _send_all(ws, frames)
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks) as sub:
            got = rec.take(100)
            assert [m.data for m in got] == [{"i": i} for i in range(100)]
            assert len({m.meta["connection"] for m in got}) == 1
            rec.assert_no_message()
            assert wait_for(lambda: sub.delivered == 100), sub.delivered
            assert sub.dropped == 0
        status = rt.status("feed")
        assert status["decode_errors_total"] == 0
        assert status["dropped_total"] == 0


def test_meta_fields(tmp_path: Path) -> None:
    def handler(ws: ServerConnection) -> None:
        _send_all(ws, [{"a": 1}, [{"a": 2}, {"a": 3}]])
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create_stream(rt, "metas", datasource="/api/data")
        before = int(time.time() * 1000)
        with rt.subscribe("metas", **rec.callbacks):
            got = rec.take(3)
        after = int(time.time() * 1000)
    for msg in got:
        meta = msg.meta
        assert meta["stream"] == "metas"
        assert meta["datasource"] == "/api/data"
        assert meta["peer"] == f"127.0.0.1:{peer.port}"
        assert isinstance(meta["connection"], int) and not isinstance(meta["connection"], bool)
        assert isinstance(meta["timestamp"], int)
        assert before <= meta["timestamp"] <= after
    assert len({m.meta["connection"] for m in got}) == 1
    assert [m.data["a"] for m in got] == [1, 2, 3]


def test_handshake_carries_query_headers_subprotocols_and_open_messages(tmp_path: Path) -> None:
    seen: queue.Queue[dict[str, Any]] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        headers = ws.request.headers
        opens = [ws.recv(timeout=5), ws.recv(timeout=5)]
        seen.put(
            {
                "path": ws.request.path,
                "token": headers.get_all("X-Token"),
                "multi": [v.strip() for raw in headers.get_all("X-Multi") for v in raw.split(",")],
                "offered": [
                    v.strip() for raw in headers.get_all("Sec-WebSocket-Protocol") for v in raw.split(",")
                ],
                "selected": ws.subprotocol,
                "opens": opens,
            }
        )
        ws.send('{"ok": true}')
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler, subprotocols=["ekws.v1"]) as peer:
        etc = write_etc(
            tmp_path,
            peer.addr,
            requestHeader={"X-Token": "abc", "X-Multi": ["a", "b"]},
            subprotocols=["ekws.v2", "ekws.v1"],
            openMessages=["hello", '{"subscribe": "t1"}'],
        )
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt, datasource="/feed?x=1&y=two")
            with rt.subscribe("feed", **rec.callbacks):
                (msg,) = rec.take(1)
                info = seen.get(timeout=5)
                connected = rec.statuses[rec.wait_status("connected")]
    assert msg.data == {"ok": True}
    assert info["path"] == "/feed?x=1&y=two"
    assert info["token"] == ["abc"]
    assert info["multi"] == ["a", "b"]
    assert info["offered"] == ["ekws.v2", "ekws.v1"]
    assert info["selected"] == "ekws.v1"
    assert info["opens"] == ["hello", '{"subscribe": "t1"}']
    assert connected.url == f"ws://{peer.addr}/feed?x=1&y=two"
    assert msg.meta["datasource"] == "/feed?x=1&y=two"


# -- reconnection -----------------------------------------------------------------------------


def test_reconnects_across_five_server_restarts_on_the_same_port(tmp_path: Path) -> None:
    per_round = 5
    opened: queue.Queue[tuple[int, list[Any]]] = queue.Queue()

    def make_handler(rnd: int) -> Any:
        def handler(ws: ServerConnection) -> None:
            opened.put((rnd, [ws.recv(timeout=5)]))
            _send_all(ws, [{"round": rnd, "i": i} for i in range(per_round)])
            drain_until_closed(ws)

        return handler

    rec = Recorder()
    peer = WsPeer(make_handler(0))
    try:
        port = peer.port
        etc = write_etc(tmp_path, peer.addr, openMessages=["hello"])
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks) as sub:
                connections = []
                for rnd in range(6):
                    if rnd:
                        peer = WsPeer(make_handler(rnd), port=port)
                    got = rec.take(per_round, timeout=10)
                    assert [m.data for m in got] == [{"round": rnd, "i": i} for i in range(per_round)]
                    assert len({m.meta["connection"] for m in got}) == 1
                    connections.append(got[0].meta["connection"])
                    assert opened.get(timeout=5) == (rnd, ["hello"])
                    peer.close()  # closes the connection with 1001 and frees the port
                assert len(set(connections)) == 6, connections
                assert opened.empty()
                assert wait_for(lambda: rt.status("feed")["reconnects_total"] >= 5), rt.status("feed")
                assert sub.dropped == 0
                assert rec.states().count("connected") == 6, rec.states()
    finally:
        peer.close()


def test_oversize_message_closes_with_1009_counts_and_reconnects(tmp_path: Path) -> None:
    codes: queue.Queue[tuple[int, int | None]] = queue.Queue()
    counter = itertools.count()

    def handler(ws: ServerConnection) -> None:
        n = next(counter)
        if n == 0:
            _send_all(ws, [{"i": 0}, {"pad": "y" * 900}, {"pad": "x" * 4000}])
        else:
            _send_all(ws, [{"i": n}])
        codes.put((n, drain_until_closed(ws)))

    rec = Recorder()
    with run_server(handler) as peer:
        etc = write_etc(tmp_path, peer.addr, maxMessageSize=1024)
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                first = rec.take(2)
                assert first[0].data == {"i": 0}
                assert first[1].data == {"pad": "y" * 900}
                assert codes.get(timeout=5) == (0, 1009)
                (again,) = rec.take(1)
                assert again.data == {"i": 1}
                assert again.meta["connection"] != first[0].meta["connection"]
                rec.wait_error(lambda e: isinstance(e, ekws.MessageTooBig))
                status = rt.status("feed")
                assert status["exceptions_total"] >= 1, status
                assert status["last_exception"], status
                assert status["reconnects_total"] >= 1, status
                assert status["state"] == "connected", status


def test_dead_peer_detected_by_keepalive_and_reconnected(tmp_path: Path) -> None:
    def greet(conn: RawConnection) -> None:
        conn.send_text(json.dumps({"hello": conn.index}))  # then never read, never answer a ping

    rec = Recorder()
    with RawPeer(greet) as peer:
        etc = write_etc(tmp_path, peer.addr, pingInterval=0.3, pingTimeout=0.2)
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                (first,) = rec.take(1)
                assert first.data == {"hello": 0}
                connected = rec.wait_status("connected")
                dropped = rec.wait_status("disconnected", start=connected)
                assert rec.statuses[dropped].error, rec.statuses[dropped]
                (second,) = rec.take(1)
                assert second.data == {"hello": 1}
                assert second.meta["connection"] != first.meta["connection"]
                assert rt.status("feed")["reconnects_total"] >= 1


def test_close_during_backoff_returns_quickly(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, f"127.0.0.1:{unused_port()}", reconnect=SLOW_RECONNECT)
    rec = Recorder()
    with ekws.Runtime(config_dir=etc) as rt:
        create_stream(rt)
        sub = rt.subscribe("feed", **rec.callbacks)
        failed = rec.wait_status("disconnected")
        assert rec.statuses[failed].error, rec.statuses[failed]
        assert rt.status("feed")["last_error"]
        start = time.monotonic()
        sub.close()
        assert time.monotonic() - start < 1.0
        sub.close()  # idempotent
        assert "connected" not in rec.states()


def test_runtime_close_during_backoff_returns_quickly(tmp_path: Path) -> None:
    etc = write_etc(tmp_path, f"127.0.0.1:{unused_port()}", reconnect=SLOW_RECONNECT)
    rec = Recorder()
    rt = ekws.Runtime(config_dir=etc)
    try:
        create_stream(rt)
        rt.subscribe("feed", **rec.callbacks)
        rec.wait_status("disconnected")
        start = time.monotonic()
        rt.close()
        assert time.monotonic() - start < 1.0
    finally:
        rt.close()


def test_close_while_connected_and_idle_is_prompt_and_clean(tmp_path: Path) -> None:
    codes: queue.Queue[int | None] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        codes.put(drain_until_closed(ws))

    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create_stream(rt)
        sub = rt.subscribe("feed", **rec.callbacks)
        rec.wait_status("connected")
        start = time.monotonic()
        sub.close()
        assert time.monotonic() - start < 1.0
        assert codes.get(timeout=5) in (1000, 1001)
        assert wait_for(lambda: rt.status("feed")["state"] == "stopped"), rt.status("feed")


def test_status_transitions_reach_on_status_and_runtime_status(tmp_path: Path) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send('{"i": 0}')
        drain_until_closed(ws)

    rec = Recorder()
    peer = WsPeer(handler)
    try:
        # a long first delay keeps the source in "disconnected" while the test looks
        etc = write_etc(tmp_path, peer.addr, reconnect={"initialDelay": 3, "maxDelay": 5, "maxRetries": 0})
        url = f"ws://{peer.addr}/feed"
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                rec.take(1)
                connecting = rec.wait_status("connecting")
                connected = rec.wait_status("connected", start=connecting)
                assert connecting == 0, rec.statuses
                st = rec.statuses[connected]
                assert (st.stream, st.url, st.error) == ("feed", url, None)
                assert isinstance(st.attempt, int)
                assert abs(st.time - time.time()) < 60
                status = rt.status("feed")
                assert status["state"] == "connected"
                assert status["connection_status"] == 1
                assert status["connection_last_connected_time"]

                peer.close()
                gone = rec.wait_status("disconnected", start=connected)
                assert rec.statuses[gone].url == url
                assert wait_for(lambda: rt.status("feed")["state"] == "disconnected"), rt.status("feed")
                status = rt.status("feed")
                assert status["connection_status"] == -1
                assert status["connection_last_disconnected_time"]
            assert wait_for(lambda: rt.status("feed")["state"] == "stopped"), rt.status("feed")
    finally:
        peer.close()


# -- TLS ----------------------------------------------------------------------------------------


def test_wss_with_trusted_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    def handler(ws: ServerConnection) -> None:
        ws.send('{"secure": true}')
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler, ssl_context=pki.server_context()) as peer:
        etc = write_etc(tmp_path, peer.addr, scheme="wss", rootCaPath=str(pki.ca_path))
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                (msg,) = rec.take(1)
                st = rec.statuses[rec.wait_status("connected")]
    assert msg.data == {"secure": True}
    assert st.url == f"wss://{peer.addr}/feed"


def test_wss_mutual_tls_presents_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    client_names: queue.Queue[Any] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        cert = ws.socket.getpeercert()  # type: ignore[attr-defined]
        client_names.put(cert.get("subjectAltName") if cert else None)
        ws.send('{"mutual": true}')
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler, ssl_context=pki.server_context(require_client_cert=True)) as peer:
        etc = write_etc(
            tmp_path,
            peer.addr,
            scheme="wss",
            rootCaPath=str(pki.ca_path),
            certificationPath=str(pki.client_cert_path),
            privateKeyPath=str(pki.client_key_path),
        )
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                (msg,) = rec.take(1)
    assert msg.data == {"mutual": True}
    assert client_names.get(timeout=5) == (("email", "ekws-client@example.org"),)


def test_wss_mutual_tls_without_client_certificate_is_reported(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)

    def handler(ws: ServerConnection) -> None:
        ws.send('{"should": "not arrive"}')
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler, ssl_context=pki.server_context(require_client_cert=True)) as peer:
        etc = write_etc(tmp_path, peer.addr, scheme="wss", rootCaPath=str(pki.ca_path))
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                failed = rec.wait_status(lambda s: s.state == "disconnected" and bool(s.error))
                assert rec.statuses[failed].url == f"wss://{peer.addr}/feed"
                assert rt.status("feed")["last_error"]
                assert rt.status("feed")["connection_status"] != 1
                rec.assert_no_message()
    assert "connected" not in rec.states()


def test_wss_failing_verification_is_reported_not_silent(tmp_path: Path) -> None:
    server_pki = make_pki(tmp_path, name="server-ca")
    other_pki = make_pki(tmp_path, name="other-ca")

    def handler(ws: ServerConnection) -> None:
        ws.send('{"should": "not arrive"}')
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler, ssl_context=server_pki.server_context()) as peer:
        etc = write_etc(tmp_path, peer.addr, scheme="wss", rootCaPath=str(other_pki.ca_path))
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                failed = rec.wait_status(lambda s: s.state == "disconnected" and bool(s.error))
                error = rec.statuses[failed].error
                assert "certificate" in error.lower() or "verif" in error.lower(), error
                status = rt.status("feed")
                assert status["last_error"], status
                assert status["connection_status"] != 1, status
                assert status["state"] in ("connecting", "disconnected", "stopped"), status
                rec.wait_error(lambda e: isinstance(e, ekws.ConnectError))
                rec.assert_no_message()
    assert "connected" not in rec.states()


# -- bad input --------------------------------------------------------------------------------


def test_invalid_json_scalars_and_bad_utf8_are_counted_and_the_connection_kept(tmp_path: Path) -> None:
    bad = ["not json", "42", "null", "[1, 2]", b"\xff\xfe{"]  # the bytes go in a binary frame

    def handler(ws: ServerConnection) -> None:
        _send_all(ws, [{"i": 0}, *bad[:2], {"i": 1}, *bad[2:], b'{"i": 2}', [{"i": 3}, {"i": 4}]])
        drain_until_closed(ws)

    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks):
            got = rec.take(5)
            assert [m.data for m in got] == [{"i": i} for i in range(5)]
            assert len({m.meta["connection"] for m in got}) == 1
            assert wait_for(lambda: rt.status("feed")["decode_errors_total"] == len(bad)), rt.status("feed")
            assert wait_for(lambda: sum(isinstance(e, ekws.DecodeError) for e in rec.errors) == len(bad))
            rec.assert_no_message()
            assert rt.status("feed")["decode_errors_total"] == len(bad)
            assert rec.states().count("connected") == 1, rec.states()
            assert "disconnected" not in rec.states()


def test_raising_callback_is_counted_and_delivery_goes_on(tmp_path: Path) -> None:
    def handler(ws: ServerConnection) -> None:
        _send_all(ws, [{"i": i} for i in range(5)])
        drain_until_closed(ws)

    seen: queue.Queue[int] = queue.Queue()

    def on_message(msg: Any) -> None:
        seen.put(msg.data["i"])
        if msg.data["i"] == 1:
            raise RuntimeError("boom on 1")

    with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create_stream(rt)
        with rt.subscribe("feed", on_message):
            assert [seen.get(timeout=5) for _ in range(5)] == [0, 1, 2, 3, 4]
            assert wait_for(lambda: rt.status("feed")["exceptions_total"] == 1), rt.status("feed")
            status = rt.status("feed")
            assert "boom on 1" in str(status["last_exception"]), status
            assert status["last_exception_time"], status
            assert status["state"] == "connected"


# -- overflow ---------------------------------------------------------------------------------

N_MESSAGES = 20
BUFFER = 5


def _overflow_run(tmp_path: Path, overflow: str) -> tuple[list[int], Any, dict[str, Any], dict[str, Any]]:
    """Block the callback on message 0 while the server sends 1..N-1; then release.

    Returns (indices seen by the callback, subscription, status while blocked, final status).
    """
    entered = threading.Event()
    release = threading.Event()
    sent = threading.Event()
    seen: list[int] = []

    def handler(ws: ServerConnection) -> None:
        ws.send('{"i": 0}')
        if entered.wait(10):
            _send_all(ws, [{"i": i} for i in range(1, N_MESSAGES)])
            sent.set()
        drain_until_closed(ws)

    def on_message(msg: Any) -> None:
        seen.append(msg.data["i"])
        if msg.data["i"] == 0:
            entered.set()
            release.wait(10)

    dropped = 0 if overflow == "block" else N_MESSAGES - 1 - BUFFER
    try:
        with run_server(handler) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
            create_stream(rt)
            sub = rt.subscribe("feed", on_message, buffer_length=BUFFER, overflow=overflow)
            try:
                assert entered.wait(5)
                assert sent.wait(5)
                # every message 1..N-1 has reached the buffer (queued, dropped or waiting to get in)
                assert wait_for(
                    lambda: rt.status("feed")["buffer_length"] == BUFFER and sub.dropped == dropped
                ), (rt.status("feed"), sub.dropped)
                if overflow == "block":
                    assert wait_for(lambda: rt.status("feed")["records_in_total"] >= BUFFER + 1)
                else:
                    assert wait_for(lambda: rt.status("feed")["records_in_total"] == N_MESSAGES)
                blocked = rt.status("feed")
                release.set()
                expected = N_MESSAGES if overflow == "block" else 1 + BUFFER
                assert wait_for(lambda: len(seen) == expected), seen
            finally:
                release.set()
                sub.close()
            return list(seen), sub, blocked, rt.status("feed")
    finally:
        release.set()


def test_overflow_block_loses_nothing(tmp_path: Path) -> None:
    seen, sub, blocked, final = _overflow_run(tmp_path, "block")
    assert seen == list(range(N_MESSAGES))
    assert blocked["dropped_total"] == 0
    assert (sub.dropped, sub.delivered) == (0, N_MESSAGES)
    assert final["dropped_total"] == 0
    assert final["records_in_total"] == N_MESSAGES


def test_overflow_drop_oldest_keeps_the_newest(tmp_path: Path) -> None:
    # message 0 is in the callback; 1..19 compete for 5 slots; the last 5 (15..19) survive
    seen, sub, blocked, final = _overflow_run(tmp_path, "dropOldest")
    assert seen == [0, *range(N_MESSAGES - BUFFER, N_MESSAGES)]
    assert (sub.dropped, sub.delivered) == (N_MESSAGES - 1 - BUFFER, 1 + BUFFER)
    assert blocked["dropped_total"] == final["dropped_total"] == N_MESSAGES - 1 - BUFFER


def test_overflow_drop_newest_keeps_the_oldest(tmp_path: Path) -> None:
    # message 0 is in the callback; 1..5 fill the buffer; 6..19 are dropped
    seen, sub, blocked, final = _overflow_run(tmp_path, "dropNewest")
    assert seen == [0, *range(1, BUFFER + 1)]
    assert (sub.dropped, sub.delivered) == (N_MESSAGES - 1 - BUFFER, 1 + BUFFER)
    assert blocked["dropped_total"] == final["dropped_total"] == N_MESSAGES - 1 - BUFFER
