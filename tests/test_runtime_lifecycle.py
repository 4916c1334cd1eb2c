"""Locks that never wait on I/O: status during a stop, close racing subscribe."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.client import create_stream
from helpers.client import write_etc as write_client_etc
from helpers.server import create_sql, wait_until, write_etc

import ekws
from ekws.codec import make_decoder
from ekws.config import load_websocket_config
from ekws.ddl import parse_stream
from ekws.stream import Stream


def timed(call: Callable[[], Any], limit: float) -> tuple[Any, float]:
    """Run ``call`` in a thread; fail if it has not returned within ``limit`` seconds."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), name="timed-call")
    started = time.monotonic()
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call did not return within {limit} s"
    return box[0], time.monotonic() - started


class StopBlocks:
    """A Source whose stop() blocks until released (as a join on a stuck thread does)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.release = threading.Event()
        self.starts = 0

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        self.stopping.set()
        assert self.release.wait(20)


def make_stream(source: StopBlocks) -> Stream:
    definition = parse_stream("CREATE STREAM s ()")
    props = load_websocket_config(None).props(None)
    return Stream(definition, props, make_decoder(definition), lambda stream: source)


def test_metrics_and_a_new_subscriber_do_not_wait_for_a_stopping_source() -> None:
    source = StopBlocks()
    stream = make_stream(source)
    sub = stream.subscribe(lambda m: None)
    closer = threading.Thread(target=sub.close, name="closer")
    closer.start()
    try:
        assert source.stopping.wait(5)
        metrics, took = timed(stream.metrics, 2.0)
        assert took < 1.0 and metrics["subscriptions"] == 0
        # A new subscriber waits for the stop to finish (the source is being
        # switched off), but status still answers meanwhile.
        second = threading.Thread(target=lambda: stream.subscribe(lambda m: None).close(), name="second")
        second.start()
        _metrics, took = timed(stream.metrics, 2.0)
        assert took < 1.0 and closer.is_alive()
    finally:
        source.release.set()
        closer.join(5)
    second.join(5)
    assert not second.is_alive() and source.starts == 2


def test_metrics_do_not_wait_for_a_callback_draining() -> None:
    source = StopBlocks()
    source.release.set()
    stream = make_stream(source)
    entered, hang = threading.Event(), threading.Event()

    def on_message(msg: ekws.Message) -> None:
        entered.set()
        hang.wait(20)

    sub = stream.subscribe(on_message)
    stream.publish(ekws.Peer("s", "/", "127.0.0.1:1", 1), [b'{"n": 1}', b'{"n": 2}'], 0)
    assert entered.wait(5)
    closer = threading.Thread(target=sub.close, name="closer")
    closer.start()
    try:
        metrics, took = timed(stream.metrics, 2.0)
        assert took < 1.0 and metrics["records_in_total"] == 2
    finally:
        hang.set()
        closer.join(10)
    assert sub.finished and stream.metrics()["records_out_total"] == 2


def test_status_answers_while_a_client_stream_stops_during_a_stalled_handshake(tmp_path: Path) -> None:
    # The server accepts TCP and never answers the upgrade: the dial sits in
    # the handshake, and stopping it is the slow path.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5)
    port = listener.getsockname()[1]
    etc = write_client_etc(tmp_path, f"127.0.0.1:{port}", connectTimeout=15)
    rt = ekws.Runtime(config_dir=etc)
    accepted: list[socket.socket] = []
    closer = threading.Thread(target=rt.close, name="closer")
    try:
        create_stream(rt)
        rt.subscribe("feed", lambda m: None)
        conn, _ = listener.accept()
        accepted.append(conn)
        closer.start()
        deadline = time.monotonic() + 0.5
        calls = 0
        while time.monotonic() < deadline and closer.is_alive():
            metrics, took = timed(lambda: rt.status("feed"), 2.0)
            assert took < 0.5, f"status took {took:.2f} s while the stream was stopping"
            calls += 1
        assert calls >= 1 or not closer.is_alive()
    finally:
        for conn in accepted:
            conn.close()  # the dial fails now, whatever the stop did
        listener.close()
        rt.close()
        if closer.ident is not None:
            closer.join(15)
    assert not closer.is_alive()
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.name == "ekws-client-feed"], 15)


def close_while_subscribing(etc: str) -> None:
    """One round: four threads subscribe (and close some) until rt.close() refuses them."""
    rt = ekws.Runtime(config_dir=etc)
    rt.create_stream(create_sql("demo", "/ws"))
    subs: list[ekws.Subscription] = []
    lock = threading.Lock()
    enough = threading.Event()
    refused: list[BaseException] = []
    unexpected: list[BaseException] = []

    def subscriber() -> None:
        mine: list[ekws.Subscription] = []
        try:
            while True:
                sub = rt.subscribe("demo", lambda m: None)
                with lock:
                    subs.append(sub)
                    if len(subs) >= 12:
                        enough.set()
                mine.append(sub)
                if len(mine) > 3:
                    mine.pop(0).close()
        except ekws.ClosedError as exc:
            refused.append(exc)
        except BaseException as exc:  # reported below
            unexpected.append(exc)

    threads = [threading.Thread(target=subscriber, name=f"subscriber-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    assert enough.wait(10)
    rt.close()
    for thread in threads:
        thread.join(15)
    assert not [t for t in threads if t.is_alive()]
    assert not unexpected, unexpected
    assert len(refused) == 4  # every subscriber was refused in the end
    with lock:
        alive = [sub for sub in subs if not sub.closed]
    assert not alive, f"{len(alive)} of {len(subs)} subscriptions still open after close()"
    assert wait_until(lambda: all(sub.finished for sub in subs), 10)
    assert rt.status("demo")["subscriptions"] == 0
    assert rt.server_address is None  # the shared server stopped with the last subscription


def test_closing_the_runtime_while_threads_subscribe_leaves_no_subscription_alive(tmp_path: Path) -> None:
    for round_ in range(6):
        close_while_subscribing(write_etc(tmp_path / f"r{round_}"))


def test_statuses_and_the_state_metric_are_state_members(tmp_path: Path) -> None:
    statuses: list[ekws.Status] = []
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        sub = rt.subscribe("demo", lambda m: None, on_status=statuses.append)
        assert wait_until(lambda: len(statuses) == 1)
        assert rt.status("demo")["state"] is ekws.State.CONNECTED
        before = time.time()
        sub.close()
        assert rt.status("demo")["state"] is ekws.State.STOPPED
    assert [s.state for s in statuses][0] is ekws.State.CONNECTED
    assert all(isinstance(s.state, ekws.State) for s in statuses)
    assert all(isinstance(s.time, float) and abs(s.time - before) < 60 for s in statuses)  # seconds


def test_wait_ends_on_close_from_another_thread_and_on_a_signal(tmp_path: Path) -> None:
    etc = write_etc(tmp_path)
    rt = ekws.Runtime(config_dir=etc)
    closer = threading.Timer(0.2, rt.close)
    closer.start()
    start = time.monotonic()
    assert rt.wait(10) is True
    assert time.monotonic() - start < 2, "close() did not wake wait()"
    closer.join(5)

    before = signal.getsignal(signal.SIGTERM)

    def kill_once_waiting(delay: float) -> None:
        # Only once wait() has its handler in place: the default one would end pytest.
        if wait_until(lambda: signal.getsignal(signal.SIGTERM) is not before, 10):
            time.sleep(delay)
            os.kill(os.getpid(), signal.SIGTERM)

    for delay in (0.0, 0.05, 0.13):  # the signal lands at different points of the wait
        rt = ekws.Runtime(config_dir=etc)
        killer = threading.Thread(target=kill_once_waiting, args=(delay,))
        killer.start()
        assert rt.wait(10) is True
        killer.join(5)
        with pytest.raises(ekws.ClosedError):
            rt.create_stream('CREATE STREAM s() WITH (DATASOURCE="/s")')
        assert signal.getsignal(signal.SIGTERM) is before
    assert ekws.Runtime(config_dir=etc).wait(0.1) is False
