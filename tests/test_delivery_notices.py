"""Notices (decode errors, statuses) stay bounded behind a slow subscriber.

A real server-mode stream, fed by an independent peer (the ``websockets``
library) that sends nothing but bad JSON while the subscriber's ``on_error``
is stuck: the queued notices stay at ``MAX_NOTICES``, the rest is coalesced
and counted, nothing is lost from the count, and memory stays flat.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psutil
import pytest
from server_helpers import server_stream, wait_until, ws_connect

import ekws
from ekws.buffer import MAX_NOTICES, Buffer
from ekws.errors import DecodeError
from ekws.message import Message, Peer, Status

PEER = Peer("s", "/", "127.0.0.1:1", 1)


def test_bad_json_flood_behind_a_stuck_on_error_stays_bounded(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    total = 60_000
    stuck = threading.Event()
    release = threading.Event()
    delivered: list[ekws.EkwsError] = []

    def on_error(exc: ekws.EkwsError) -> None:
        delivered.append(exc)
        stuck.set()
        release.wait(30)

    caplog.set_level(logging.WARNING, logger="ekws")
    process = psutil.Process()
    with server_stream(tmp_path, on_error=on_error) as (rt, sub, got, url):
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
            assert metrics["notices_coalesced_total"] == total - 1 - MAX_NOTICES
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
