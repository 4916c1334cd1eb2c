"""Server mode against peers that push limits: many descriptors, stalled handshakes, early peers.

Raw sockets on 127.0.0.1; close frames are read back with the ``websockets``
library's parser (tests/peers.py:read_close).
"""

from __future__ import annotations

import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from helpers.common import free_port
from helpers.peers import read_close, ws_frame
from helpers.server import Collector, create_sql, raw_upgrade, upgrade_request, wait_until, write_etc
from websockets.frames import Opcode

import ekws

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Raise the soft descriptor limit so that numbers above 1,024 are handed out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 3000:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 1,100 peers")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1100_peers_each_get_a_close_frame_on_stop(tmp_path: Path, many_fds: None) -> None:
    peers = 1100
    socks: list[socket.socket] = []
    rt = ekws.Runtime(config_dir=write_etc(tmp_path, {"pingInterval": 0}))
    try:
        rt.create_stream(create_sql("demo", "/ws"))
        sub = rt.subscribe("demo", Collector())
        assert rt.server_address is not None
        port = rt.server_address[1]
        for _ in range(peers):
            status, sock = raw_upgrade(port, "/ws")
            socks.append(sock)
            assert status == 101
        assert max(sock.fileno() for sock in socks) > 1024
        assert wait_until(lambda: rt.status("demo")["connections"] == peers, timeout=20)
        started = time.monotonic()
        sub.close()  # the last subscription: the route stops and closes every peer
        stop_took = time.monotonic() - started
        codes = [read_close(sock, masked=False, timeout=5).code for sock in socks]
        assert codes == [1001] * peers
        assert stop_took < 10, stop_took
        assert wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("ekws-peer-")],
                          timeout=10)
    finally:
        for sock in socks:
            sock.close()
        rt.close()


def _peer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ekws-peer-")]


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except OSError:  # reset: closed as well
        pass
    return True


@pytest.mark.parametrize("stall", ["silent", "partial request"])
def test_stalled_http_handshake_is_dropped_after_handshake_timeout(tmp_path: Path, stall: str) -> None:
    etc = write_etc(tmp_path, source={"handshakeTimeout": 0.5})
    with ekws.Runtime(config_dir=etc) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        with rt.subscribe("demo", Collector()):
            assert rt.server_address is not None
            port = rt.server_address[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if stall == "partial request":
                    sock.sendall(upgrade_request("127.0.0.1", port, "/ws")[:40])
                local = f"ekws-peer-127.0.0.1:{sock.getsockname()[1]}"
                assert wait_until(lambda: local in _peer_threads(), timeout=2), _peer_threads()
                started = time.monotonic()
                assert _closed_within(sock, 5)
                assert 0.3 < time.monotonic() - started < 3
            assert wait_until(lambda: local not in _peer_threads(), timeout=3), _peer_threads()
            # The server still serves a well-behaved peer.
            status, good = raw_upgrade(port, "/ws")
            good.close()
            assert status == 101


def test_stalled_tls_handshake_is_dropped_after_handshake_timeout(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    tls = {"certfile": str(tmp_path / "server.pem"), "keyfile": str(tmp_path / "server.pem")}
    etc = write_etc(tmp_path, source={"handshakeTimeout": 0.5, "httpServerTls": tls})
    with ekws.Runtime(config_dir=etc) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        with rt.subscribe("demo", Collector()):
            assert rt.server_address is not None
            port = rt.server_address[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                started = time.monotonic()
                assert _closed_within(sock, 5)  # never sent a ClientHello
                assert time.monotonic() - started < 3
            # A real TLS client still gets through.
            context = ssl.create_default_context()
            ca.configure_trust(context)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                tls_sock.sendall(upgrade_request("127.0.0.1", port, "/ws"))
                assert tls_sock.recv(4096).startswith(b"HTTP/1.1 101")


def test_handshake_timeout_prop_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ekws.ConfigError, match="handshakeTimeout"):
        ekws.Runtime(config_dir=write_etc(tmp_path, source={"handshakeTimeout": -1}))


def test_a_path_is_served_from_the_first_accepted_connection(tmp_path: Path) -> None:
    """Mount registers the path before the server accepts: an early peer never gets a 404.

    Knocks that start while the stream is being unsubscribed do not count: the
    path is gone then, and a 404 (or a refused connection) is right.
    """
    port = free_port()
    etc = write_etc(tmp_path, source={"httpServerPort": port})
    statuses: list[int] = []
    phase = [0]  # even: subscribing or subscribed; odd: unsubscribing
    stop = threading.Event()

    def knock() -> None:
        while not stop.is_set():
            started = phase[0]
            try:
                status, sock = raw_upgrade(port, "/ws")
            except OSError:  # not listening yet, or stopped again
                time.sleep(0.001)
                continue
            sock.close()
            if started % 2 == 0 and phase[0] == started:  # wholly within one subscribed phase
                statuses.append(status)

    knockers = [threading.Thread(target=knock, name=f"knock-{i}") for i in range(4)]
    for thread in knockers:
        thread.start()
    try:
        with ekws.Runtime(config_dir=etc) as rt:
            rt.create_stream(create_sql("demo", "/ws"))
            for _ in range(15):
                with rt.subscribe("demo", Collector()):
                    count = len(statuses)
                    assert wait_until(lambda: len(statuses) > count, timeout=5)  # noqa: B023
                    phase[0] += 1
                phase[0] += 1
    finally:
        stop.set()
        for thread in knockers:
            thread.join(10)
    assert statuses and set(statuses) == {101}, sorted(set(statuses))


def test_zero_length_fragment_flood_is_served_in_bounded_memory(tmp_path: Path) -> None:
    """500,000 empty continuation frames (3 MB on the wire), then the message ends normally."""
    got = Collector()
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        with rt.subscribe("demo", got):
            assert rt.server_address is not None
            status, sock = raw_upgrade(rt.server_address[1], "/ws")
            with sock:
                assert status == 101
                sock.sendall(ws_frame(Opcode.TEXT, b'{"a": ', mask=True, fin=False))
                empty = ws_frame(Opcode.CONT, b"", mask=True, fin=False) * 10_000
                for _ in range(50):
                    sock.sendall(empty)
                sock.sendall(ws_frame(Opcode.CONT, b"1}", mask=True))
                assert got.wait_for(1, timeout=30)
            assert got.data == [{"a": 1}]

