"""The status page in headless Chromium, driven over the DevTools protocol (with the `websockets` library).

The service runs in-process with the live and rules plugins
(the Service plugin API), a token set. Chromium opens
``http://host:port/#token=...``; the test reads the rendered DOM: the stream
row is there, its record count rises while a `websockets` client sends, the
rule and its broadcast action are listed, the token left the address bar.
Set ``EKWS_SCREENSHOT=path.png`` to keep a screenshot of the page.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.server import require_binary
from helpers.service import write_etc
from websockets.sync.client import ClientConnection, connect

from ekws.service.app import Service, load_settings
from ekws.service.http.live import LivePlugin
from ekws.service.http.rules import RulesPlugin

TOKEN = "page-token"
RULE = {"id": "hot", "sql": "SELECT seq, temperature FROM websocketDemo WHERE temperature > 20",
        "actions": [{"websocket": {"addr": "", "path": "/out"}}, {"log": {}}]}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,760"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    etc = write_etc(tmp_path, token=TOKEN, rules=[RULE])
    svc = Service(etc, load_settings(etc, environ={}), environ={}, out=None,
                  plugins=[LivePlugin(), RulesPlugin()])
    svc.start()
    try:
        yield svc
    finally:
        svc.shutdown()


class DevTools:
    """One page target of a headless Chromium, over its DevTools WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=10))
            if message.get("id") == call_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    chromium = require_binary("chromium")
    profile = tmp_path / "profile"
    log = open(tmp_path / "chromium.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "about:blank"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "chromium.log").read_text(errors="replace")[-1500:]
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], proxy=None, max_size=None, open_timeout=10) as ws:
            yield DevTools(ws)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=5)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def wait_value(tools: DevTools, expression: str, predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = tools.evaluate(expression)
        if predicate(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{expression} never matched; last value {value!r}")


RECORDS = "(document.querySelector('tr[data-stream=\"websocketDemo\"] td.records') || {}).textContent"


def test_the_page_shows_the_stream_and_its_count_rises_while_a_client_sends(
        service: Service, browser: DevTools) -> None:
    host, port = service.rest.address  # type: ignore[union-attr]
    address = service.runtime.server_address
    assert address is not None
    browser.call("Page.navigate", url=f"http://{host}:{port}/#token={TOKEN}")
    assert wait_value(browser, "document.getElementById('livetext').textContent", lambda v: v == "live")
    assert browser.evaluate("location.hash") == ""  # the token left the address bar
    assert wait_value(browser, RECORDS, lambda v: v == "0") == "0"
    row = browser.evaluate("document.querySelector('tr[data-stream=\"websocketDemo\"]').innerText")
    assert "server mode" in row and f"ws://127.0.0.1:{address[1]}/api/data" in row and "connected" in row

    stop = threading.Event()
    sent = [0]

    def send() -> None:
        with connect(f"ws://127.0.0.1:{address[1]}/api/data", proxy=None) as ws:
            while not stop.is_set():
                ws.send(json.dumps({"seq": sent[0], "temperature": 18 + sent[0] % 6}))
                sent[0] += 1
                time.sleep(0.005)

    sender = threading.Thread(target=send, name="test-sender")
    sender.start()
    try:
        first = int(wait_value(browser, RECORDS, lambda v: v and int(v.replace(",", "")) > 0)
                    .replace(",", ""))
        second = int(wait_value(browser, RECORDS, lambda v: int(v.replace(",", "")) > first)
                     .replace(",", ""))
        assert first < second <= sent[0]
        peers = browser.evaluate("document.querySelector('tr[data-stream=\"websocketDemo\"] td.peers')"
                                 ".textContent")
        assert peers == "1"
        rate = float(wait_value(browser, "document.querySelector('tr[data-stream=\"websocketDemo\"] td.rate')"
                                ".textContent", lambda v: v and float(v) > 0))
        assert rate > 0
        rules = wait_value(browser, "(document.querySelector('tr[data-rule=\"hot\"]') || {}).innerText",
                           lambda v: v and "websocket #0" in v and "running" in v)
        assert "log #1" in rules and "WHERE temperature > 20" in rules
        shot = os.environ.get("EKWS_SCREENSHOT")
        if shot:
            data = browser.call("Page.captureScreenshot", format="png")["data"]
            Path(shot).write_bytes(base64.b64decode(data))
    finally:
        stop.set()
        sender.join(10)


def test_the_page_shows_the_health_line(service: Service, browser: DevTools, tmp_path: Path) -> None:
    host, port = service.rest.address  # type: ignore[union-attr]
    browser.call("Page.navigate", url=f"http://{host}:{port}/#token={TOKEN}")
    health = "(document.getElementById('health') || {}).textContent"
    assert wait_value(browser, health, lambda v: v == "ok")
    assert browser.evaluate("document.getElementById('health').className") == "ok"
    missing = tmp_path / "missing" / "out.jsonl"  # a file action whose folder does not exist
    service.rules_plugin.create({"id": "broken", "sql": "SELECT * FROM websocketDemo",
                                 "actions": [{"file": {"path": str(missing)}}]})
    line = wait_value(browser, health, lambda v: v and v.startswith("degraded"))
    assert line == service.health() and line.startswith("degraded: 1 rule failing (broken: ")
    assert str(missing) in line
    assert browser.evaluate("document.getElementById('health').className") == "degraded"


def test_the_page_asks_for_the_token_when_it_has_none(service: Service, browser: DevTools) -> None:
    host, port = service.rest.address  # type: ignore[union-attr]
    browser.call("Page.navigate", url=f"http://{host}:{port}/")
    assert wait_value(browser, "getComputedStyle(document.getElementById('auth')).display",
                      lambda v: v == "block")
    browser.evaluate(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
                     "document.getElementById('authform').requestSubmit(); true")
    assert wait_value(browser, "document.getElementById('livetext').textContent", lambda v: v == "live")
    assert wait_value(browser, RECORDS, lambda v: v == "0")
