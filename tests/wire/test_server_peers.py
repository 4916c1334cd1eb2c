"""Server mode against peers ekws did not write: Node's ``ws`` and headless Chromium.

Each peer connects to a server-mode stream on 127.0.0.1, sends JSON messages
``{"client": id, "seq": n}`` and closes; the records must reach
``on_message`` in order. Chromium loads ``tests/browser/send.html`` from a tiny
HTTP server on port 0; the page reports its outcome with a ``GET /done`` that
the test waits for (no DevTools protocol, no timing guesses).

Without ``node``/``chromium`` these tests skip locally; under ``CI`` they fail.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.server import (
    BROWSER_DIR,
    INSTALL_HINT,
    NODE_DIR,
    require_binary,
    require_peer,
    server_stream,
    wait_until,
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


# ---------------------------------------------------------------- Node ws


def run_node(
    url: str, count: int, headers: dict[str, str] | None = None, client: str = "node"
) -> dict[str, Any]:
    """Run ``tests/node/send.js`` and return its JSON result line."""
    node = require_binary("node")
    require_peer((NODE_DIR / "node_modules" / "ws").is_dir(), f"npm ws is not installed ({INSTALL_HINT})")
    args = [node, str(NODE_DIR / "send.js"), url, str(count), json.dumps(headers or {}), client]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, f"send.js printed nothing (rc={done.returncode}, stderr={done.stderr!r})"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_node_ws_client_delivers_in_order(tmp_path: Path) -> None:
    with server_stream(tmp_path, datasource="/api/node") as (rt, _sub, got, url):
        result = run_node(url, 500, client="n1")
        assert result == {"sent": 500, "ok": True, "code": 1000}
        assert got.wait_for(500, timeout=15)
        assert got.data == [{"client": "n1", "seq": seq} for seq in range(500)]
        assert {msg.meta["stream"] for msg in got.messages} == {"demo"}
        assert len({msg.meta["connection"] for msg in got.messages}) == 1
        assert rt.status("demo")["records_in_total"] == 500


def test_node_ws_client_with_auth_token(tmp_path: Path) -> None:
    with server_stream(tmp_path, conf={"authToken": "s3cret"}) as (rt, _sub, got, url):
        refused = run_node(url, 3, headers={"Authorization": "Bearer wrong"})
        assert refused == {"sent": 0, "ok": False, "status": 401}
        accepted = run_node(url, 3, headers={"Authorization": "Bearer s3cret"}, client="n2")
        assert accepted["ok"] is True, accepted
        assert got.wait_for(3, timeout=10)
        assert got.data == [{"client": "n2", "seq": seq} for seq in range(3)]
        assert rt.status("demo")["records_in_total"] == 3


# ---------------------------------------------------------------- Chromium


@contextlib.contextmanager
def page_server() -> Iterator[tuple[str, threading.Event, list[dict[str, Any]]]]:
    """Serve tests/browser on 127.0.0.1:0; yield (origin, done event, results)."""
    done = threading.Event()
    results: list[dict[str, Any]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == "/done":
                text = urllib.parse.parse_qs(parts.query).get("result", ["{}"])[0]
                results.append(json.loads(text))
                done.set()
                self.send_response(204)
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass

    handler = functools.partial(Handler, directory=str(BROWSER_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="page-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", done, results
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def run_chromium_page(
    page_url: str, done: threading.Event, user_data_dir: Path, timeout: float = 30.0
) -> None:
    """Open ``page_url`` in headless Chromium until the page reports, then kill it.

    Chromium runs in its own session so its whole process group (zygote,
    renderers) is ended by the group id of the process we started.
    """
    chromium = require_binary("chromium")
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", page_url]
    log = user_data_dir.parent / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        reported = done.wait(timeout)
        exited = proc.poll()
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
    tail = log.read_text(errors="replace")[-1500:]
    assert reported, f"the page never reported (chromium exit={exited}); log tail:\n{tail}"


def browser_url(origin: str, ws_url: str, count: int, client: str) -> str:
    query = urllib.parse.urlencode({"url": ws_url, "count": count, "client": client})
    return f"{origin}/send.html?{query}"


def test_chromium_page_delivers_in_order(tmp_path: Path) -> None:
    require_binary("chromium")
    with page_server() as (origin, done, results):
        # The browser sends Origin: the page's origin; allow exactly that one.
        conf = {"allowedOrigins": [origin]}
        with server_stream(tmp_path, conf=conf, datasource="/api/browser") as (rt, _sub, got, url):
            run_chromium_page(browser_url(origin, url, 200, "c1"), done, tmp_path / "profile")
            assert results[0] == {"sent": 200, "opened": True, "ok": True, "code": 1000}
            assert got.wait_for(200, timeout=10)
            assert got.data == [{"client": "c1", "seq": seq, "agent": "chromium"} for seq in range(200)]
            assert got.messages[0].meta["datasource"] == "/api/browser"
            assert rt.status("demo")["connections_total"] == 1


def test_chromium_page_from_disallowed_origin_is_refused(tmp_path: Path) -> None:
    require_binary("chromium")
    with page_server() as (origin, done, results):
        conf = {"allowedOrigins": ["https://trusted.example"]}
        with server_stream(tmp_path, conf=conf) as (rt, _sub, got, url):
            run_chromium_page(browser_url(origin, url, 5, "c2"), done, tmp_path / "profile")
            # A refused upgrade surfaces in the browser as close code 1006.
            assert results[0]["opened"] is False
            assert results[0]["code"] == 1006
            assert rt.status("demo")["records_in_total"] == 0
            assert wait_until(lambda: rt.status("demo")["connections"] == 0)
            assert got.data == []


def test_peer_files_are_present() -> None:
    """The peer scripts ship with the repo (not only on a developer's machine)."""
    assert (NODE_DIR / "send.js").is_file()
    assert json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["ws"]
    assert (BROWSER_DIR / "send.html").is_file()
