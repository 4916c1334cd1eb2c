"""The receivers under test: ekws and the baselines it is compared with.

Run as ``python -m bench.receivers KIND --mode client|server --task TASK ...``;
each run is a fresh process, so imports, threads and RSS belong to one receiver.

KIND:
- ``ekws``        ekws.Runtime + one stream + one subscription (JSON backend from
                  ``EKWS_JSON``, set by the driver).
- ``naive``       what a user writes by hand: client mode, websocket-client
                  ``WebSocket.recv()`` + ``json.loads``; server mode, Werkzeug's
                  threaded server + simple-websocket ``receive()`` + ``json.loads``.
- ``websockets``  the ``websockets`` library's sync client / sync server + ``json.loads``.
- ``aiohttp``     aiohttp's client ``ws_connect`` / server ``WebSocketResponse``
                  (asyncio, C-accelerated frame reader) + ``json.loads``.
- ``picows``      picows (Cython) client / server listener, ``on_ws_frame`` +
                  ``json.loads`` (frames, no reassembly: the senders never fragment).
- ``ceiling``     a pure-Python frame parser over a raw socket + ``json.loads``.
- ``ceiling-mem`` the same parser + ``json.loads`` over pre-built frames in
                  memory (no socket, no sender; ``--size``): the practical
                  ceiling for a pure-Python receiver.

TASK:
- ``throughput``  count records for ``--seconds`` after the first one; with
                  ``--clients`` above 1 (server mode, several connections feeding
                  one sink from their own threads) the count is taken under a lock.
- ``latency``     sender timestamp to callback for ``--count`` paced records.
- ``lag``         the same over many connections (server mode; ``--count`` in total).
- ``tally``       done once ``--count`` records arrived (the fan-in memory case).

Client mode dials the sender at ``--port``; server mode listens on an ephemeral
port and prints it in its ``READY`` line. The end is one ``RESULT`` JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Union

from bench.common import (
    MASK,
    client_handshake,
    cpu_s,
    finish,
    frame,
    maxrss_kb,
    payload,
    percentile,
    raise_nofile,
    ready,
    result,
    server_handshake,
    threads,
    write_etc,
    xor_mask,
)

HOST = "127.0.0.1"
PATH = "/bench"
EXTRA: dict[str, Any] = {}  # receiver facts added to the RESULT line


# -- sinks: what every receiver hands each decoded record to -------------------


class Counter:
    """Throughput: counts records for ``seconds`` measured from the first one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.count = 0
        self.t0 = 0.0
        self.measured = 0
        self.elapsed = 0.0
        self.rss_half_kb = 0
        self.threads_half = 0
        self.cpu0 = 0.0  # process CPU (every thread) at the first record
        self.cpu = 0.0  # process CPU over the measured records
        self.switches0 = self.switches = (0, 0)  # (voluntary, involuntary) context switches
        self.done = threading.Event()

    def on(self, record: Any) -> None:
        self.count += 1
        now = time.perf_counter()
        if self.count == 1:
            self.t0 = now
            self.cpu0 = cpu_s()
            self.switches0 = switches()
            return
        elapsed = now - self.t0
        if not self.rss_half_kb and elapsed >= self.seconds / 2:
            self.rss_half_kb = maxrss_kb()
            self.threads_half = threads()
        if elapsed >= self.seconds and not self.done.is_set():
            self.measured, self.elapsed = self.count - 1, elapsed
            self.cpu = cpu_s() - self.cpu0
            self.switches = tuple(b - a for a, b in zip(self.switches0, switches()))
            self.done.set()

    def report(self) -> dict[str, Any]:
        rate = self.measured / self.elapsed if self.elapsed else 0.0
        return {
            "rate": rate,
            "count": self.measured,
            "elapsed": self.elapsed,
            "rss_half_kb": self.rss_half_kb,
            "threads": self.threads_half,
            # CPU per message, every thread of the receiver: steadier than msg/s on a shared machine.
            "cpu_us_per_msg": self.cpu / self.measured * 1e6 if self.measured else 0.0,
            # Of the wall time, the share the process ran (1.0 = one core busy throughout), and
            # why it did not: voluntary switches (waiting for data or a lock) and involuntary
            # ones (preempted: another process wanted the core).
            "cores": self.cpu / self.elapsed if self.elapsed else 0.0,
            "vcsw": self.switches[0],
            "ivcsw": self.switches[1],
        }


