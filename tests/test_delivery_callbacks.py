"""Callback errors reach the user: on_error with the cause, else stderr; rate-limited.

The stderr cases run as subprocesses, because pytest itself configures
logging and replaces ``threading.excepthook``: only a fresh interpreter shows
what an application that configured nothing sees.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers.server import Collector, ErrorLog, server_stream, wait_until, write_etc, ws_connect

import ekws
from ekws.message import Peer, Status
from ekws.subscription import Subscription
from ekws.throttle import Throttle

PEER = Peer("s", "/", "127.0.0.1:1", 1)


def test_raising_on_message_reaches_on_error_with_the_cause_and_the_message(tmp_path: Path) -> None:
    boom = ValueError("bad reading")

    def on_each(msg: ekws.Message) -> None:
        if msg.data["n"] == 1:
            raise boom

    got, errors = Collector(on_each=on_each), ErrorLog()
    with server_stream(tmp_path, collector=got, on_error=errors) as (rt, sub, _got, url):
        with ws_connect(url) as ws:
            for n in range(3):
                ws.send(json.dumps({"n": n}))
            assert got.wait_for(2) and wait_until(lambda: sub.failed == 1)
            assert wait_until(lambda: len(errors.errors) == 1)
        assert [m["n"] for m in got.data] == [0, 2]
        (error,) = errors.errors
        assert isinstance(error, ekws.CallbackError) and error.callback == "on_message"
        assert error.__cause__ is boom
        assert isinstance(error.item, ekws.Message) and error.item.data == {"n": 1}
        assert "on_message raised ValueError: bad reading" in str(error)
        metrics = rt.status("demo")
        assert metrics["exceptions_total"] == 1 and "bad reading" in metrics["last_exception"]
        assert metrics["records_out_total"] == 2


def test_raising_on_status_reaches_on_error() -> None:
    errors = ErrorLog()

    def on_status(status: Status) -> None:
        raise RuntimeError(f"status {status.state}")

    sub = Subscription("s", lambda m: None, errors, on_status)
    sub.start()
    sub.notify(Status("s", ekws.State.CONNECTED, 0.0))
    sub.close()
    (error,) = errors.errors
    assert isinstance(error, ekws.CallbackError) and error.callback == "on_status"
    assert str(error.__cause__) == "status connected" and error.item.state is ekws.State.CONNECTED


def test_raising_on_error_is_logged_and_never_recursed_into(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[ekws.EkwsError] = []

    def on_error(exc: ekws.EkwsError) -> None:
        calls.append(exc)
        raise KeyError("handler bug")

    def on_message(msg: ekws.Message) -> None:
        raise RuntimeError("first")

    caplog.set_level(logging.ERROR, logger="ekws")
    sub = Subscription("s", on_message, on_error)
    sub.start()
    sub.offer([ekws.Message({"n": n}, PEER, 0) for n in range(3)])
    sub.close()
    assert len(calls) == 3  # once per failing message, never for its own failure
    assert sub.failed == 6  # three on_message, three on_error
    records = [r for r in caplog.records if r.name == "ekws.subscription"]
    with_traceback = [r for r in records if r.exc_info]
    # One traceback per path (the on_message error, the on_error error), then counts only.
    assert sorted(str(r.exc_info[1]) for r in with_traceback) == ["'handler bug'", "first"]
    assert any("2 more callback errors" in r.getMessage() for r in records)


def test_a_callback_calling_sys_exit_does_not_end_the_worker() -> None:
    got: list[int] = []

    def on_message(msg: ekws.Message) -> None:
        if msg.data["n"] == 0:
            sys.exit(3)
        got.append(msg.data["n"])

    errors = ErrorLog()
    sub = Subscription("s", on_message, errors)
    sub.start()
    sub.offer([ekws.Message({"n": n}, PEER, 0) for n in range(3)])
    sub.close()
    assert got == [1, 2] and isinstance(errors.errors[0].__cause__, SystemExit)


def test_throttle_reports_the_first_then_a_count_at_most_every_interval() -> None:
    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])
    assert throttle.hit("a").full
    verdicts = [throttle.hit(f"b{n}") for n in range(100)]
    assert not any(v.full or v.summary for v in verdicts)
    now[0] = 10.0
    summary = throttle.hit("c")
    assert (summary.full, summary.summary, summary.last) == (False, 101, "c")
    now[0] = 15.0
    assert throttle.hit("d") == (False, 0, "")  # within the new window
    assert throttle.flush() == (False, 1, "d") and throttle.flush().summary == 0
    now[0] = 40.0  # quiet for longer than the interval: the next one is in full again
    assert throttle.hit("e").full


def test_throttle_is_thread_safe() -> None:
    throttle = Throttle(3600.0)
    throttle.hit("first")
    threads = [threading.Thread(target=lambda: [throttle.hit("x") for _ in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert throttle.flush().summary == 8000


# -- what an application that configured nothing sees (subprocesses) ----------------

SCRIPT = r"""
import json, logging, sys, time
import ekws
from websockets.sync.client import connect

