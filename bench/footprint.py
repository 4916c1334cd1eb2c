"""Footprint and startup probes, each run in a fresh process by the driver.

``python -m bench.footprint KIND [--port P]``:

- ``rss-bare``      the interpreter alone (the floor every row stands on).
- ``rss-naive``     websocket-client connected to ``--port`` (an idle sender) plus a
                    Werkzeug threaded server with simple-websocket imported.
- ``rss-ekws``      an ekws.Runtime (config ``--etc``, written by the driver) holding one
                    idle client-mode stream (conf key ``bench``, dialling an idle sender)
                    and one idle server-mode stream, a subscription each.
- ``startup-naive`` from ``import werkzeug`` to a Werkzeug server port accepting.
- ``startup-ekws``  from ``import ekws`` to the shared server port accepting.

This module imports only what it must before measuring: the startup probes
would otherwise pre-load modules that the measured import then gets for free.
It prints one ``RESULT {json}`` line and exits.
"""

from __future__ import annotations

import os
import sys
import time

HOST = "127.0.0.1"


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def report(**fields: object) -> None:
    import json

    print("RESULT " + json.dumps(fields), flush=True)
    sys.stderr.flush()
    os._exit(0)


def accepting(port: int) -> None:
    import socket

    socket.create_connection((HOST, port), timeout=5).close()


def settle() -> int:
    """Let threads reach their idle waits, collect garbage, then read RSS."""
    import gc

    time.sleep(0.3)
    gc.collect()
    return rss_kb()


def rss_ekws(etc: str) -> None:
    import ekws

    rt = ekws.Runtime(config_dir=etc)
    rt.create_stream('CREATE STREAM c() WITH (DATASOURCE="/", CONF_KEY="bench", TYPE="websocket")')
    rt.create_stream('CREATE STREAM s() WITH (DATASOURCE="/bench", TYPE="websocket")')
    rt.subscribe("c", lambda msg: None)
    rt.subscribe("s", lambda msg: None)
    deadline = time.monotonic() + 10
    while rt.status("c")["state"] != "connected" and time.monotonic() < deadline:
        time.sleep(0.01)
    connected = rt.status("c")["state"] == "connected"
    assert rt.server_address is not None
    accepting(rt.server_address[1])
    report(rss_kb=settle(), connected=connected, threads=threads())


def rss_naive(port: int) -> None:
    import threading

    import simple_websocket
    import websocket
    from werkzeug.serving import make_server

    ws = websocket.create_connection(f"ws://{HOST}:{port}/")

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        client = simple_websocket.Server(environ)
        while True:
            client.receive()

    server = make_server(HOST, 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # the naive client needs a thread of its own to receive while the main thread works
    threading.Thread(target=ws.recv, daemon=True).start()
    accepting(server.server_port)
    report(rss_kb=settle(), connected=ws.connected, threads=threads())


def startup_ekws(etc: str) -> None:
    t0 = time.perf_counter()
    import ekws

    t_import = time.perf_counter()
    rt = ekws.Runtime(config_dir=etc)
    rt.create_stream('CREATE STREAM s() WITH (DATASOURCE="/bench", TYPE="websocket")')
    rt.subscribe("s", lambda msg: None)
    assert rt.server_address is not None
    accepting(rt.server_address[1])
    t1 = time.perf_counter()
    report(seconds=t1 - t0, import_s=t_import - t0)


def startup_naive() -> None:
    t0 = time.perf_counter()
    import threading

    import simple_websocket
    from werkzeug.serving import make_server

    t_import = time.perf_counter()

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        simple_websocket.Server(environ).receive()
        return []

    server = make_server(HOST, 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    accepting(server.server_port)
    t1 = time.perf_counter()
    report(seconds=t1 - t0, import_s=t_import - t0)


def threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kind = args[0]
    port = int(args[args.index("--port") + 1]) if "--port" in args else 0
    etc = args[args.index("--etc") + 1] if "--etc" in args else ""
    if kind == "rss-bare":
        report(rss_kb=settle(), threads=threads())
    elif kind == "rss-naive":
        rss_naive(port)
    elif kind == "rss-ekws":
        rss_ekws(etc)
    elif kind == "startup-naive":
        startup_naive()
    elif kind == "startup-ekws":
        startup_ekws(etc)
    else:
        print(f"unknown kind {kind!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
