"""Notices (decode errors, statuses) stay bounded behind a slow subscriber.

A real server-mode stream, fed by an independent peer (the ``websockets``
library) that sends nothing but bad JSON while the subscriber's ``on_error``
is stuck. With a second subscription the wire thread decodes: the queued
notices stay at ``MAX_NOTICES``, the rest is coalesced and counted, nothing
is lost from the count, and memory stays flat. With one queued subscription
its worker decodes, so a stuck ``on_error`` holds up decoding itself: at most
``bufferLength`` payloads wait, the peer is held back by TCP, and every
error is counted once the callback returns.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psutil
import pytest
from helpers.server import server_stream, wait_until, ws_connect

import ekws
from ekws.buffer import MAX_NOTICES, Buffer
from ekws.errors import DecodeError
from ekws.message import Message, Peer, Status

PEER = Peer("s", "/", "127.0.0.1:1", 1)


class StuckOnError:
    """An ``on_error`` that keeps what it gets and then hangs until ``release`` is set."""

    def __init__(self) -> None:
        self.stuck = threading.Event()
        self.release = threading.Event()
        self.delivered: list[ekws.EkwsError] = []

    def __call__(self, exc: ekws.EkwsError) -> None:
        self.delivered.append(exc)
        self.stuck.set()
        self.release.wait(30)


def test_bad_json_flood_behind_a_stuck_on_error_stays_bounded(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    total = 60_000
    on_error = StuckOnError()
    stuck, release, delivered = on_error.stuck, on_error.release, on_error.delivered

    caplog.set_level(logging.WARNING, logger="ekws")
    process = psutil.Process()
    with server_stream(tmp_path, on_error=on_error) as (rt, sub, got, url), \
            rt.subscribe("demo", lambda msg: None):  # two subscriptions: the wire thread decodes
        with ws_connect(url, compression=None) as ws:
            ws.send("{not json")
            assert stuck.wait(10), "the first decode error never reached on_error"
            baseline = process.memory_info().rss
            pad = "x" * 200  # a large-ish bad payload: the error message quotes none of it
            for seq in range(1, total):
                ws.send(f"{{bad {seq} {pad}")
            assert wait_until(lambda: rt.status("demo")["decode_errors_total"] == total, 30), \
                rt.status("demo")
            growth_mb = (process.memory_info().rss - baseline) / 2**20
            metrics = rt.status("demo")
            assert sub.notices <= MAX_NOTICES
            # Everything past the bound was coalesced, and counted.
            assert sub.coalesced == total - 1 - MAX_NOTICES
            assert metrics["notices_coalesced_total"] >= sub.coalesced  # the other subscription's too
            assert metrics["exceptions_total"] >= total
            release.set()
            assert wait_until(lambda: sub.notices == 0 and len(delivered) >= MAX_NOTICES + 2, 10)
        # Nothing is lost from the count: single errors plus the coalesced sums make the total.
        summed = sum(e.count if isinstance(e, ekws.ErrorsCoalesced) else 1 for e in delivered)
        assert summed == total
        summaries = [e for e in delivered if isinstance(e, ekws.ErrorsCoalesced)]
        assert len(summaries) == 1 and isinstance(summaries[0].last, DecodeError)
        assert summaries[0].__cause__ is summaries[0].last
        assert summaries[0].count == total - 1 - MAX_NOTICES
        assert got.messages == []
    # An unbounded queue holds ~60,000 errors here (+20 MB measured); a bounded one, next to nothing.
    assert growth_mb < 6, f"RSS grew by {growth_mb:.1f} MB"
    # The decode-error log is rate-limited too: the first in full, then summaries.
    lines = [r for r in caplog.records if r.name == "ekws.stream"]
    assert 1 <= len(lines) <= 5, [r.getMessage()[:80] for r in lines]


def test_one_subscription_decodes_on_its_worker_so_a_stuck_on_error_holds_the_peer_back(
        tmp_path: Path) -> None:
    total, capacity = 100_000, 256  # ~21 MB of bad JSON: more than loopback's socket buffers hold
    on_error = StuckOnError()
    stuck, release, delivered = on_error.stuck, on_error.release, on_error.delivered

    sent = [0]
    with server_stream(tmp_path, on_error=on_error, buffer_length=capacity) as (rt, sub, got, url):
        with ws_connect(url, compression=None) as ws:
            ws.send("{not json")
            assert stuck.wait(10), "the first decode error never reached on_error"
            pad = "x" * 200

            def flood() -> None:
                for seq in range(1, total):
                    ws.send(f"{{bad {seq} {pad}")
                    sent[0] += 1
                ws.send('{"n": 1}')

            sender = threading.Thread(target=flood, daemon=True)
            sender.start()
            try:
                # The worker is stuck: what waits is bounded by bufferLength, and TCP holds the peer.
                assert wait_until(lambda: sub.buffered == capacity, 10), sub.buffered
                stalled = [-1]

                def stalls() -> bool:
                    now, stalled[0] = stalled[0], sent[0]
                    return now == sent[0]

                assert wait_until(stalls, 20, interval=0.3), sent[0]
                assert sent[0] < total - 1 and sub.buffered == capacity
                assert rt.status("demo")["decode_errors_total"] == 1
            finally:
                release.set()
            sender.join(30)
            assert not sender.is_alive()
            assert wait_until(lambda: got.messages, 30), rt.status("demo")
        metrics = rt.status("demo")
        assert metrics["decode_errors_total"] == total
        assert metrics["records_in_total"] == 1 and got.messages[0].data == {"n": 1}
        assert sub.notices <= MAX_NOTICES
    summed = sum(e.count if isinstance(e, ekws.ErrorsCoalesced) else 1 for e in delivered)
    assert summed == total


def test_statuses_past_the_bound_keep_the_latest() -> None:
    buffer = Buffer(4, "block")
    for n in range(MAX_NOTICES):
        buffer.put_notice(Status("s", ekws.State.CONNECTING, float(n)))
    buffer.put_notice(Status("s", ekws.State.DISCONNECTED, 100.0))
    buffer.put_notice(Status("s", ekws.State.CONNECTED, 101.0))  # replaces the pending one
    buffer.put_notice(DecodeError("one"))  # a single pending error is delivered as itself
    buffer.put_batch([Message({"n": 1}, PEER, 0)])  # messages are not held up by notices
    assert buffer.notices == MAX_NOTICES and len(buffer) == 1
    assert buffer.coalesced == 2  # the replaced status, the pending error (until it is queued)
    buffer.close()
    out = []
    while (item := buffer.get()) is not None:
        out.append(item)
    assert buffer.coalesced == 1  # the error was delivered as itself after all
    assert [type(item).__name__ for item in out[-3:]] == ["Message", "DecodeError", "Status"]
    assert out[-1].state is ekws.State.CONNECTED and out[-1].time == 101.0
    assert buffer.notices == 0