class SharedCounter(Counter):
    """A :class:`Counter` fed by several threads (one per connection) at once.

    ``count += 1`` is not atomic across threads, and two threads could both see
    themselves as the first record; a lock makes each step whole. Every receiver
    in a multi-connection run uses this sink, ekws included (its one subscription
    worker takes the lock uncontended), so the lock costs them alike.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self._lock = threading.Lock()

    def on(self, record: Any) -> None:
        with self._lock:
            super().on(record)


class Latency:
    """Latency/lag: ``monotonic_ns()`` now minus the record's ``ts`` (sender's clock)."""

    def __init__(self, count: int, skip: int) -> None:
        self.count = count
        self.skip = skip
        self.n = 0
        self.lat_ns: list[int] = []
        self.devices: set[str] = set()
        self.lock = threading.Lock()  # many connections feed one sink in server mode
        self.done = threading.Event()

    def on(self, record: Any) -> None:
        lat = time.monotonic_ns() - record["ts"]
        with self.lock:
            self.n += 1
            if self.n > self.skip:
                self.lat_ns.append(lat)
            self.devices.add(record["device"])
            if self.n >= self.count:
                self.done.set()

    def report(self) -> dict[str, Any]:
        with self.lock:
            lat_ms = [x / 1e6 for x in self.lat_ns]
            return {
                "received": self.n,
                "expected": self.count,
                "lost": self.count - self.n,
                "devices": len(self.devices),
                "p50_ms": percentile(lat_ms, 50),
                "p99_ms": percentile(lat_ms, 99),
                "max_ms": max(lat_ms, default=float("nan")),
            }


class Tally:
    """Fan-in: done once ``count`` records arrived, from any number of threads."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.n = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.t0 = 0.0
        self.elapsed = 0.0

    def on(self, record: Any) -> None:
        with self.lock:
            self.n += 1
            if self.n == 1:
                self.t0 = time.perf_counter()
            if self.n == self.count:
                self.elapsed = time.perf_counter() - self.t0
                self.done.set()

    def report(self) -> dict[str, Any]:
        return {"received": self.n, "expected": self.count, "elapsed": self.elapsed}


Sink = Union[Counter, Latency, Tally]  # SharedCounter is a Counter


# -- receivers ----------------------------------------------------------------


def switches() -> tuple[int, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw, r.ru_nivcsw


def run_ekws(args: argparse.Namespace, sink: Sink) -> None:
    import ekws

    try:
        from ekws import codec

        EXTRA["json_backend"] = codec.JSON_BACKEND
    except (ImportError, AttributeError):
        pass
    rt = ekws.Runtime(config_dir=write_etc(args.port))
    if args.mode == "client":
        rt.create_stream('CREATE STREAM b() WITH (DATASOURCE="/", CONF_KEY="bench", TYPE="websocket")')
    else:
        rt.create_stream(f'CREATE STREAM b() WITH (DATASOURCE="{PATH}", TYPE="websocket")')
    on = sink.on
    delivery = os.environ.get("EKWS_BENCH_DELIVERY")  # inline: callbacks on the reader thread
    EXTRA["delivery"] = delivery or "queue"
    if delivery:
        rt.subscribe("b", lambda msg: on(msg.data), delivery=delivery)
    else:
        rt.subscribe("b", lambda msg: on(msg.data))
    if args.mode == "server":
        address = rt.server_address
        assert address is not None, "the shared server is not running"
        ready(port=address[1])
    else:
        ready()


def run_naive(args: argparse.Namespace, sink: Sink) -> None:
    if args.mode == "client":
        import websocket

        ws = websocket.create_connection(f"ws://{HOST}:{args.port}/")
        ready()
        while not sink.done.is_set():
            sink.on(json.loads(ws.recv()))
        return

    import simple_websocket
    from werkzeug.serving import make_server

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        ws = simple_websocket.Server(environ)
        try:
            while True:
                sink.on(json.loads(ws.receive()))
        except simple_websocket.ConnectionClosed:
            pass
        return []

    server = make_server(HOST, 0, app, threaded=True)
    # Daemon: the process ends with os._exit once the sink is done.
    threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True).start()
    ready(port=server.server_port)


def run_websockets(args: argparse.Namespace, sink: Sink) -> None:
    if args.mode == "client":
        from websockets.sync.client import connect

        # No ``with``: leaving it would wait out close_timeout for a close
        # handshake the raw sender never answers; the process exits instead.
        ws = connect(f"ws://{HOST}:{args.port}/")
        ready()
        while not sink.done.is_set():
            sink.on(json.loads(ws.recv()))
        return

    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            sink.on(json.loads(message))

    server = serve(handler, HOST, 0)
    threading.Thread(target=server.serve_forever, name="websockets", daemon=True).start()
    ready(port=server.socket.getsockname()[1])


