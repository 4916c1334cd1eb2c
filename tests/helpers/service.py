"""`ekws run` as a real subprocess on free ports, and helpers to talk to it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from helpers import common

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
for _var in [
    v for v in ENV if v.startswith(("EKWS__", "WEBSOCKET__")) or v in ("NOTIFY_SOCKET", "EKWS_TOKEN")
]:
    del ENV[_var]

DEMO = 'CREATE STREAM websocketDemo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'
S2_SQL = 'CREATE STREAM s2() WITH (DATASOURCE="/s2")'
DEMO_RULE = {"id": "demoLog", "sql": "SELECT * FROM websocketDemo", "actions": [{"log": {}}]}


def log_rule(stream: str, rule_id: str | None = None) -> dict:
    """eKuiper's first rule: every record of ``stream`` to the log action (stdout in ekws run)."""
    return {"id": rule_id or f"{stream}Log", "sql": f"SELECT * FROM {stream}", "actions": [{"log": {}}]}


class Lines:
    """Collects a pipe's lines in a thread so reads can time out."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.thread.start()

    def _pump(self, pipe):
        for line in pipe:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=10.0):
        regex = re.compile(pattern)
        with self.cond:
            ok = self.cond.wait_for(lambda: any(regex.search(x) for x in self.lines), timeout)
            assert ok, f"no line matching {pattern!r} in {self.lines!r}"
            return next(regex.search(x) for x in self.lines if regex.search(x))

    def wait_count(self, count, timeout=10.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.lines) >= count, timeout)
            assert ok, f"{len(self.lines)} lines, expected {count}"
            return list(self.lines)

    @property
    def text(self) -> str:
        with self.cond:
            return "".join(self.lines)


def write_etc(base: Path, *, streams=(DEMO,), rules=None, token=None, websocket_yaml=None) -> Path:
    """A config dir; ``rules`` None means a log rule on the demo stream when it is declared."""
    if rules is None:
        rules = [DEMO_RULE] if DEMO in streams else []
    sources = websocket_yaml or (
        "default:\n  addr: ''\nremote:\n  addr: 127.0.0.1:1\n"
        "source:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n"
    )
    lines = ["restIp: 127.0.0.1", "restPort: 0", "logLevel: INFO", f"dataDir: {base / 'data'}"]
    if token:
        lines.append(f"authToken: {token}")
    lines.append("streams:" + ("" if streams else " []"))
    lines += [f"  - {json.dumps(sql)}" for sql in streams]
    lines.append("rules:" + ("" if rules else " []"))
    lines += [f"  - {json.dumps(rule)}" for rule in rules]
    return common.write_etc(base, sources, "\n".join(lines) + "\n")


class Service:
    """A running `ekws run -c etc`; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, etc: Path, *, env=None, args=()):
        self.etc = etc
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ekws", "run", "-c", str(etc), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, **(env or {})},
            cwd=etc.parent,
        )
        self.out, self.err = Lines(self.proc.stdout), Lines(self.proc.stderr)
        try:
            ready = self.err.wait_for(r"ready: REST API on http://([\d.]+):(\d+)", timeout=15)
        except AssertionError:
            self.kill()
            raise
        self.host, self.port = ready.group(1), int(ready.group(2))
        ws = re.search(r"ws://[\d.]+:(\d+)/", ready.string)
        self.ws_port = int(ws.group(1)) if ws else None

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            text = response.read().decode()
            return response.status, response.getheader("Content-Type") or "", text
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, _, text = self.request(method, path, body, headers)
        return status, json.loads(text) if text else None

    def cli(self, *args, env=None, token=None):
        extra = ["--token", token] if token else []
        return subprocess.run(
            [sys.executable, "-m", "ekws", "--port", str(self.port), *extra, *args],
            capture_output=True,
            text=True,
            env={**ENV, **(env or {})},
            timeout=30,
        )

    def stop(self, sig=signal.SIGTERM, timeout=10.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
