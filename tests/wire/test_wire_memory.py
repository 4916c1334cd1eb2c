"""Memory held by reads in flight: 200 busy server-mode peers stay within +40 MB RSS.

The ekws runtime runs in a subprocess (so the figure is its RSS alone); 200
raw-socket peers each send 1,000 JSON records as fast as TCP takes them.
The server must not decode a whole large read before back-pressure applies.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers.peers import ws_frame
from helpers.server import REPO, upgrade_request, write_etc
from websockets.frames import Opcode

pytestmark = pytest.mark.timeout(120)

PEERS = int(__import__("os").environ.get("PEERS", "200"))
RECORDS = 1000
LIMIT_MB = 40

SERVER = """
import sys, time, ekws
rt = ekws.Runtime(config_dir=sys.argv[1])
rt.create_stream('CREATE STREAM demo () WITH (DATASOURCE="/ws", FORMAT="json", TYPE="websocket")')
sub = rt.subscribe("demo", lambda msg: None)
print("PORT", rt.server_address[1], flush=True)
want = int(sys.argv[2])
while rt.status("demo")["records_out_total"] < want:
    time.sleep(0.01)
print("DONE", flush=True)
sys.stdin.readline()
rt.close()
"""


def _upgrade(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(upgrade_request("127.0.0.1", port, "/ws"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:40]
    return sock


def measure(tmp_path: Path, python_path: str) -> tuple[float, float]:
    """(idle RSS MB with every peer connected, peak growth MB while they send)."""
    etc = write_etc(tmp_path, {"pingInterval": 0})
    proc = subprocess.Popen([sys.executable, "-c", SERVER, etc, str(PEERS * RECORDS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": python_path})
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline().split()[1])
        socks = [_upgrade(port) for _ in range(PEERS)]
        record = b'{"sensor": "temperature-%04d", "value": 21.5, "unit": "C", "ts": 1700000000000, "seq": %d}'
        payloads = [b"".join(ws_frame(Opcode.TEXT, record % (peer, seq), mask=True) for seq in range(RECORDS))
                    for peer in range(PEERS)]
        process = psutil.Process(proc.pid)
        time.sleep(0.5)
        idle = process.memory_info().rss
        peak = idle
        senders = [threading.Thread(target=sock.sendall, args=(data,), name=f"peer-{i}")
                   for i, (sock, data) in enumerate(zip(socks, payloads))]
        done = threading.Event()

        def wait_done() -> None:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == "DONE":
                done.set()

        waiter = threading.Thread(target=wait_done, name="wait-done")
        waiter.start()
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 90
        while not done.is_set() and time.monotonic() < deadline:
            peak = max(peak, process.memory_info().rss)
            done.wait(0.005)
        for thread in senders:
            thread.join(10)
        assert done.is_set(), "the server did not deliver every record in time"
        proc.stdin.write("\n")
        proc.stdin.flush()
        waiter.join(5)
        return idle / 2**20, (peak - idle) / 2**20
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
        proc.wait(10)


def test_200_busy_peers_hold_little_memory(tmp_path: Path) -> None:
    idle, growth = measure(tmp_path, str(REPO))
    print(f"idle {idle:.1f} MB, growth {growth:.1f} MB")
    assert growth <= LIMIT_MB, f"RSS grew by {growth:.1f} MB over {idle:.1f} MB idle"


if __name__ == "__main__":  # python tests/wire/test_wire_memory.py [PYTHONPATH]: print the figures
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(measure(Path(tmp), sys.argv[1] if len(sys.argv) > 1 else str(REPO)))
