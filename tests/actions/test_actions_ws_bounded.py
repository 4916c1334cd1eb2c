"""The client-mode websocket action reads what its server sends within a bound.

The server peer is the `websockets` library in its own process, so the memory
traced here is the action's alone: a 32 MB frame from the server must fail
the connection with 1009 at its header, never be buffered, be counted, and the
records must flow again after the reconnect.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
from helpers.server import wait_until

import ekws
from ekws.actions import parse_action
from ekws.actions.websocket import MAX_READ_MESSAGE

BIG = 32 * 1024 * 1024

PEER = textwrap.dedent(f"""
    import sys
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve

    count = 0

    def handler(conn):
        global count
        count += 1
        n = count
        try:
            for message in conn:
                print("MSG", n, message, flush=True)
                if n == 1:
                    if conn.ping().wait(10):
                        print("PONG", n, flush=True)
                    conn.send(b"small")  # dropped by the action, within the bound
                    conn.send(b"\\0" * {BIG})  # far over it
        except ConnectionClosed as exc:
            print("CLOSED", n, exc.rcvd.code if exc.rcvd else None, flush=True)
            return
        except Exception as exc:  # the connection was reset while sending
            print("CLOSED", n, None, flush=True)
            return
        print("CLOSED", n, conn.close_code, flush=True)

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        print("READY", server.socket.getsockname()[1], flush=True)
        server.serve_forever()
""")


class Peer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PEER], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        assert ready[:1] == ["READY"], ready
        self.port = int(ready[1])
        self.lines: list[list[str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name="test-peer-out", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.strip().split(maxsplit=2))
                self._cond.notify_all()

    def wait(self, predicate: object, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.lines), timeout)  # type: ignore[operator]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.close()


def test_an_oversize_server_message_fails_with_1009_unbuffered_and_records_flow_after_reconnect(
        peer: Peer) -> None:
    assert BIG > 100 * MAX_READ_MESSAGE
    spec = parse_action({"websocket": {"addr": f"127.0.0.1:{peer.port}", "path": "/sink", "sendSingle": True,
                                       "reconnect": {"initialDelay": "20ms", "maxDelay": "100ms"}}}, 0)
    action = spec.build("r")
    source = ekws.Peer("demo", "", "", 0)
    tracemalloc.start()
    try:
        action.start()
        action.send(ekws.Message({"n": 0}, source, 0))
        # The close frame says 1009; the peer may not read it: the socket is closed with
        # the rest of the frame unread, which resets the connection.
        assert peer.wait(lambda lines: any(line[:2] == ["CLOSED", "1"] for line in lines)), peer.lines
        assert [line[2] for line in peer.lines if line[:2] == ["CLOSED", "1"]] in (["1009"], ["None"])
        assert ["PONG", "1"] in peer.lines  # answered while idle, before the big frame came
        for n in range(1, 20):
            action.send(ekws.Message({"n": n}, source, 0))
        assert peer.wait(lambda lines: sum(1 for line in lines if line[:2] == ["MSG", "2"]) >= 19), peer.lines
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        action.close()
    assert peak < 4 * 1024 * 1024, f"the action held {peak} bytes at its peak"  # the frame is 32 MB
    received = [line[2] for line in peer.lines if line[:2] == ["MSG", "2"]]
    assert received == [f'{{"n":{n}}}' for n in range(1, 20)]
    metrics = action.metrics()
    assert metrics["exceptions_total"] >= 1 and "exceeds" in metrics["last_exception"]
    assert metrics["connects_total"] == 2 and metrics["records_out_total"] == 20
    assert wait_until(lambda: action.metrics()["connection_status"] == -1)  # closed by close()
