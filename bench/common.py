"""Shared pieces of the benchmark suite: payloads, frames, handshakes, stats, processes.

Everything on the wire is built by hand here so the senders cost little and
every receiver (ekws or baseline) sees exactly the same bytes. Receivers and
senders are separate ``python -m bench.<module>`` processes that talk to the
driver (``bench/run.py``) through stdout lines: ``READY key=value ...`` while
starting, then one JSON line (``RESULT {...}``) at the end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = b"\x37\xfa\x21\x3d"

# -- payloads -----------------------------------------------------------------

SMALL: dict[str, Any] = {
    "temperature": 23.5,
    "humidity": 71,
    "device": "sensor-0042",
    "ts": 1732550400123,
    "status": "ok",
    "rssi": -67,
}


def large_payload(size: int = 16 * 1024) -> bytes:
    """A JSON object of about ``size`` bytes: a device report with many readings."""
    readings: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"device": "sensor-0042", "ts": 1732550400123, "status": "ok", "readings": readings}
    i = 0
    while True:
        readings.append(
            {"t": 1732550400123 + i * 100, "temperature": 23.5 + i % 7 / 10, "humidity": 71 - i % 5}
        )
        if len(json.dumps(doc)) >= size:
            readings.pop()
            break
        i += 1
    body = json.dumps(doc)
    doc["pad"] = "x" * max(0, size - len(body) - len(', "pad": ""'))
    return json.dumps(doc).encode()


def payload(size: str) -> bytes:
    """``small`` (112 B sensor record) or ``large`` (16 KiB object)."""
    if size == "small":
        return json.dumps(SMALL).encode()
    if size == "large":
        return large_payload()
    raise ValueError(f"size must be small or large, not {size!r}")


def stamped(ts_ns: int, device: str = "sensor-0042", seq: int = 0) -> bytes:
    """A small sensor record whose ``ts`` is the sender's ``time.monotonic_ns()``.

    CLOCK_MONOTONIC is system-wide on Linux, so sender and receiver compare it directly.
    """
    return b'{"temperature": 23.5, "humidity": 71, "device": "%s", "ts": %d, "seq": %d, "status": "ok"}' % (
        device.encode(),
        ts_ns,
        seq,
    )


# -- frames -------------------------------------------------------------------


def frame(data: bytes, opcode: int = 0x1, mask: bytes | None = None) -> bytes:
    """One final WebSocket frame; masked (client to server) when ``mask`` is given."""
    n = len(data)
    head = bytearray([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + data
    return bytes(head) + mask + xor_mask(data, mask)


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """Apply a 4-byte WebSocket mask with one big-int XOR (fast enough in pure Python)."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def close_frame(code: int = 1000, mask: bytes | None = None) -> bytes:
    return frame(struct.pack("!H", code), opcode=0x8, mask=mask)


# -- handshakes (by hand, on blocking sockets) ---------------------------------


def accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read an HTTP head up to the blank line; returns (head, bytes read past it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("peer closed during the handshake")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def server_handshake(sock: socket.socket) -> bytes:
    """Answer a client's upgrade request with 101; returns bytes read past the head."""
    head, rest = read_head(sock)
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if not key:
        raise ConnectionError("no Sec-WebSocket-Key in the upgrade request")
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key) + b"\r\n\r\n"
    )
    return rest


def upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path.encode(), host.encode(), port, key)
    )


def check_101(head: bytes) -> None:
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise ConnectionError(f"upgrade refused: {status!r}")


def client_handshake(sock: socket.socket, host: str, port: int, path: str) -> bytes:
    """Send an upgrade request and check the 101; returns bytes read past the head."""
    sock.sendall(upgrade_request(host, port, path))
    head, rest = read_head(sock)
    check_101(head)
    return rest


# -- ekws configuration -------------------------------------------------------


def write_etc(client_port: int = 9) -> str:
    """A temp etc dir for ekws: ``bench`` dials ``client_port``; ``default`` is server mode.

    Keepalive pings are off so nothing but the measured traffic crosses the wire.
    """
    etc = Path(tempfile.mkdtemp(prefix="ekws-bench-"))
    (etc / "sources").mkdir()
    conf = {
        "default": {"addr": "", "pingInterval": 0},
        "bench": {"addr": f"127.0.0.1:{client_port or 9}", "pingInterval": 0},
        "source": {"httpServerIp": "127.0.0.1", "httpServerPort": 0},
    }
    (etc / "sources" / "websocket.yaml").write_text(json.dumps(conf, indent=2))  # JSON is YAML
    return str(etc)


# -- stats and process facts ---------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def maxrss_kb() -> int:
    """Peak RSS of this process so far, KiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_kb(pid: int | None = None) -> int:
    """Current RSS (VmRSS) of a process, KiB."""
    return _proc_status(pid).get("VmRSS", 0)


def threads(pid: int | None = None) -> int:
    return _proc_status(pid).get("Threads", 0)


def _proc_status(pid: int | None) -> dict[str, int]:
    path = f"/proc/{pid if pid else 'self'}/status"
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "Threads"):
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def raise_nofile(want: int = 8192) -> None:
    """Raise RLIMIT_NOFILE's soft limit toward ``want`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- child-process protocol ----------------------------------------------------


def ready(**fields: object) -> None:
    """Tell the driver this process is listening/connected (one stdout line)."""
    print("READY " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def result(**fields: object) -> None:
    """Report the measurement (one stdout line) and leave without teardown costs."""
    print("RESULT " + json.dumps(fields), flush=True)


def finish(code: int = 0) -> None:
    """Exit at once: teardown of servers and threads is not what we measure."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Child:
    """A ``python -m bench.<module> ...`` subprocess whose stdout lines we read with timeouts.

    stderr goes to a temp file (a chatty child must never block on a full pipe);
    its tail is shown when the child fails.
    """

    def __init__(self, module: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        full_env.update(env or {})
        self.argv = [sys.executable, "-m", f"bench.{module}", *args]
        self.name = " ".join(self.argv[2:])
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(
            self.argv, cwd=str(ROOT), env=full_env, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Daemon: it only copies pipe lines and ends at EOF when the child exits.
        self._reader = threading.Thread(target=self._read, name=f"bench-child-{self.proc.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> dict[str, str]:
        line = self._line_starting("READY", timeout)
        return dict(part.split("=", 1) for part in line.split()[1:])

    def wait_result(self, timeout: float = 60.0) -> dict[str, Any]:
        line = self._line_starting("RESULT", timeout)
        out: dict[str, Any] = json.loads(line[len("RESULT ") :])
        return out

    def _line_starting(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.name}: no {prefix} line within {timeout:.0f} s") from None
            if line is None:
                self._lines.put(None)
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}):\n{self.stderr_tail()}")
            if line.startswith(prefix):
                return line.strip()

    def stderr_tail(self, lines: int = 15) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().strip().splitlines()[-lines:])

    def stop(self, timeout: float = 3.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
