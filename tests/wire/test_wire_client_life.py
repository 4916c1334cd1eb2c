"""Client mode: stops that stop, redials on schedule, a thread that never dies silently, logs that help.

Peers: listening sockets that never accept or never answer TLS (blackholes),
the ``websockets`` server (accept then close at once), trustme TLS.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.certs import make_pki
from helpers.client import Recorder, create_stream, write_etc
from helpers.peers import run_server, unused_port
from helpers.server import Collector, wait_until
from helpers.server import write_etc as write_server_etc
from websockets.sync.server import ServerConnection

import ekws
from ekws.config import Reconnect, SourceProps
from ekws.errors import EkwsError
from ekws.message import Peer
from ekws.wire.client import LOUD_FAILURES, ClientSource

pytestmark = pytest.mark.timeout(30)


def _client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ekws-client-") and t.is_alive()]


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A socket that listens but never accepts: TCP connects, then nothing ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as sock:
        yield sock


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_close_during_a_dial_that_never_answers_returns_within_1s(
    tmp_path: Path, silent_listener: socket.socket, scheme: str
) -> None:
    addr = f"127.0.0.1:{silent_listener.getsockname()[1]}"
    rec = Recorder()
    rt = ekws.Runtime(config_dir=write_etc(tmp_path, addr, scheme=scheme, connectTimeout=30))
    try:
        create_stream(rt)
        rt.subscribe("feed", **rec.callbacks)
        rec.wait_status("connecting")
        time.sleep(0.3)  # well inside the HTTP (ws) or TLS (wss) handshake
    finally:
        started = time.monotonic()
        rt.close()
        took = time.monotonic() - started
    assert took < 1.0, f"close took {took:.2f} s"
    assert not _client_threads()
    assert "connected" not in rec.states()


def test_close_during_a_tcp_connect_to_a_blackhole_returns_within_1s(tmp_path: Path) -> None:
    # 10.255.255.1 is unroutable here: the SYN goes unanswered (or the dial fails at once).
    rec = Recorder()
    rt = ekws.Runtime(config_dir=write_etc(tmp_path, "10.255.255.1:9", connectTimeout=30))
    try:
        create_stream(rt)
        rt.subscribe("feed", **rec.callbacks)
        rec.wait_status("connecting")
        time.sleep(0.3)
    finally:
        started = time.monotonic()
        rt.close()
        took = time.monotonic() - started
    assert took < 1.0, f"close took {took:.2f} s"
    assert not _client_threads()


def test_accept_then_close_server_is_redialled_on_the_backoff_schedule(tmp_path: Path) -> None:
    dials: list[float] = []

    def handler(ws: ServerConnection) -> None:
        dials.append(time.monotonic())  # and return: the connection closes (1000) at once

    reconnect = {"initialDelay": 0.1, "maxDelay": 0.4, "maxRetries": 0}
    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(
        config_dir=write_etc(tmp_path, peer.addr, reconnect=reconnect)
    ) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks):
            time.sleep(2.5)
            window = list(dials)
    # A hot loop made about 13 dials a second; the schedule allows 0.05 + 0.1 + 0.2 + 0.2 * n s of waits.
    assert 3 <= len(window) <= 14, window
    gaps = [b - a for a, b in zip(window, window[1:])]
    assert min(gaps[2:]) >= 0.2 * 0.9, gaps  # grown to maxDelay/2 or more, not reset by each flap


def test_flaps_count_toward_max_retries(tmp_path: Path) -> None:
    dials: list[float] = []

    def handler(ws: ServerConnection) -> None:
        dials.append(time.monotonic())

    reconnect = {"initialDelay": 0.01, "maxDelay": 5, "maxRetries": 3}
    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(
        config_dir=write_etc(tmp_path, peer.addr, reconnect=reconnect)
    ) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks):
            rec.wait_status("stopped", timeout=15)
    assert len(dials) == 3, dials


def test_a_connection_that_stayed_up_for_max_delay_resets_the_count(tmp_path: Path) -> None:
    dials: list[float] = []

    def handler(ws: ServerConnection) -> None:
        dials.append(time.monotonic())
        time.sleep(0.3)  # up longer than maxDelay, then closed by the server

    reconnect = {"initialDelay": 0.01, "maxDelay": 0.2, "maxRetries": 2}
    rec = Recorder()
    with run_server(handler) as peer, ekws.Runtime(
        config_dir=write_etc(tmp_path, peer.addr, reconnect=reconnect)
    ) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks):
            assert wait_until(lambda: len(dials) >= 4, timeout=10), dials
            assert "stopped" not in rec.states()


def test_retry_logging_is_one_warning_per_attempt_then_a_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ekws")
    reconnect = {"initialDelay": 0.01, "maxDelay": 0.02, "maxRetries": 12}
    rec = Recorder()
    etc = write_etc(tmp_path, f"127.0.0.1:{unused_port()}", reconnect=reconnect)
    with ekws.Runtime(config_dir=etc) as rt:
        create_stream(rt)
        with rt.subscribe("feed", **rec.callbacks):
            rec.wait_status("stopped", timeout=15)
    attempts = rec.states().count("connecting")
    assert attempts == 12
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ekws")]
    per_attempt = [r for r in warnings if "reconnecting in" in r.getMessage()]
    assert len(per_attempt) == LOUD_FAILURES, [r.getMessage() for r in warnings]
    assert any("giving up" in r.getMessage() for r in warnings)
    assert len(warnings) <= LOUD_FAILURES + 2  # plus one summary at most, plus giving up
    # No line repeated: each says something the others do not.
    messages = [r.getMessage() for r in warnings]
    assert len(set(messages)) == len(messages), messages


class _BrokenSink:
    """A sink whose publish raises what no wire code expects (a bug elsewhere)."""

    def __init__(self) -> None:
        self.errors: list[EkwsError] = []
        self.states: list[str] = []
        self.stopped = threading.Event()

    def publish(self, peer: Peer, payloads: list[bytes | str], timestamp: int) -> None:
        raise RuntimeError("bug in a sink")

    def report_status(self, state: str, error: str | None = None, url: str | None = None,
                      attempt: int = 0) -> None:
        self.states.append(state)
        if state == "stopped":
            self.stopped.set()

    def report_error(self, exc: EkwsError) -> None:
        self.errors.append(exc)

    def connection_opened(self, peer: Peer) -> None:
        pass

    def connection_closed(self, peer: Peer) -> None:
        pass


def test_unexpected_exception_in_the_client_thread_is_reported_and_ends_stopped() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send('{"a": 1}')
        time.sleep(1)

    sink = _BrokenSink()
    with run_server(handler) as peer:
        props = SourceProps(addr=peer.addr, reconnect=Reconnect(0.05, 0.1, 0))
        source = ClientSource(sink, "broken", "/x", props, lambda: 1)
        source.start()
        try:
            assert sink.stopped.wait(10)
        finally:
            source.stop()
    assert sink.states[-1] == "stopped"
    assert any("RuntimeError" in str(e) and "bug in a sink" in str(e) for e in sink.errors), sink.errors
    assert not _client_threads()


def test_insecure_skip_verify_warns_once_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = make_pki(tmp_path)

    def handler(ws: ServerConnection) -> None:
        ws.send('{"ok": 1}')
        time.sleep(0.5)

    caplog.set_level(logging.INFO, logger="ekws")
    rec = Recorder()
    with run_server(handler, ssl_context=pki.server_context()) as peer:
        etc = write_etc(tmp_path, peer.addr, scheme="wss", insecureSkipVerify=True)
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                assert [m.data for m in rec.take(2, timeout=10)] == [{"ok": 1}, {"ok": 1}]  # two dials
    lines = [r for r in caplog.records if "insecureSkipVerify" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING, [r.getMessage() for r in lines]
    assert peer.addr in lines[0].getMessage()


@pytest.mark.parametrize("run", range(8))
def test_mutual_tls_refusal_names_the_tls_reason(tmp_path: Path, run: int) -> None:
    pki = make_pki(tmp_path)

    def handler(ws: ServerConnection) -> None:
        ws.send('{"should": "not arrive"}')

    rec = Recorder()
    with run_server(handler, ssl_context=pki.server_context(require_client_cert=True)) as peer:
        etc = write_etc(tmp_path, peer.addr, scheme="wss", rootCaPath=str(pki.ca_path), reconnect={
            "initialDelay": 5, "maxDelay": 5, "maxRetries": 0})
        with ekws.Runtime(config_dir=etc) as rt:
            create_stream(rt)
            with rt.subscribe("feed", **rec.callbacks):
                failed = rec.wait_status(lambda s: s.state == "disconnected" and bool(s.error))
    error = rec.statuses[failed].error
    assert "TLS" in error and "certificate" in error.lower(), error
    assert "already closed" not in error


def test_server_mode_logs_peers_and_violations(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from helpers.server import create_sql, ws_connect
    from websockets.exceptions import ConnectionClosed

    caplog.set_level(logging.INFO, logger="ekws")
    with ekws.Runtime(config_dir=write_server_etc(tmp_path, {"maxMessageSize": 100})) as rt:
        rt.create_stream(create_sql("demo", "/api/data"))
        with rt.subscribe("demo", Collector()):
            assert rt.server_address is not None
            port = rt.server_address[1]
            with ws_connect(f"ws://127.0.0.1:{port}/api/data") as ws:
                local = f"127.0.0.1:{ws.local_address[1]}"
                ws.send("x" * 200)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
            assert wait_until(lambda: rt.status("demo")["connections"] == 0)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(level == logging.INFO and "listening on" in text and f":{port}/api/data" in text
               for level, text in messages), messages
    assert any(level == logging.INFO and local in text and "connected" in text and "connection" in text
               for level, text in messages), messages
    assert any(level == logging.WARNING and local in text and "maxMessageSize" in text and "1009" in text
               for level, text in messages), messages
    assert any(level == logging.INFO and local in text and "disconnected" in text and "1009" in text
               for level, text in messages), messages
