"""Soak: ``ekws run`` under churn; RSS, threads and open fds over time (issue 20).

    python bench/soak.py --short                 # 2 minutes: 30 s warm-up + 90 s
    python bench/soak.py --seconds 600           # warm-up + 10 minutes
    python bench/soak.py --short --env MALLOC_ARENA_MAX=2   # the service's environment
    python bench/soak.py --short --tracemalloc   # + the Python heap's growth, by line

One ``ekws run -c etc`` subprocess (fresh data dir, free ports) with two
streams and a ``log`` rule on each (stdout discarded):

* ``peers``, server mode on ``/api/data``: churning peers, each a new
  connection that sends ``--records`` records and leaves, ``--peers-per-s``
  of them a second (one in five drops TCP without a close frame);
* ``upstream``, client mode: dials a ``websockets`` server in this process
  that sends 200 records/s and is restarted every ``--restart-every`` seconds
  (down for 1 s), so the stream reconnects again and again;

and REST calls every 0.2 s (``GET /streams``, ``/rules``, a rule's status,
``/metrics``), plus a stream created and dropped every 5 s.

A line every ``--every`` seconds: RSS (VmRSS), threads, open fds, and the
work done. The verdict: RSS growth from the end of the warm-up to the end
(and its maximum), target < 2 MB. Nothing asserts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RECORD = json.dumps({"device": "soak", "temperature": 21.5, "humidity": 40, "seq": 0})
GROWTH_TARGET_MB = 2.0


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(RSS MB, threads, open fds) of ``pid``."""
    rss, threads = 0.0, 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.peers = self.records = self.rest = self.rest_errors = self.restarts = self.peer_errors = 0

    def add(self, **kwargs: int) -> None:
        with self.lock:
            for key, value in kwargs.items():
                setattr(self, key, getattr(self, key) + value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_etc(work: Path, upstream_port: int) -> Path:
    etc = work / "etc"
    (etc / "sources").mkdir(parents=True)
    (etc / "sources" / "websocket.yaml").write_text(
        "default:\n  addr: ''\n"
        f"upstream:\n  addr: 127.0.0.1:{upstream_port}\n"
        "  reconnect: {initialDelay: 0.2, maxDelay: 1, maxRetries: 0}\n"
        "source:\n  httpServerIp: 127.0.0.1\n  httpServerPort: 0\n"
    )
    streams = ['CREATE STREAM peers() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")',
               'CREATE STREAM upstream() WITH (DATASOURCE="/feed", CONF_KEY="upstream", FORMAT="json", '
               'TYPE="websocket")']
    rules = [{"id": "fromPeers", "sql": "SELECT * FROM peers", "actions": [{"log": {}}]},
             {"id": "fromUpstream", "sql": "SELECT * FROM upstream", "actions": [{"log": {}}]}]
    lines = ["restIp: 127.0.0.1", "restPort: 0", "logLevel: INFO", f"dataDir: {work / 'data'}", "streams:"]
    lines += [f"  - {json.dumps(sql)}" for sql in streams]
    lines.append("rules:")
    lines += [f"  - {json.dumps(rule)}" for rule in rules]
    (etc / "ekws.yaml").write_text("\n".join(lines) + "\n")
    return etc


def upstream(port: int, stop: threading.Event, every: float, counts: Counts) -> None:
    """A websockets server sending 200 records/s to whoever connects; restarted every ``every`` s."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        try:
            while not stop.is_set():
                ws.send(RECORD)
                time.sleep(0.005)
        except ConnectionClosed:
            pass

    while not stop.is_set():
        sock = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: the same port each time
        with serve(handler, sock=sock) as server:
            thread = threading.Thread(target=server.serve_forever, name="soak-upstream", daemon=True)
            thread.start()
            stop.wait(every)
            server.shutdown()
            thread.join(5)
        counts.add(restarts=1)
        stop.wait(1.0)


def churn(ws_url: str, stop: threading.Event, per_s: float, records: int, counts: Counts) -> None:
    """New peers, each sending ``records`` records, then leaving (one in five without a close)."""
    from websockets.sync.client import connect

    rng = random.Random(1)
    while not stop.is_set():
        started = time.monotonic()
        try:
            with connect(ws_url, open_timeout=5, close_timeout=2) as ws:
                for _ in range(records):
                    ws.send(RECORD)
                if rng.random() < 0.2:
                    ws.socket.shutdown(socket.SHUT_RDWR)  # TCP ends with no close frame
            counts.add(peers=1, records=records)
        except Exception:
            counts.add(peer_errors=1)
        stop.wait(max(0.0, 1.0 / per_s - (time.monotonic() - started)))


def rest(host: str, port: int, stop: threading.Event, counts: Counts) -> None:
    paths = ["/streams", "/rules", "/rules/fromPeers/status", "/metrics"]
    n = 0
    while not stop.is_set():
        calls: list[tuple[str, str, Any]] = [("GET", paths[n % len(paths)], None)]
        if n % 25 == 0:  # every 5 s: a stream created and dropped
            calls += [("POST", "/streams", {"sql": 'CREATE STREAM churn() WITH (DATASOURCE="/churn", '
                                                  'TYPE="websocket")'}),
                      ("DELETE", "/streams/churn", None)]
        for method, path, body in calls:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                counts.add(rest=1, rest_errors=int(response.status >= 400))
            except OSError:
                counts.add(rest=1, rest_errors=1)
            finally:
                conn.close()
        n += 1
        stop.wait(0.2)


# ``ekws run`` with tracemalloc on: SIGUSR1 writes a snapshot to <dir>/<name in <dir>/want>.
TRACED = """
import os, runpy, signal, sys, tracemalloc
tracemalloc.start(1)
folder = sys.argv.pop(1)
def dump(*_):
    name = open(os.path.join(folder, "want")).read().strip()
    tracemalloc.take_snapshot().dump(os.path.join(folder, name + ".tmp"))
    os.replace(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "ekws"
runpy.run_module("ekws", run_name="__main__")
"""


def heap_snapshot(pid: int, folder: Path, name: str) -> None:
    import signal

    folder.mkdir(exist_ok=True)
    (folder / "want").write_text(name)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not (folder / name).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def heap_report(folder: Path) -> None:
    import tracemalloc

    base = tracemalloc.Snapshot.load(str(folder / "base"))
    end = tracemalloc.Snapshot.load(str(folder / "end"))
    total = sum(s.size for s in end.statistics("filename")) - sum(s.size for s in base.statistics("filename"))
    print(f"\nPython heap (tracemalloc) growth after the warm-up: {total / 1024:+,.0f} KiB; largest by line:")
    for stat in end.compare_to(base, "lineno")[:8]:
        print(f"  {stat.size_diff / 1024:+8,.0f} KiB {stat.count_diff:+7,d} blocks  {stat.traceback[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="soak after the warm-up")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--short", action="store_true", help="30 s warm-up + 90 s (about 2 minutes)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--peers-per-s", type=float, default=5.0)
    parser.add_argument("--records", type=int, default=50, help="records per peer")
    parser.add_argument("--restart-every", type=float, default=10.0, help="upstream restart period, s")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace the service's Python heap; print its growth after the warm-up, by line")
    args = parser.parse_args()
    if args.short:
        args.seconds, args.warmup = 90.0, 30.0
    extra = dict(item.split("=", 1) for item in args.env)
    counts = Counts()
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="ekws-soak-") as tmp:
        work = Path(tmp)
        up_port = free_port()
        etc = write_etc(work, up_port)
        env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
        command = [sys.executable, "-m", "ekws", "run", "-c", str(etc)]
        if args.tracemalloc:
            command[1:3] = ["-c", TRACED, str(work / "heap")]
        proc = subprocess.Popen(command, env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            line = ""
            deadline = time.monotonic() + 30
            while "ready: REST API on http://" not in line:
                line = proc.stderr.readline()
                if not line or time.monotonic() > deadline:
                    raise SystemExit(f"ekws run did not get ready: {line!r}")
            log = open(work / "err.log", "w")  # noqa: SIM115 - the pump thread owns it
            threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, log), daemon=True).start()
            hostport = line.split("http://", 1)[1].split()[0].rstrip(",;/")
            host, port = hostport.rsplit(":", 1)
            ws_port = line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
            threads = [
                threading.Thread(target=upstream, args=(up_port, stop, args.restart_every, counts),
                                 daemon=True),
                threading.Thread(target=churn, args=(f"ws://127.0.0.1:{ws_port}/api/data", stop,
                                                     args.peers_per_s, args.records, counts), daemon=True),
                threading.Thread(target=rest, args=(host, int(port), stop, counts), daemon=True),
            ]
            for thread in threads:
                thread.start()
            extra_note = f", env {' '.join(args.env)}" if args.env else ""
            print(f"# ekws run soak: warm-up {args.warmup:g} s, then {args.seconds:g} s; "
                  f"{args.peers_per_s:g} peers/s x {args.records} records, upstream restart every "
                  f"{args.restart_every:g} s, REST every 0.2 s{extra_note}", flush=True)
            print("| t s | RSS MB | threads | fds | peers | records | REST calls (errors) "
                  "| upstream restarts |")
            print("|---|---|---|---|---|---|---|---|", flush=True)
            started = time.monotonic()
            base: float | None = None
            after: list[tuple[float, int, int]] = []
            next_at = 0.0
            while True:
                elapsed = time.monotonic() - started
                if elapsed >= next_at or elapsed >= args.warmup + args.seconds:
                    rss, nthreads, fds = proc_figures(proc.pid)
                    with counts.lock:
                        print(f"| {elapsed:.0f} | {rss:.1f} | {nthreads} | {fds} | {counts.peers} | "
                              f"{counts.records:,} | {counts.rest} ({counts.rest_errors}) | "
                              f"{counts.restarts} |", flush=True)
                    if elapsed >= args.warmup:
                        if base is None:
                            base = rss
                            if args.tracemalloc:
                                heap_snapshot(proc.pid, work / "heap", "base")
                        after.append((rss, nthreads, fds))
                    next_at += args.every
                    if elapsed >= args.warmup + args.seconds:
                        if args.tracemalloc:
                            heap_snapshot(proc.pid, work / "heap", "end")
                            heap_report(work / "heap")
                        break
                if proc.poll() is not None:
                    raise SystemExit(f"ekws run exited with {proc.returncode}")
                time.sleep(0.2)
        finally:
            stop.set()
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert base is not None
    end = after[-1][0]
    peak = max(r for r, _, _ in after)
    ok = end - base < GROWTH_TARGET_MB
    threads_seen = [t for _, t, _ in after]
    fds_seen = [f for _, _, f in after]
    print(f"\nRSS after warm-up {base:.1f} MB, at the end {end:.1f} MB: growth {end - base:+.1f} MB "
          f"(max {peak - base:+.1f} MB) over {args.seconds:g} s; target < {GROWTH_TARGET_MB:g} MB: "
          f"{'ok' if ok else 'MISS'}. Threads {min(threads_seen)}-{max(threads_seen)}, "
          f"fds {min(fds_seen)}-{max(fds_seen)}; peer errors {counts.peer_errors}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
