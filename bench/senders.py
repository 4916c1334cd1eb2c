"""Cheap WebSocket senders: raw sockets, hand-made handshakes, pre-built frames.

Run as ``python -m bench.senders KIND [options]``:

- ``serve-push``  client-mode peer: a one-connection WebSocket server that writes
  pre-built unmasked frames in big chunks until the receiver hangs up.
- ``serve-paced`` the same, but ``--count`` time-stamped messages at ``--rate``.
- ``serve-idle``  accepts one connection, completes the handshake, then holds it.
- ``dial-push``   server-mode peer: dials ``--port``/``--path`` and writes
  pre-built masked frames until the receiver hangs up.
- ``dial-paced``  the same, paced and time-stamped.
- ``dial-push-many`` ``--clients`` connections from this one process, all
  handshaken first, then a selectors loop writes the same masked frames to
  every writable socket (the multi-connection throughput case).
- ``dial-burst``  ``--clients`` connections, all handshaken first; after
  ``--settle`` s each writes ``--count`` masked frames as fast as TCP takes
  them (the fan-in memory case), then holds its connection.
- ``dial-many``   ``--clients`` connections each sending one time-stamped
  message per second for ``--seconds`` (spread evenly), for the many-connections case.

Each prints ``READY ...`` (with ``port=`` for serve-*) once its socket is
listening or connected, so the driver knows when to start the other side.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import time

from bench.common import (
    MASK,
    check_101,
    client_handshake,
    frame,
    payload,
    raise_nofile,
    read_head,
    ready,
    result,
    server_handshake,
    stamped,
    upgrade_request,
)

CHUNK_BYTES = 256 * 1024
HOST = "127.0.0.1"


def push(sock: socket.socket, data: bytes, masked: bool, max_seconds: float) -> int:
    """Write copies of one pre-built frame in big chunks until the peer goes away."""
    one = frame(data, mask=MASK if masked else None)
    per_chunk = max(1, CHUNK_BYTES // len(one))
    chunk = one * per_chunk
    sent = 0
    deadline = time.monotonic() + max_seconds
    try:
        while time.monotonic() < deadline:
            sock.sendall(chunk)
            sent += per_chunk
    except OSError:
        pass  # the receiver has counted enough and hung up: that is the normal end
    return sent


def push_many(socks: list[socket.socket], data: bytes, max_seconds: float) -> int:
    """Write pre-built masked frames to every socket as fast as each one accepts them.

    One thread and a selectors loop: cheaper than a thread per connection, and a
    slow connection never holds up the others. ``send`` may take part of the
    chunk, so each socket keeps its offset into it (the chunk is whole frames
    and the stream just continues where it stopped, frames stay intact).
    Returns the bytes written.
    """
    one = frame(data, mask=MASK)
    return _write_all(socks, one * max(1, CHUNK_BYTES // len(one)), max_seconds, cyclic=True)


def burst(socks: list[socket.socket], data: bytes, count: int, max_seconds: float) -> int:
    """Write ``count`` masked frames on every socket, whichever can take more, until all are out."""
    return _write_all(socks, frame(data, mask=MASK) * count, max_seconds, cyclic=False)


def _write_all(socks: list[socket.socket], data: bytes, max_seconds: float, *, cyclic: bool) -> int:
    """Write ``data`` to every socket from one selectors loop; ``cyclic``: over and over until
    the receiver hangs up or ``max_seconds`` pass, else once. Returns the bytes written."""
    buf = memoryview(data)
    size = len(buf)
    sel = selectors.DefaultSelector()
    offsets: dict[socket.socket, int] = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_WRITE, data=sock)
        offsets[sock] = 0
    written = 0
    deadline = time.monotonic() + max_seconds
    while offsets and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            sock = key.data
            try:
                n = sock.send(buf[offsets[sock] :])
            except BlockingIOError:
                continue
            except OSError:  # the receiver has counted enough and hung up: the normal end
                n = -1
            if n >= 0:
                written += n
                offsets[sock] += n
                if offsets[sock] < size:
                    continue
                if cyclic:  # the whole buffer went out: start it again
                    offsets[sock] = 0
                    continue
            sel.unregister(sock)
            del offsets[sock]
    sel.close()
    return written


def paced(sock: socket.socket, count: int, rate: float, masked: bool) -> None:
    """Send ``count`` messages stamped with ``monotonic_ns()`` at ``rate`` per second."""
    mask = MASK if masked else None
    start = time.monotonic() + 0.05
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(frame(stamped(time.monotonic_ns(), seq=i), mask=mask))


def hold(sock: socket.socket, max_seconds: float) -> None:
    """Keep the connection open (reading and discarding) until the peer closes it."""
    sock.settimeout(max_seconds)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def serve_one(args: argparse.Namespace) -> socket.socket:
    listener = socket.create_server((HOST, 0))
    ready(port=listener.getsockname()[1])
    listener.settimeout(args.max_seconds)
    sock, _ = listener.accept()
    listener.close()
    server_handshake(sock)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def dial_one(args: argparse.Namespace) -> socket.socket:
    sock = socket.create_connection((HOST, args.port), timeout=10)
    client_handshake(sock, HOST, args.port, args.path)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ready(connected=1)
    return sock


def dial_all(args: argparse.Namespace) -> list[socket.socket]:
    """Open and upgrade ``--clients`` connections, 50 at a time (requests first, then answers)."""
    raise_nofile(args.clients + 256)
    socks: list[socket.socket] = []
    request = upgrade_request(HOST, args.port, args.path)
    for first in range(0, args.clients, 50):
        batch = [
            socket.create_connection((HOST, args.port), timeout=30)
            for _ in range(first, min(args.clients, first + 50))
        ]
        for s in batch:
            s.sendall(request)
        for s in batch:
            head, _ = read_head(s)
            check_101(head)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.extend(batch)
    return socks


def dial_many(args: argparse.Namespace) -> None:
    """Open ``--clients`` connections (in batches), then send 1 msg/s on each."""
    socks = dial_all(args)
    ready(connected=len(socks))
    time.sleep(args.settle)  # the driver samples RSS and threads with every peer connected and idle
    devices = [f"sensor-{i:04d}" for i in range(len(socks))]
    n = len(socks)
    start = time.monotonic()
    sent = 0
    for second in range(args.seconds):
        for i, sock in enumerate(socks):
            delay = start + second + i / n - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(frame(stamped(time.monotonic_ns(), device=devices[i], seq=second), mask=MASK))
            sent += 1
    result(sent=sent, late_s=round(time.monotonic() - start - args.seconds, 3))
    time.sleep(args.max_seconds)  # keep the peers open until the driver stops us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.senders")
    parser.add_argument(
        "kind",
        choices=[
            "serve-push",
            "serve-paced",
            "serve-idle",
            "dial-push",
            "dial-paced",
            "dial-many",
            "dial-push-many",
            "dial-burst",
        ],
    )
    parser.add_argument("--size", default="small", choices=["small", "large"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/bench")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)

    if args.kind == "dial-many":
        dial_many(args)
        return 0
    if args.kind == "dial-burst":
        socks = dial_all(args)
        ready(connected=len(socks))
        time.sleep(args.settle)  # the driver samples the receiver's RSS with every peer connected
        burst(socks, payload(args.size), args.count, args.max_seconds)
        time.sleep(args.max_seconds)  # keep the peers open until the driver stops us
        return 0
    if args.kind == "dial-push-many":
        socks = dial_all(args)
        ready(connected=len(socks))
        push_many(socks, payload(args.size), args.max_seconds)
        return 0
    sock = serve_one(args) if args.kind.startswith("serve") else dial_one(args)
    masked = args.kind.startswith("dial")
    if args.kind.endswith("push"):
        push(sock, payload(args.size), masked, args.max_seconds)
    elif args.kind.endswith("paced"):
        paced(sock, args.count, args.rate, masked)
        hold(sock, args.max_seconds)
    else:
        hold(sock, args.max_seconds)
    sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