etc, handle, configure = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if configure:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
total = 10_000
handled = []

def on_message(msg):
    raise RuntimeError(f"boom {msg.data['n']}")

with ekws.Runtime(config_dir=etc) as rt:
    rt.create_stream('CREATE STREAM demo() WITH (DATASOURCE="/ws", TYPE="websocket")')
    sub = rt.subscribe("demo", on_message, handled.append if handle else None)
    with connect(f"ws://127.0.0.1:{rt.server_address[1]}/ws", proxy=None, open_timeout=5) as ws:
        for n in range(total):
            ws.send(json.dumps({"n": n}))
    deadline = time.monotonic() + 30
    while sub.failed < total and time.monotonic() < deadline:
        time.sleep(0.01)
    sub.close()
    metrics = rt.status("demo")
print(json.dumps({"failed": sub.failed, "handled": len(handled), "exceptions": metrics["exceptions_total"]}))
"""


def run_script(tmp_path: Path, handle: bool, configure: bool) -> tuple[dict[str, int], str]:
    etc = write_etc(tmp_path)
    done = subprocess.run([sys.executable, "-c", SCRIPT, etc, str(int(handle)), str(int(configure))],
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def summarised(stderr: str) -> int:
    return sum(int(n) for n in re.findall(r"(\d+) more callback errors", stderr))


def test_without_on_error_the_traceback_reaches_stderr_once_then_counts(tmp_path: Path) -> None:
    result, stderr = run_script(tmp_path, handle=False, configure=False)
    assert result["failed"] == result["exceptions"] == 10_000
    assert len(stderr) < 10_000, f"{len(stderr)} bytes of stderr for 10,000 raising messages"
    # Like an exception in a thread the application started: threading.excepthook's form.
    assert re.search(r"Exception in thread ekws-sub-demo-\d+", stderr), stderr
    assert stderr.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: boom 0" in stderr
    assert 1 + summarised(stderr) == 10_000, stderr  # the traceback plus the summarised count


def test_with_on_error_each_failure_is_handled_and_nothing_is_printed(tmp_path: Path) -> None:
    result, stderr = run_script(tmp_path, handle=True, configure=False)
    assert result == {"failed": 10_000, "handled": 10_000, "exceptions": 10_000}
    assert "Traceback" not in stderr and len(stderr) < 2_000, stderr


def test_with_logging_configured_the_log_gets_one_traceback_then_counts(tmp_path: Path) -> None:
    for handle in (False, True):
        result, stderr = run_script(tmp_path / str(handle), handle=handle, configure=True)
        assert result["failed"] == 10_000
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR:ekws.subscription")]
        assert stderr.count("Traceback (most recent call last)") == 1, stderr[-2000:]
        assert 1 <= len(errors) <= 3 and 1 + summarised(stderr) == 10_000, errors
        assert "Exception in thread" not in stderr  # the log, not the thread hook
        assert len(stderr) < 10_000
