"""The shipped examples run as a user runs them: real subprocesses, real peers."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from helpers.service import Lines
from websockets.sync.client import connect
from websockets.sync.server import serve

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV, cwd=REPO)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_client_source_prints_what_a_websockets_server_sends():
    def handler(ws):
        ws.send(json.dumps({"temperature": 23.5}))
        ws.send(json.dumps([{"n": 1}, {"n": 2}]))
        ws.wait_closed() if hasattr(ws, "wait_closed") else ws.recv()

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port = server.socket.getsockname()[1]
        proc = start("examples/client_source.py", f"ws://127.0.0.1:{port}/api/data?x=1")
        try:
            out = Lines(proc.stdout)
            out.wait_for(r"\{'n': 2\}")
            text = "".join(out.lines)
            assert "{'temperature': 23.5}" in text and "[connected]" in text
        finally:
            stop(proc)
            server.shutdown()
            thread.join(10)


def test_server_source_prints_what_a_websockets_client_sends():
    # Port 0: the example prints the port it got (a port picked free beforehand can be taken meanwhile).
    proc = start("examples/server_source.py", "--ip", "127.0.0.1", "--port", "0", "--path", "/ingest")
    try:
        out = Lines(proc.stdout)
        port = int(out.wait_for(r"listening on ws://127.0.0.1:(\d+)/ingest").group(1))
        with connect(f"ws://127.0.0.1:{port}/ingest", open_timeout=5) as ws:
            ws.send(json.dumps({"humidity": 71}))
            out.wait_for(r"\{'humidity': 71\} from 127.0.0.1:\d+ connection 1")
    finally:
        stop(proc)


def test_server_source_on_a_busy_port_prints_the_same_clean_message_as_ekws_run(tmp_path):
    from helpers.service import write_etc

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        example = subprocess.run([sys.executable, "examples/server_source.py", "--ip", "127.0.0.1",
                                  "--port", str(port)], capture_output=True, text=True, env=ENV, cwd=REPO,
                                 timeout=30)
        run = subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(write_etc(tmp_path))],
                             capture_output=True, text=True, timeout=30,
                             env={**ENV, "WEBSOCKET__SOURCE__HTTPSERVERPORT": str(port)})
    assert example.returncode == run.returncode == 1
    assert "Traceback" not in example.stderr
    last = example.stderr.strip().splitlines()[-1]
    assert last.startswith("ekws: ") and f"127.0.0.1:{port}" in last and "in use" in last
    assert last == run.stderr.strip().splitlines()[-1]