def run_aiohttp(args: argparse.Namespace, sink: Sink) -> None:
    import asyncio

    import aiohttp
    from aiohttp import web

    on, loads, TEXT = sink.on, json.loads, aiohttp.WSMsgType.TEXT

    async def client() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://{HOST}:{args.port}/", max_msg_size=0)
            ready()
            while not sink.done.is_set():
                msg = await ws.receive()
                if msg.type is not TEXT:
                    break
                on(loads(msg.data))

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is TEXT:
                on(loads(msg.data))
        return ws

    async def server() -> None:
        app = web.Application()
        app.router.add_get(PATH, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        ready(port=runner.addresses[0][1])
        while not sink.done.is_set():
            await asyncio.sleep(0.05)

    asyncio.run(client() if args.mode == "client" else server())


def run_picows(args: argparse.Namespace, sink: Sink) -> None:
    import asyncio

    from picows import WSListener, WSMsgType, ws_connect, ws_create_server

    on, loads, TEXT = sink.on, json.loads, WSMsgType.TEXT

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == TEXT:
                on(loads(frame.get_payload_as_utf8_text()))

    async def main() -> None:
        if args.mode == "client":
            await ws_connect(Listener, f"ws://{HOST}:{args.port}/")
            ready()
        else:
            server = await ws_create_server(lambda request: Listener(), HOST, 0)
            ready(port=server.sockets[0].getsockname()[1])
        while not sink.done.is_set():
            await asyncio.sleep(0.05)

    asyncio.run(main())


def run_ceiling_mem(args: argparse.Namespace, sink: Sink) -> None:
    """The ceiling without a socket: parse pre-built 256 KiB chunks of frames from memory."""
    one = frame(payload(args.size), mask=MASK if args.mode == "server" else None)
    chunk = one * max(1, 262144 // len(one))
    on = sink.on
    loads = json.loads
    ready()
    while not sink.done.is_set():
        parse_frames(bytearray(chunk), lambda data: on(loads(data)))


def run_ceiling(args: argparse.Namespace, sink: Sink) -> None:
    if args.mode == "client":
        sock = socket.create_connection((HOST, args.port))
        rest = client_handshake(sock, HOST, args.port, "/")
        ready()
    else:
        listener = socket.create_server((HOST, 0))
        ready(port=listener.getsockname()[1])
        sock, _ = listener.accept()
        rest = server_handshake(sock)
    on = sink.on
    loads = json.loads
    buf = bytearray(rest)
    while not sink.done.is_set():
        chunk = sock.recv(262144)
        if not chunk:
            break
        buf += chunk
        del buf[: parse_frames(buf, lambda data: on(loads(data)))]


def parse_frames(buf: bytearray, on_message: Callable[[bytes], None]) -> int:
    """Hand every complete data frame in ``buf`` to ``on_message``; returns bytes consumed.

    Unfragmented frames only (the senders never fragment); masked or not.
    """
    pos, end = 0, len(buf)
    while end - pos >= 2:
        b1 = buf[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            if end - pos < 4:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if end - pos < 10:
                break
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        masked = b1 & 0x80
        stop = pos + head + (4 if masked else 0) + length
        if stop > end:
            break
        opcode = buf[pos] & 0x0F
        if opcode == 0x8:
            raise ConnectionError("close frame")
        if opcode in (0x1, 0x2):
            if masked:
                mask = bytes(buf[pos + head : pos + head + 4])
                on_message(xor_mask(bytes(buf[pos + head + 4 : stop]), mask))
            else:
                on_message(bytes(buf[pos + head : stop]))
        pos = stop
    return pos


RECEIVERS: dict[str, Callable[[argparse.Namespace, Sink], None]] = {
    "ekws": run_ekws,
    "naive": run_naive,
    "websockets": run_websockets,
    "ceiling": run_ceiling,
    "ceiling-mem": run_ceiling_mem,
    "aiohttp": run_aiohttp,
    "picows": run_picows,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receivers")
    parser.add_argument("kind", choices=sorted(RECEIVERS))
    parser.add_argument("--mode", choices=["client", "server"], required=True)
    parser.add_argument("--task", choices=["throughput", "latency", "lag", "tally"], default="throughput")
    parser.add_argument("--port", type=int, default=0, help="client mode: the sender's port")
    parser.add_argument("--seconds", type=float, default=1.0, help="throughput: how long to count")
    parser.add_argument("--count", type=int, default=1000, help="latency/lag: records expected")
    parser.add_argument("--clients", type=int, default=1, help="throughput: connections feeding the sink")
    parser.add_argument("--size", default="small", help="ceiling-mem: small or large payload")
    parser.add_argument("--skip", type=int, default=0, help="latency: warm-up records left out")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)

    raise_nofile(8192)
    sink: Sink
    if args.task == "tally":
        sink = Tally(args.count)
    elif args.task != "throughput":
        sink = Latency(args.count, args.skip)
    else:
        sink = SharedCounter(args.seconds) if args.clients > 1 else Counter(args.seconds)
    RECEIVERS[args.kind](args, sink)  # loop receivers return when done; others return once started
    complete = sink.done.wait(args.timeout)
    fields: dict[str, Any] = {
        "complete": complete,
        "rss_peak_kb": maxrss_kb(),
        "threads": threads(),
        "cpu_s": cpu_s(),
    }
    fields.update(EXTRA)
    fields.update(sink.report())
    result(**fields)
    finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
