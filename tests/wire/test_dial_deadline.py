"""connectTimeout is one deadline for TCP, TLS and the whole upgrade (issue 20).

The peer is a raw socket server that answers ``101`` at once and then one
header line every 0.5 s, never finishing the head: each read returns well
within any per-read timeout, so only a deadline over the whole dial stops it
(the ``websockets`` client with ``open_timeout=2`` gives up at 2.00 s).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.client import Recorder, create_stream, write_etc
from helpers.peers import read_request_head

import ekws
from ekws.config import SourceProps
from ekws.service.check import check_client

pytestmark = pytest.mark.timeout(30)

TRICKLE = 0.5  # seconds between header lines


@contextmanager
def trickling_server() -> Iterator[tuple[str, threading.Event]]:
    """Yields the address and an event set once a client has got the status line."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    answered = threading.Event()
    conns: list[socket.socket] = []

    def handle(sock: socket.socket) -> None:
        try:
            sock.settimeout(5)
            if read_request_head(sock) is None:
                return
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
            answered.set()
            line = 0
            while not stop.wait(TRICKLE):
                sock.sendall(f"X-Slow-{line}: still coming\r\n".encode())
                line += 1
        except OSError:
            pass  # the client gave up and closed

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conns.append(sock)
            threading.Thread(target=handle, args=(sock,), name="trickle-conn", daemon=True).start()

    thread = threading.Thread(target=serve, name="trickle-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", answered
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for sock in conns:
            sock.close()


def test_a_trickled_upgrade_ends_at_connect_timeout(tmp_path: Path) -> None:
    rec = Recorder()
    with trickling_server() as (addr, answered):
        etc = write_etc(tmp_path, addr, connectTimeout=2,
                        reconnect={"initialDelay": 20, "maxDelay": 30, "maxRetries": 0})
        with ekws.Runtime(config_dir=etc) as rt:
            started = time.monotonic()
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                assert answered.wait(5)
                failed = rec.wait_status(lambda s: s.state == "disconnected", timeout=6)
                took = time.monotonic() - started
    error = rec.statuses[failed].error
    assert "connected" not in [s.state for s in rec.statuses[:failed]]
    assert "timed out" in error and "within 2 s" in error and "connectTimeout" in error, error
    assert 1.9 <= took <= 3.5, took


def test_the_check_uses_the_same_deadline() -> None:
    with trickling_server() as (addr, answered):
        started = time.monotonic()
        result = check_client(SourceProps(addr=addr, connect_timeout=1.0), "/")
        took = time.monotonic() - started
    assert answered.is_set()
    assert not result.ok and "no answer within 1 s" in result.message, result.message
    assert 0.9 <= took <= 2.5, took
