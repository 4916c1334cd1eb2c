"""Autobahn testee (client role): run every case of a fuzzing server, echoing.

Autobahn's testee protocol: ``/getCaseCount`` sends the number of cases,
``/runCase?case=N&agent=A`` runs one (echo every message until the server
closes), ``/updateReports?agent=A`` writes the reports. Dials with
websocket-client, as ekws's client mode does, then reads with ekws's
connection layer.

    python compliance/echo_client.py --url ws://127.0.0.1:9001 --agent ekws
"""

from __future__ import annotations

import argparse
import sys

import websocket

from ekws.wire.protocol import OPEN, Connection, Link

MAX_MESSAGE = 64 * 1024 * 1024  # Autobahn 9.x sends messages up to 16 MiB
RECV_SIZE = 1024 * 1024
CASE_TIMEOUT = 60.0


def run(url: str, echo: bool = True) -> list[str | bytes]:
    """Dial ``url`` and read until the connection closes; echo when asked. Returns the messages."""
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True, suppress_origin=True)
    sock = ws.sock
    ws.sock = None  # ours from here
    assert sock is not None
    conn = Connection(client=True, where=url, max_message_size=MAX_MESSAGE)
    link = Link(conn, sock)
    got: list[str | bytes] = []
    sock.settimeout(CASE_TIMEOUT)
    try:
        while conn.state is OPEN:
            data = sock.recv(RECV_SIZE)
            if not data:
                link.eof()
                break
            for message in link.feed(data):
                got.append(message)
                if echo:
                    link.send(message)
        # The server closes TCP first after the close handshake (RFC 6455 7.1.1).
        sock.settimeout(2.0)
        while True:
            data = sock.recv(RECV_SIZE)
            if not data:
                break
            link.feed(data)
    except OSError:
        pass
    finally:
        sock.close()
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="ekws")
    args = parser.parse_args()
    count = int(run(f"{args.url}/getCaseCount", echo=False)[0])
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        try:
            run(f"{args.url}/runCase?case={case}&agent={args.agent}")
        except (OSError, websocket.WebSocketException) as exc:
            print(f"case {case}: {exc}", file=sys.stderr)
    run(f"{args.url}/updateReports?agent={args.agent}", echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
