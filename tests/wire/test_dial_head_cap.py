"""The client's upgrade caps the server's answer head (issue 20).

The peer is a raw socket server that answers ``101`` and then header lines as
fast as TCP takes them, never ending the head (or one header line that never
ends): without a cap websocket-client would keep every header until
connectTimeout. The dial must stop after :data:`MAX_RESPONSE_HEAD` bytes, long
before the deadline, with an error that says why.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers.peers import read_request_head

from ekws.config import SourceProps
from ekws.errors import ConnectError
from ekws.service.check import check_client
from ekws.wire.client import MAX_RESPONSE_HEAD, dial

pytestmark = pytest.mark.timeout(30)


@contextmanager
def endless_head_server(line: bytes) -> Iterator[tuple[str, list[int]]]:
    """Yields the address and a list that gets the bytes sent to each client once it gave up."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    sent: list[int] = []
    threads: list[threading.Thread] = []

    def handle(sock: socket.socket) -> None:
        total = 0
        with sock:
            try:
                sock.settimeout(10)
                if read_request_head(sock) is None:
                    return
                sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
                block = line * (4096 // len(line) + 1)
                while not stop.is_set():
                    sock.sendall(block)
                    total += len(block)
            except OSError:
                pass  # the client cut the connection: what this test wants
            finally:
                sent.append(total)

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=handle, args=(sock,), name="endless-head", daemon=True)
            threads.append(thread)
            thread.start()

    thread = threading.Thread(target=serve, name="endless-head-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", sent
    finally:
        stop.set()
        thread.join(5)
        for t in threads:
            t.join(5)
        listener.close()


@pytest.mark.parametrize("line", [b"X-Endless: more and more\r\n", b"x" * 1000],
                         ids=["many-lines", "one-endless-line"])
def test_endless_headers_are_cut_off(line: bytes) -> None:
    with endless_head_server(line) as (addr, sent):
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            dial(f"ws://{addr}/", SourceProps(addr=addr, connect_timeout=20.0))
        took = time.monotonic() - started
    message = str(caught.value)
    assert f"over {MAX_RESPONSE_HEAD // 1024} KiB" in message, message
    assert "status line and headers" in message, message
    assert addr in message
    assert took < 10, took  # the cap, not the 20 s deadline, ended it
    # The server got through the cap and then its writes failed: the client read no further.
    assert sent and sent[0] >= MAX_RESPONSE_HEAD


def test_the_check_reports_the_cap() -> None:
    line = b"X-Endless: more and more\r\n"
    with endless_head_server(line) as (addr, _sent):
        result = check_client(SourceProps(addr=addr, connect_timeout=20.0), "/")
    assert not result.ok and f"over {MAX_RESPONSE_HEAD // 1024} KiB" in result.message, result.message
