"""`ekws run` as a user runs it: a real subprocess, a real client, SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ekws.cli import main
from service_proc import Lines

REPO = Path(__file__).resolve().parent.parent


def write_etc(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "sources").mkdir(parents=True)
    (etc / "sources" / "websocket.yaml").write_text(
        "default:\n  addr: ''\nsource:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n")
    (etc / "ekws.yaml").write_text(
        "logLevel: INFO\nstreams:\n"
        "  - CREATE STREAM websocketDemo() WITH "
        "(DATASOURCE=\"/api/data\", FORMAT=\"json\", TYPE=\"websocket\")\n")
    return etc


def test_run_serves_the_configured_stream_prints_records_and_stops_on_sigterm(tmp_path):
    etc = write_etc(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "ekws.cli", "run", "-c", str(etc)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        port = int(err.wait_for(r"listen on [\d.]+:(\d+)").group(1))
        with connect(f"ws://127.0.0.1:{port}/api/data", open_timeout=5) as ws:
            ws.send(json.dumps({"temperature": 23.5}))
            ws.send(json.dumps([{"n": 1}, {"n": 2}]))
            out.wait_for(r'"n": 2')
            records = [json.loads(line) for line in out.lines]
            assert [r["data"] for r in records] == [{"temperature": 23.5}, {"n": 1}, {"n": 2}]
            assert records[0]["meta"]["stream"] == "websocketDemo"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_run_reports_a_bad_config_and_exits_2(tmp_path, capsys):
    etc = tmp_path / "etc"
    (etc / "sources").mkdir(parents=True)
    (etc / "sources" / "websocket.yaml").write_text("default:\n  addr: nothost\n")
    assert main(["run", "-c", str(etc)]) == 2
    err = capsys.readouterr().err
    assert "websocket.yaml" in err and "addr" in err
