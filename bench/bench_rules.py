"""Records/s through a rule (WHERE + projection -> file action) against the raw subscription rate.

Run: ``python -m bench.bench_rules [--seconds 5] [--rounds 2]``.

Both sides receive the same stream: a client-mode ekws stream dials a
``bench.senders serve-push`` peer that writes small JSON records as fast as
the socket takes them (``overflow: block``, so the consumer sets the pace).
The raw case subscribes a callback that only counts; the rule case runs

    SELECT device, temperature, humidity * 1.0 AS h FROM b
    WHERE humidity > 50 AND status = 'ok'

(every record passes, so every one is projected and written) into a ``file``
action; with ``--functions`` the rule is a projection calling three functions:

    SELECT device, round(temperature, 1) AS t, upper(status) AS s,
           format_time(ts, 'yyyy-MM-dd HH:mm:ss') AS at FROM b

into the same ``file``
action; with ``--window`` the rule is eKuiper's per-device window

    SELECT deviceId, avg(temperature), max(temperature) FROM s
    GROUP BY deviceId, TUMBLINGWINDOW(ss, 1)

over records of 1,000 devices (the peer cycles through them; the window
computes incrementally: 1,000 groups of accumulators, no rows), one row per
device a second into the ``file`` action; its rate counts the records the
window took in (``op_2_window_0_records_in_total``), as its output is 1,000
rows a second whatever the input. Its runs use the standard-library JSON
(``EKWS_JSON=stdlib`` is set for them unless given) for raw and rule alike.
All of it in the same process, alternating raw and rule runs. The figure is the
rule's records/s divided by the raw rate measured in the same run; the target
is at least 0.5. Timings on a shared machine vary: compare ratios, not rates.
``EKWS_JSON=stdlib`` measures the standard-library JSON paths (decoding and
the file's lines) on a machine that has orjson.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if "--window" in sys.argv:  # before ekws is imported: its file action reads EKWS_JSON then
    os.environ.setdefault("EKWS_JSON", "stdlib")

import ekws  # noqa: E402
from bench.common import ROOT, write_etc  # noqa: E402
from ekws.rules.manager import RuleManager  # noqa: E402

SQL = "SELECT device, temperature, humidity * 1.0 AS h FROM b WHERE humidity > 50 AND status = 'ok'"
FUNCTIONS_SQL = ("SELECT device, round(temperature, 1) AS t, upper(status) AS s, "
                 "format_time(ts, 'yyyy-MM-dd HH:mm:ss') AS at FROM b")
WINDOW_SQL = ("SELECT deviceId, avg(temperature), max(temperature) FROM s "
              "GROUP BY deviceId, TUMBLINGWINDOW(ss, 1)")
DEVICES = 1000
WARMUP = 1.0


class Sender:
    """``python -m bench.senders serve-push``: a peer that pushes records until we hang up."""

    def __init__(self, devices: bool = False) -> None:
        command = [sys.executable, "-m", "bench.bench_rules", "serve-devices"] if devices else [
            sys.executable, "-m", "bench.senders", "serve-push", "--size", "small", "--max-seconds", "120"]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"sender did not start: {line!r}")
        self.port = int(dict(part.split("=", 1) for part in line.split()[1:])["port"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def serve_devices() -> int:
    """The ``--window`` peer: serve-push's loop over one chunk of the 1,000 devices' records."""
    from bench.common import frame
    from bench.senders import CHUNK_BYTES, serve_one

    frames = b"".join(frame(b'{"deviceId": "sensor-%04d", "temperature": %.1f, "humidity": 71, '
                            b'"status": "ok"}' % (n, 15 + n % 200 / 10)) for n in range(DEVICES))
    chunk = frames * max(1, CHUNK_BYTES // len(frames))
    sock = serve_one(argparse.Namespace(max_seconds=120.0))
    deadline = time.monotonic() + 120.0
    try:
        while time.monotonic() < deadline:
            sock.sendall(chunk)
    except OSError:
        pass  # the receiver hung up: the normal end
    sock.close()
    return 0


def measure(seconds: float, setup: Callable[[ekws.Runtime], Callable[[], int]], stream: str = "b",
            devices: bool = False) -> float:
    """Records/s over ``seconds`` after a warm-up, with a fresh sender and runtime."""
    sender = Sender(devices)
    try:
        with ekws.Runtime(config_dir=write_etc(sender.port)) as rt:
            rt.create_stream(f'CREATE STREAM {stream}() WITH (DATASOURCE="/", CONF_KEY="bench", '
                             'TYPE="websocket")')
            count = setup(rt)
            time.sleep(WARMUP)
            start_count, start = count(), time.perf_counter()
            time.sleep(seconds)
            end_count, end = count(), time.perf_counter()
            return (end_count - start_count) / (end - start)
    finally:
        sender.close()


def raw(stream: str = "b") -> Callable[[ekws.Runtime], Callable[[], int]]:
    def setup(rt: ekws.Runtime) -> Callable[[], int]:
        seen = [0]

        def on_message(msg: ekws.Message) -> None:
            seen[0] += 1
        rt.subscribe(stream, on_message)
        return lambda: seen[0]
    return setup


def rule(folder: str, sql: str = SQL, counter: str = "sink_file_0_0_records_out_total"
         ) -> Callable[[ekws.Runtime], Callable[[], int]]:
    def setup(rt: ekws.Runtime) -> Callable[[], int]:
        manager = RuleManager(rt)
        path = os.path.join(folder, f"out-{time.monotonic_ns()}.jsonl")
        manager.create({"id": "bench", "sql": sql, "actions": [{"file": {"path": path}}]})
        if not manager.is_running("bench"):
            raise RuntimeError(manager.status("bench")["message"])
        return lambda: int(manager.status("bench")[counter])
    return setup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_rules")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--functions", action="store_true",
                        help="the projection calling round, upper and format_time")
    parser.add_argument("--window", action="store_true",
                        help="avg and max per device over 1,000 devices, a tumbling window of 1 s")
    args = parser.parse_args(argv)
    sql = WINDOW_SQL if args.window else FUNCTIONS_SQL if args.functions else SQL
    stream = "s" if args.window else "b"
    counter = "op_2_window_0_records_in_total" if args.window else "sink_file_0_0_records_out_total"
    raw_rates: list[float] = []
    rule_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ekws-bench-rules-") as folder:
        for n in range(args.rounds):
            raw_rates.append(measure(args.seconds, raw(stream), stream, args.window))
            rule_rates.append(measure(args.seconds, rule(folder, sql, counter), stream, args.window))
            print(f"round {n + 1}: raw {raw_rates[-1]:,.0f} rec/s, rule {rule_rates[-1]:,.0f} rec/s",
                  flush=True)
        written = sum(p.stat().st_size for p in Path(folder).iterdir())
    raw_rate, rule_rate = statistics.median(raw_rates), statistics.median(rule_rates)
    ratio = rule_rate / raw_rate
    print(f"raw subscription: {raw_rate:,.0f} records/s (median of {args.rounds})")
    shape = ("avg + max per device, 1,000 devices, TUMBLINGWINDOW(ss, 1)" if args.window else
             "3-function projection" if args.functions else "WHERE + projection")
    print(f"rule ({shape} -> file): {rule_rate:,.0f} records/s; {written / 1e6:.1f} MB written")
    print(f"ratio: {ratio:.2f}x the raw rate (target >= 0.5x) "
          f"[json: {_json_used()}, Python {sys.version.split()[0]}]")
    return 0 if ratio >= 0.5 else 1


def _json_used() -> str:
    """What decoded the records: orjson when installed and EKWS_JSON is not ``stdlib``."""
    import ekws.actions.jsonout

    stdlib = os.environ.get("EKWS_JSON", "").lower() == "stdlib" or ekws.actions.jsonout.orjson is None
    return "stdlib" if stdlib else "orjson"


if __name__ == "__main__":
    if sys.argv[1:] == ["serve-devices"]:
        raise SystemExit(serve_devices())
    raise SystemExit(main())
