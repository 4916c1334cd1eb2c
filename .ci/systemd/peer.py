"""WebSocket peers and file checks for checks.sh, run inside the container.

Uses websocket-client (an ekws dependency, so it is in /opt/ekws/venv), not
ekws's own wire code: the peer is independent of what it tests.

  peer.py hold URL SECONDS          connect, print "connected", then "closed CODE"
                                    when the server closes (or "timeout"/"dropped ...")
  peer.py send URL COUNT RATE       send {"seq": 0..COUNT-1} at RATE per second, print
                                    "sent N" every 50, then "done COUNT open" if the
                                    connection is still up (a ping answered)
  peer.py tls URL CAFILE            a wss handshake verifying the server against CAFILE,
                                    one record sent: "tls ok TLSv1.3 ..."
  peer.py seq FILE COUNT all|tail   the seq values in a JSON-lines FILE: all of
                                    0..COUNT-1 once each (all), or a run ending at COUNT-1 (tail)
  peer.py waitlines FILE COUNT SECONDS   until FILE has COUNT lines (polls: a file has no event)
  peer.py listen PORT SECONDS       hold 127.0.0.1:PORT, print "listening"
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import time

import websocket


def hold(url: str, seconds: float) -> int:
    ws = websocket.create_connection(url, timeout=seconds)
    print("connected", flush=True)
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                print(f"closed {code} {data[2:].decode('utf-8', 'replace')!r}", flush=True)
                return 0
    except websocket.WebSocketTimeoutException:
        print("timeout", flush=True)
    except (websocket.WebSocketException, OSError) as exc:
        print(f"dropped {type(exc).__name__}: {exc}", flush=True)
    return 1


def send(url: str, count: int, rate: float) -> int:
    ws = websocket.create_connection(url, timeout=10)
    print("connected", flush=True)
    began = time.monotonic()
    for seq in range(count):
        delay = began + seq / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the sender, not waiting for an event
        try:
            ws.send(json.dumps({"seq": seq}))
        except (websocket.WebSocketException, OSError) as exc:
            print(f"broken at seq {seq}: {type(exc).__name__}: {exc}", flush=True)
            return 1
        if (seq + 1) % 50 == 0:
            print(f"sent {seq + 1}", flush=True)
    try:
        ws.ping(b"still-there")
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                print(f"closed by the server after the last record: {data[:2]!r}", flush=True)
                return 1
    except (websocket.WebSocketException, OSError) as exc:
        print(f"no pong after the last record: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"done {count} open", flush=True)
    ws.close()
    return 0


def tls(url: str, cafile: str) -> int:
    try:
        ws = websocket.create_connection(
            url, timeout=10, sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": cafile})
        ws.send(json.dumps({"tls": True}))
        version = ws.sock.version() if hasattr(ws.sock, "version") else "?"
        print(f"tls ok {version} {ws.sock.cipher()[0] if hasattr(ws.sock, 'cipher') else ''}", flush=True)
        ws.close()
        return 0
    except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
        print(f"tls failed: {type(exc).__name__}: {exc}", flush=True)
        return 1


def seq(path: str, count: int, mode: str) -> int:
    values = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            # A file action writes a line a message: the JSON array of its rows (eKuiper's
            # sendSingle false), or one record with sendSingle true.
            rows = json.loads(line)
            values.extend(row["seq"] for row in (rows if isinstance(rows, list) else [rows]))
    unique = sorted(set(values))
    duplicates = len(values) - len(unique)
    if mode == "all":
        missing = sorted(set(range(count)) - set(unique))
        ok = not missing and duplicates == 0 and len(unique) == count
        print(f"{len(values)} records, {duplicates} duplicates, missing {missing[:10]}"
              f"{' ...' if len(missing) > 10 else ''}", flush=True)
    else:
        ok = bool(unique) and unique[-1] == count - 1 and unique == list(range(unique[0], count)) \
            and duplicates == 0
        first = unique[0] if unique else None
        print(f"{len(values)} records, seq {first}..{unique[-1] if unique else None}, "
              f"{duplicates} duplicates, contiguous {ok}", flush=True)
    return 0 if ok else 1


def waitlines(path: str, count: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    lines = 0
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as file:
                lines = file.read().count(b"\n")
        except FileNotFoundError:
            lines = 0
        if lines >= count:
            print(f"{lines} lines", flush=True)
            return 0
        time.sleep(0.1)
    print(f"only {lines} lines after {seconds:g} s", flush=True)
    return 1


def listen(port: int, seconds: float) -> int:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        print("listening", flush=True)
        time.sleep(seconds)  # holds the port until killed or the time is up
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "hold":
        return hold(args[0], float(args[1]))
    if command == "send":
        return send(args[0], int(args[1]), float(args[2]))
    if command == "tls":
        return tls(args[0], args[1])
    if command == "seq":
        return seq(args[0], int(args[1]), args[2])
    if command == "waitlines":
        return waitlines(args[0], int(args[1]), float(args[2]))
    if command == "listen":
        return listen(int(args[0]), float(args[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
