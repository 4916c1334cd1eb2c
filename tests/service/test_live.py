"""`ekws tail` and the status data, against `ekws run` as a subprocess.

tail: the CLI as a subprocess prints records a `websockets` client sends,
ends with 0 on Ctrl-C, drops (and says how many) when its stdout is not
read, never slowing the stream. Status: `/status` and `/status/events` (SSE
read with http.client) show the stream and its counts; `/` is the only
route served without the token. The page in Chromium: tests/service/test_status_page.py.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.common import wait_until
from helpers.service import ENV, Lines, Service, write_etc
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

TOKEN = "live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def feed(svc: Service, *records: object, path: str = "/api/data") -> None:
    with connect(f"ws://127.0.0.1:{svc.ws_port}{path}", proxy=None, open_timeout=5) as ws:
        for record in records:
            ws.send(json.dumps(record))


def start_tail(svc: Service, stream: str, *, token: str | None = TOKEN) -> subprocess.Popen[str]:
    extra = ["--token", token] if token else []
    return subprocess.Popen([sys.executable, "-m", "ekws", "--port", str(svc.port), *extra, "tail", stream],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the child, as a foreground command in a terminal has it.

    A shell without job control starts background jobs with SIGINT ignored, and
    children inherit that: pytest run in the background (CI runs two suites side
    by side) would hand the tail an ignored SIGINT, and Ctrl-C could not be tested.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def status(svc: Service) -> dict:
    code, body = svc.json("GET", "/status", headers=AUTH)
    assert code == 200, body
    return body


def stream_of(svc: Service, name: str = "websocketDemo") -> dict:
    return next(s for s in status(svc)["streams"] if s["name"] == name)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    return wait_until(predicate, timeout, interval=0.05)


def tails(svc: Service) -> int:
    return stream_of(svc)["subscriptions"] - 1  # the service's own subscription prints to stdout


# ------------------------------------------------------------------------------------- tail


def test_tail_prints_records_as_json_lines_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        proc = start_tail(svc, "websocketDemo")
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            assert wait_for(lambda: tails(svc) == 1), err.text
            feed(svc, {"seq": 1, "t": 20.5}, [{"seq": 2}, {"seq": 3}])
            lines = out.wait_count(3)
            records = [json.loads(line) for line in lines]
            assert [r["data"] for r in records] == [{"seq": 1, "t": 20.5}, {"seq": 2}, {"seq": 3}]
            assert {r["meta"]["stream"] for r in records} == {"websocketDemo"}
            assert all(r["meta"]["datasource"] == "/api/data" for r in records)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
        finally:
            proc.kill()
        err.thread.join(5)
        assert "3 record(s) shown, 0 dropped" in err.text
        assert "Traceback" not in err.text
        assert wait_for(lambda: tails(svc) == 0)  # the tail's subscription is gone
        assert svc.stop() == 0


def test_a_slow_tail_drops_says_how_many_and_never_slows_the_stream(tmp_path: Path) -> None:
    """The tail's stdout is not read: the pipe fills, the tail stops reading its socket."""
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        proc = start_tail(svc, "websocketDemo")
        err = Lines(proc.stderr)
        try:
            assert wait_for(lambda: tails(svc) == 1), err.text
            big = "x" * 8000
            count = 3000  # 24 MB: far past the pipe and both sockets' buffers
            started = time.monotonic()
            feed(svc, *({"seq": seq, "pad": big} for seq in range(count)))
            assert wait_for(lambda: stream_of(svc)["records_in_total"] == count, 30)
            elapsed = time.monotonic() - started
            # The stream was not held back: the service's own subscription drained too.
            assert stream_of(svc)["dropped_total"] == 0
            assert wait_for(lambda: stream_of(svc)["buffer_length"] == 0, 10)
            shown = 0
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # now read what the tail kept, and its notice
                line = proc.stdout.readline()
                shown += 1
                if json.loads(line)["data"]["seq"] == count - 1:
                    break
            err.wait_for(r"(\d+) record\(s\) dropped so far", timeout=10)
            proc.send_signal(signal.SIGINT)
            rest = proc.stdout.read()
            shown += len(rest.splitlines())
            assert proc.wait(10) == 0
        finally:
            proc.kill()
        err.thread.join(5)
        summary = re.search(r"(\d+) record\(s\) shown, (\d+) dropped", err.text)
        assert summary is not None, err.text
        printed, dropped = int(summary.group(1)), int(summary.group(2))
        assert printed == shown and 0 < printed < count
        assert dropped > 0 and printed + dropped <= count
        print(f"slow tail: {count} records in {elapsed:.1f} s; printed {printed}, {dropped} dropped")
        assert svc.stop() == 0


