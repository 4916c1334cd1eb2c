"""The client-mode websocket action dials with client mode's one dial: a stop cuts it short.

With websocket-client's ``create_connection`` a rule stop waited for a
server that accepted TCP and never answered the upgrade until the
connect timeout ran out; with :func:`ekws.wire.client.dial` the action's
close() shuts the socket of the dial in progress down at once.
"""

from __future__ import annotations

import socket
import time

from helpers.server import wait_until

import ekws
from ekws.actions import Action, parse_action


def test_close_cuts_short_an_upgrade_the_server_never_answers() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]
        spec = parse_action({"websocket": {"addr": f"127.0.0.1:{port}", "path": "/sink",
                                           "connectTimeout": "60s"}}, 0)
        action: Action = spec.build("r")
        action.start()
        try:
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(10)
                assert peer.recv(4096).startswith(b"GET /sink HTTP/1.1")  # inside the upgrade now
                action.send(ekws.Message({"n": 1}, ekws.Peer("demo", "", "", 0), 0))
                started = time.monotonic()
                action.close()
                elapsed = time.monotonic() - started
                assert peer.recv(4096) == b""  # the action dropped the half-done upgrade
        finally:
            action.close()
    assert elapsed < 2.0, f"close() took {elapsed:.1f} s with a dial in progress"
    metrics = action.metrics()
    assert metrics["connects_total"] == 0 and metrics["exceptions_total"] == 0  # a stop is no failure
    assert metrics["connection_status"] == -1


def test_a_refused_upgrade_is_counted_with_the_status() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]
        spec = parse_action({"websocket": {"addr": f"127.0.0.1:{port}",
                                           "reconnect": {"initialDelay": "10s"}}}, 0)
        action: Action = spec.build("r")
        action.start()
        try:
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(10)
                assert peer.recv(4096).startswith(b"GET / HTTP/1.1")
                peer.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                assert wait_until(lambda: action.metrics()["exceptions_total"] == 1)
        finally:
            action.close()
    last = action.metrics()["last_exception"]
    assert f"ws://127.0.0.1:{port}/" in last and "HTTP 403" in last
