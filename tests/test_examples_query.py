"""examples/window_average.py runs as a user runs it: a subprocess fed by a real WebSocket client."""

import json
import time

from helpers.service import Lines
from test_examples import start, stop
from websockets.sync.client import connect


def test_window_average_prints_each_devices_average_at_the_windows_end():
    proc = start("examples/window_average.py", "--ip", "127.0.0.1", "--port", "0", "--window", "1")
    try:
        out = Lines(proc.stdout)
        port = int(out.wait_for(r"listening on ws://127.0.0.1:(\d+)/api/data").group(1))
        with connect(f"ws://127.0.0.1:{port}/api/data", open_timeout=5) as ws:
            if time.time() % 1 > 0.5:  # early in a second: the four records share one window
                time.sleep(1 - time.time() % 1 + 0.01)
            for device, temperature in [("d1", 20), ("d2", 30.5), ("d1", 25), ("d1", 27)]:
                ws.send(json.dumps({"deviceId": device, "temperature": temperature}))
            out.wait_for(r'"deviceId": "d2"')
        rows = [json.loads(line) for line in out.lines if line.startswith("{")]
        assert [{k: v for k, v in row.items() if not k.startswith("window_")} for row in rows] == [
            {"deviceId": "d1", "n": 3, "avg_temp": 24.0, "max_temp": 27},
            {"deviceId": "d2", "n": 1, "avg_temp": 30.5, "max_temp": 30.5}]
        assert all(row["window_end"] - row["window_start"] == 1000 and row["window_end"] % 1000 == 0
                   for row in rows)
    finally:
        stop(proc)
