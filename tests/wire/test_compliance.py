"""The Autobahn testees in compliance/ work, checked with the ``websockets`` library.

The Autobahn run itself is ``bash compliance/run.sh`` (it needs Python 2.7);
these tests keep the two testees honest wherever the suite cannot run.
"""

from __future__ import annotations

import queue
import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers.peers import run_server
from helpers.server import REPO, free_port, wait_until, ws_connect
from websockets.sync.server import ServerConnection

pytestmark = pytest.mark.timeout(60)


def _accepting(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def echo_server() -> Iterator[int]:
    port = free_port()
    script = str(REPO / "compliance" / "echo_server.py")
    proc = subprocess.Popen([sys.executable, script, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _accepting(port), timeout=15), "echo server did not start"
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_echo_server_echoes_text_and_binary_on_any_path(echo_server: int) -> None:
    for path in ("/", "/runCase", "/a/b?c=d"):
        with ws_connect(f"ws://127.0.0.1:{echo_server}{path}", max_size=None) as ws:
            ws.send("h\u00e9llo")
            assert ws.recv(timeout=5) == "h\u00e9llo"
            ws.send(b"\x00\xff" * 40_000)
            assert ws.recv(timeout=5) == b"\x00\xff" * 40_000


def test_echo_client_speaks_the_testee_protocol() -> None:
    echoed: queue.Queue[tuple[str, object]] = queue.Queue()
    reports: list[str] = []

    def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        if path.startswith("/getCaseCount"):
            ws.send("2")
        elif path.startswith("/runCase"):
            case = path.split("case=")[1].split("&")[0]
            ws.send(f"case {case}")
            echoed.put((case, ws.recv(timeout=5)))
            ws.send(case.encode())
            echoed.put((case, ws.recv(timeout=5)))
        elif path.startswith("/updateReports"):
            reports.append(path)
        ws.close()

    with run_server(handler) as peer:
        done = subprocess.run(
            [sys.executable, str(REPO / "compliance" / "echo_client.py"), "--url", f"ws://{peer.addr}",
             "--agent", "probe"],
            capture_output=True, text=True, timeout=30,
        )
    assert done.returncode == 0, done.stderr
    got = [echoed.get(timeout=1) for _ in range(4)]
    assert got == [("1", "case 1"), ("1", b"1"), ("2", "case 2"), ("2", b"2")]
    assert reports == ["/updateReports?agent=probe"]
