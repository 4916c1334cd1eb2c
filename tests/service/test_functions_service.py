"""Python functions declared in ``ekws.yaml`` (``functions: {name: pkg.mod:fn}``), used by a rule
created over REST in a real ``ekws run`` subprocess; a bad entry stops the start naming it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from helpers.service import ENV, Service, write_etc
from websockets.sync.client import connect

DEMO_STREAM = 'CREATE STREAM demo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'


def _etc_with_functions(tmp_path, entries):
    (tmp_path / "myconv.py").write_text(
        "def c_to_f(celsius):\n    return None if celsius is None else celsius * 9 / 5 + 32\n")
    etc = write_etc(tmp_path, streams=(DEMO_STREAM,), rules=[])
    with open(etc / "ekws.yaml", "a") as fh:
        fh.write("functions:\n" + "".join(f"  {name}: {target}\n" for name, target in entries.items()))
    env = {"PYTHONPATH": os.pathsep.join([ENV["PYTHONPATH"], str(tmp_path)])}
    return etc, env


def _lines(path, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            if len(lines) >= count:
                return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} lines")


def _ws_url(svc, path):
    """The shared server's URL for ``path``, as /status reports it (port 0: known once serving)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code, body = svc.json("GET", "/status")
        streams = body.get("streams", ()) if code == 200 else ()
        urls = [s["url"] for s in streams
                if s.get("url", "").endswith(path) and not re.search(r":0/", s["url"])]
        if urls:
            return urls[0]
        time.sleep(0.02)
    raise AssertionError(svc.err.text)


def test_a_declared_function_serves_a_rule_created_over_rest(tmp_path):
    etc, env = _etc_with_functions(tmp_path, {"c_to_f": "myconv:c_to_f"})
    out = tmp_path / "out.jsonl"
    with Service(etc, env=env) as svc:
        rule = {"id": "f", "sql": "SELECT round(c_to_f(t), 1) AS f FROM demo WHERE c_to_f(t) > 50",
                "actions": [{"file": {"path": str(out)}}]}
        assert svc.request("POST", "/rules", rule)[0] == 201
        status, body = svc.json("POST", "/rules", {"id": "g", "sql": "SELECT c_to_f(a, b) FROM demo",
                                                   "actions": [{"log": {}}]})
        assert status == 400 and "c_to_f: Expect 1 arguments but found 2." in body["message"]
        with connect(_ws_url(svc, "/api/data"), open_timeout=5) as ws:
            for t in (0, 100, 21.3):
                ws.send(json.dumps({"t": t}))
            assert _lines(out, 2) == [[{"f": 212.0}], [{"f": 70.3}]]  # eKuiper's default: an array a line
        assert svc.stop() == 0


def test_a_function_that_does_not_load_stops_the_start_naming_the_entry(tmp_path):
    etc, env = _etc_with_functions(tmp_path, {"nope": "myconv:missing"})
    proc = subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(etc)], capture_output=True,
                          text=True, env={**ENV, **env}, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "functions.nope" in proc.stderr and "cannot load 'myconv:missing'" in proc.stderr
