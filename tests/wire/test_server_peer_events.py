"""Server mode reports each peer's connect and disconnect to ``on_status`` (issues 19 and 20).

Real peers on 127.0.0.1: the ``websockets`` client (a clean close with a
code), a raw socket that drops TCP without a close frame (1006) and one that
breaks the protocol (1002, with the error). Both delivery modes.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from helpers.server import raw_upgrade, server_stream, wait_until, ws_connect

import ekws
from ekws import Peer, State, Status
from ekws.buffer import MAX_NOTICES, Buffer

pytestmark = pytest.mark.timeout(30)


class Statuses:
    """A thread-safe on_status recorder."""

    def __init__(self) -> None:
        self.items: list[Status] = []
        self.lock = threading.Lock()

    def __call__(self, status: Status) -> None:
        with self.lock:
            self.items.append(status)

    def peer_events(self) -> list[Status]:
        with self.lock:
            return [s for s in self.items if s.peer is not None]


@pytest.mark.parametrize("delivery", ["queue", "inline"])
def test_connect_and_clean_close_are_reported_with_peer_and_code(tmp_path: Path, delivery: str) -> None:
    statuses = Statuses()
    with server_stream(tmp_path, on_status=statuses, delivery=delivery) as (rt, _sub, got, url):
        with ws_connect(url) as client:
            client.send('{"a": 1}')
            assert got.wait_for(1)
            host, port = client.socket.getsockname()[:2]
            local = f"{host}:{port}"
            assert wait_until(lambda: len(statuses.peer_events()) == 1)
            client.close(4001, "done here")
        assert wait_until(lambda: len(statuses.peer_events()) == 2)
        assert rt.status("demo")["connections"] == 0
        assert rt.status("demo")["state"] == "connected"  # peer events leave the stream's state alone
    opened, closed = statuses.peer_events()
    assert opened.state is State.PEER_CONNECTED and opened.state == "peer_connected"
    assert closed.state is State.PEER_DISCONNECTED
    assert opened.peer == closed.peer and opened.peer is not None
    assert opened.peer.address == local and opened.peer.stream == "demo" and opened.peer.datasource == "/ws"
    assert got.messages[0].peer == opened.peer  # the same Peer as the records' meta
    assert closed.close_code == 4001 and closed.error is None
    assert opened.close_code is None and opened.stream == "demo"
    # The stream's own status (the path mounted) came first, without a peer.
    assert str(statuses.items[0].state) == "connected" and statuses.items[0].peer is None


def test_a_dropped_tcp_connection_is_1006_and_a_protocol_error_is_1002_with_the_error(
    tmp_path: Path,
) -> None:
    statuses = Statuses()
    with server_stream(tmp_path, on_status=statuses) as (rt, _sub, _got, _url):
        assert rt.server_address is not None
        status, dropper = raw_upgrade(rt.server_address[1], "/ws")
        assert status == 101
        assert wait_until(lambda: len(statuses.peer_events()) == 1)
        dropper.close()  # no close frame
        assert wait_until(lambda: len(statuses.peer_events()) == 2)
        status, bad = raw_upgrade(rt.server_address[1], "/ws")
        with bad:
            assert status == 101
            bad.sendall(b"\x81\x05hello")  # a client frame without a mask: 1002
            assert wait_until(lambda: len(statuses.peer_events()) == 4)
    events = statuses.peer_events()
    assert [str(s.state) for s in events] == ["peer_connected", "peer_disconnected"] * 2
    assert events[1].close_code == 1006 and events[1].error is None
    assert events[3].close_code == 1002
    assert events[3].error is not None and "not masked" in events[3].error, events[3].error
    assert events[0].peer != events[2].peer  # each connection its own Peer (id)


def test_a_burst_of_peers_past_the_notice_bound_keeps_the_stream_state(tmp_path: Path) -> None:
    """Queued delivery bounds notices (MAX_NOTICES): peer events past it are counted, not queued."""
    statuses = Statuses()
    blocked = threading.Event()
    release = threading.Event()

    def on_status(status: Status) -> None:
        statuses(status)
        if status.peer is not None and not blocked.is_set():
            blocked.set()
            release.wait(10)  # hold the worker while the burst queues up

    peers: list[socket.socket] = []
    with server_stream(tmp_path, on_status=on_status) as (rt, sub, _got, _url):
        assert rt.server_address is not None
        try:
            for _ in range(80):  # more than MAX_NOTICES (64) events while the worker is held
                status, sock = raw_upgrade(rt.server_address[1], "/ws")
                assert status == 101
                peers.append(sock)
            assert blocked.wait(5)
            assert wait_until(lambda: rt.status("demo")["connections"] == 80)
        finally:
            release.set()
            for sock in peers:
                sock.close()
        assert wait_until(lambda: rt.status("demo")["connections"] == 0)
        assert wait_until(lambda: sub.notices == 0)
        assert sub.coalesced > 0
        assert len(statuses.peer_events()) + sub.coalesced == 160  # every event delivered or counted


def test_peer_events_past_the_bound_never_replace_the_stream_state() -> None:
    buffer = Buffer(16, "block")
    peer = Peer("s", "/ws", "127.0.0.1:1", 1)
    for _ in range(MAX_NOTICES):
        buffer.put_notice(Status("s", State.PEER_CONNECTED, 0.0, peer=peer))
    buffer.put_notice(Status("s", State.STOPPED, 1.0))  # past the bound: kept as the latest state
    for _ in range(5):
        buffer.put_notice(Status("s", State.PEER_DISCONNECTED, 2.0, peer=peer, close_code=1006))
    buffer.close()
    items = []
    while (item := buffer.get()) is not None:
        items.append(item)
    assert [s.state for s in items if isinstance(s, Status) and s.peer is None] == [State.STOPPED]
    assert len(items) == MAX_NOTICES + 1 and buffer.coalesced == 5


def test_status_is_exported() -> None:
    assert ekws.State.PEER_CONNECTED.value == "peer_connected"
    assert ekws.State.PEER_DISCONNECTED.value == "peer_disconnected"