def test_tail_refusals_name_the_problem(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        wrong = start_tail(svc, "websocketDemo", token="nope")
        missing = start_tail(svc, "nosuch")
        assert wrong.wait(15) == 1 and missing.wait(15) == 1
        assert "missing or wrong bearer token" in wrong.stderr.read()  # type: ignore[union-attr]
        assert "no stream named 'nosuch'" in missing.stderr.read()  # type: ignore[union-attr]
        usage = svc.cli("tail", token=TOKEN)
        assert usage.returncode == 2 and "tail STREAM" in usage.stderr
        code, _, text = svc.request("GET", "/streams/websocketDemo/tail", headers=AUTH)
        assert code == 426 and "Upgrade: websocket" in text
        url = f"ws://127.0.0.1:{svc.port}/streams/websocketDemo/tail"
        with pytest.raises(InvalidStatus) as foreign:  # a web page elsewhere cannot read the stream
            connect(url, additional_headers=AUTH, origin="http://evil.example", proxy=None)
        assert foreign.value.response.status_code == 403
        with connect(url, additional_headers=AUTH, origin=f"http://127.0.0.1:{svc.port}", proxy=None):
            pass  # the status page's own origin may
    unreachable = subprocess.run([sys.executable, "-m", "ekws", "--port", str(svc.port), "tail", "x"],
                                 capture_output=True, text=True, env=ENV, timeout=30)
    assert unreachable.returncode == 1 and "cannot reach ekws" in unreachable.stderr


def test_dropping_the_stream_ends_the_tail_with_1001(tmp_path: Path) -> None:
    sql = 'CREATE STREAM s2() WITH (DATASOURCE="/s2")'
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        assert svc.request("POST", "/streams", {"sql": sql}, headers=AUTH)[0] == 201
        proc = start_tail(svc, "s2")
        try:
            assert wait_for(lambda: stream_of(svc, "s2")["subscriptions"] == 1)  # no rule reads s2
            assert svc.request("DELETE", "/streams/s2", headers=AUTH)[0] == 200
            assert proc.wait(15) == 1
        finally:
            proc.kill()
        assert "the service ended the tail (code 1001" in proc.stderr.read()  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------- status


def test_only_the_page_is_served_without_the_token(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        code, ctype, html = svc.request("GET", "/", headers={"Accept": "text/html"})  # as a browser asks
        assert code == 200 and ctype.startswith("text/html")
        assert "status/events" in html and "<script>" in html
        # Nothing is fetched from elsewhere: no src/href to another origin, a CSP that forbids it.
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
        conn = http.client.HTTPConnection(svc.host, svc.port, timeout=10)
        conn.request("GET", "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        response = conn.getresponse()
        response.read()
        csp = response.getheader("Content-Security-Policy") or ""
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        conn.close()
        for path in ("/status", "/status/events", "/streams", "/streams/websocketDemo/tail"):
            assert svc.request("GET", path)[0] == 401, path


def test_status_shows_streams_and_counts(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        before = stream_of(svc)
        assert before["mode"] == "server" and before["state"] == "connected"
        assert before["url"] == f"ws://127.0.0.1:{svc.ws_port}/api/data"
        assert before["records_in_total"] == 0
        with connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", proxy=None) as ws:
            ws.send(json.dumps({"a": 1}))
            ws.send("not json")
            assert wait_for(lambda: stream_of(svc)["connections"] == 1)
            assert wait_for(lambda: stream_of(svc)["records_in_total"] == 1)
        after = stream_of(svc)
        assert after["decode_errors_total"] == 1 and after["exceptions_total"] >= 1
        assert "not json" in (after["last_exception"] or "") or after["last_exception"]
        rules = status(svc)["rules"]
        assert [rule["id"] for rule in rules] == ["demoLog"] and rules[0]["records_in_total"] == 1


def test_status_events_stream_snapshots_every_second(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        conn = http.client.HTTPConnection(svc.host, svc.port, timeout=10)
        conn.request("GET", "/status/events", headers=AUTH)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        seen: list[int] = []
        started = time.monotonic()
        sent = 0
        with connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", proxy=None) as ws:
            while len(seen) < 4:
                line = response.fp.readline().decode()
                if line.startswith("data: "):
                    snap = json.loads(line[6:])
                    seen.append(next(s for s in snap["streams"] if s["name"] == "websocketDemo")
                                ["records_in_total"])
                    for _ in range(10):
                        ws.send(json.dumps({"n": sent}))
                        sent += 1
        assert seen == sorted(seen) and seen[-1] > seen[0]
        assert 2.0 <= time.monotonic() - started < 8.0  # one event a second
        conn.close()
        assert svc.stop() == 0  # an open event stream does not hold up the stop


def test_the_page_and_its_events_carry_the_health_line(tmp_path: Path) -> None:
    broken = {"id": "broken", "sql": "SELECT * FROM websocketDemo",
              "actions": [{"file": {"path": str(tmp_path / "missing" / "out.jsonl")}}]}
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        html = svc.request("GET", "/", headers={"Accept": "text/html"})[2]
        assert 'id="health"' in html and "renderHealth(snap.health)" in html  # the page shows it
        assert status(svc)["health"] == "ok"
        assert svc.request("POST", "/rules", broken, headers=AUTH)[0] == 201  # created, fails to start
        conn = http.client.HTTPConnection(svc.host, svc.port, timeout=10)
        conn.request("GET", "/status/events", headers=AUTH)
        response = conn.getresponse()
        line = ""
        while not line.startswith("data: "):  # bounded by the connection's timeout
            line = response.fp.readline().decode()
        conn.close()
        health = json.loads(line[6:])["health"]
        assert health.startswith("degraded: 1 rule failing (broken: ") and "missing" in health, health
        assert health == svc.request("GET", "/health", headers=AUTH)[2].strip()


def test_live_views_are_bounded(tmp_path: Path) -> None:
    with Service(write_etc(tmp_path, token=TOKEN)) as svc:
        held = []
        for _ in range(8):
            conn = http.client.HTTPConnection(svc.host, svc.port, timeout=10)
            conn.request("GET", "/status/events", headers=AUTH)
            response = conn.getresponse()  # kept: a dropped response closes its socket
            assert response.status == 200
            held.append((conn, response))
        code, _, text = svc.request("GET", "/status/events", headers=AUTH)
        assert code == 503 and "at most 8" in text
        assert svc.request("GET", "/ping", headers=AUTH)[0] == 200  # the REST API still answers
        for conn, response in held:
            response.close()
            conn.close()
        # A slot comes back once the server notices its client left (at its next event).
        assert wait_for(lambda: _events_ok(svc), 10)


def _events_ok(svc: Service) -> bool:
    probe = http.client.HTTPConnection(svc.host, svc.port, timeout=10)
    try:
        probe.request("GET", "/status/events", headers=AUTH)
        response = probe.getresponse()
        ok = response.status == 200
        response.close()
        return ok
    finally:
        probe.close()
