"""The window timer: one thread for every window, on time under load; a stopped rule leaves nothing."""

from __future__ import annotations

import logging
import statistics
import threading
import time

import pytest
from helpers.rules import send
from helpers.server import wait_until

import ekws
from ekws.rules.manager import RuleManager
from ekws.rules.window import TIMERS, Emission, Timers, WindowRunner, WindowSpec

PEER = ekws.Peer("s", "", "", 0)


def test_windows_fire_on_time_under_load() -> None:
    # 100 windows of 100 ms on one Timers (one thread), while a thread feeds every window as
    # fast as it can: each window's lateness (fire time - its end) is measured on the real clock.
    # The bound is generous (a shared CI machine): the median within 50 ms, the worst within 500.
    timers = Timers()
    lateness: list[float] = []
    lock = threading.Lock()

    def emit(emission: Emission) -> None:
        late = time.time() * 1000 - emission.end
        with lock:
            lateness.append(late)

    threads = set(threading.enumerate())
    runners = [WindowRunner(WindowSpec("tumbling", "MS", 100, 100), emit, timers=timers) for _ in range(100)]
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.is_set():
            runners[n % 100].add(ekws.Message({"n": n}, PEER, 0))
            n += 1

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert wait_until(lambda: len(lateness) >= 1000, timeout=30)
        new = set(threading.enumerate()) - threads - {feeder}
        assert [t.name for t in new] == ["ekws-window-timers"]  # one timer thread for the 100 windows
    finally:
        stop.set()
        feeder.join(10)
        for runner in runners:
            runner.stop()
    assert timers.pending() == 0
    with lock:
        values = sorted(lateness)
    assert min(values) >= 0  # never early
    assert statistics.median(values) < 50, values[len(values) // 2:][:20]
    assert values[-1] < 500, values[-20:]


def test_a_stopped_rule_flushes_nothing_and_leaves_no_timer(rules: RuleManager, runtime: ekws.Runtime,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    before = TIMERS.pending()
    rules.create({"id": "t", "sql": "SELECT count(*) AS n FROM demo GROUP BY TUMBLINGWINDOW(ss, 2)",
                  "actions": [{"log": {}}]})
    assert TIMERS.pending() == before + 1
    send(runtime, {"a": 1}, {"a": 2})
    assert wait_until(lambda: rules.status("t")["op_2_window_0_records_in_total"] == 2, timeout=5)
    rules.stop("t")
    assert TIMERS.pending() == before
    assert rules.status("t")["op_2_window_0_records_out_total"] == 0
    assert not [r for r in caplog.records if r.name == "ekws.actions.log"]
