"""Footprint of the service: RSS of an idle ``ekws run`` and exec -> READY=1 time.

    python bench/bench_service.py [--runs 5]

``ekws run -c etc`` runs on a copy of the shipped ``etc/`` (the demo stream,
server mode) with free ports and a fresh data dir. Readiness is read the way
systemd reads it: a unix datagram socket passed as ``$NOTIFY_SOCKET`` gets
READY=1 once the REST API and every stream are up. Baselines from the same
run: a bare interpreter (``python -c pass``; RSS of ``python -c`` idling) and
``python -c "import ekws"``. Medians over ``--runs``; nothing asserts, a missed
target reads MISS. Targets: RSS <= 35 MB, exec -> READY=1 <= 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
RSS_TARGET_MB, READY_TARGET_S = 35.0, 0.5


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def exec_time(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True)
    return time.perf_counter() - start


def bare_rss() -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, env=ENV
    )
    time.sleep(0.5)
    value = rss_mb(proc.pid)
    proc.communicate(b"")
    return value


def service_run(work: Path) -> tuple[float, float]:
    """One `ekws run`: (seconds from exec to READY=1, RSS in MB after 1 s idle)."""
    etc = work / "etc"
    shutil.rmtree(work / "data", ignore_errors=True)
    notify_path = str(work / "notify.sock")
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(20)
        env = {
            **ENV,
            "NOTIFY_SOCKET": notify_path,
            "EKWS__RESTPORT": "0",
            "EKWS__DATADIR": str(work / "data"),
            "WEBSOCKET__SOURCE__HTTPSERVERPORT": "0",
            "WEBSOCKET__SOURCE__HTTPSERVERIP": "127.0.0.1",
        }
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ekws", "run", "-c", str(etc)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while b"READY=1" not in notify.recv(4096).split(b"\n"):
                pass
            ready = time.perf_counter() - start
            time.sleep(1.0)
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)
    return ready, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ekws-bench-") as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "etc", work / "etc")
        runs = [service_run(work) for _ in range(args.runs)]
        bare_exec = statistics.median(exec_time("pass") for _ in range(args.runs))
        import_exec = statistics.median(exec_time("import ekws") for _ in range(args.runs))
        bare = statistics.median(bare_rss() for _ in range(3))
    ready = statistics.median(r for r, _ in runs)
    rss = statistics.median(m for _, m in runs)
    rows = [
        (
            "exec -> READY=1 (s)",
            f"{ready:.3f}",
            f"<= {READY_TARGET_S}",
            ready <= READY_TARGET_S,
            f"{ready / bare_exec:.1f}x `python -c pass` ({bare_exec:.3f} s), "
            f"{ready / import_exec:.1f}x `import ekws` ({import_exec:.3f} s)",
        ),
        (
            "RSS idle (MB)",
            f"{rss:.1f}",
            f"<= {RSS_TARGET_MB:.0f}",
            rss <= RSS_TARGET_MB,
            f"{rss / bare:.1f}x a bare interpreter ({bare:.1f} MB)",
        ),
    ]
    print(f"ekws run -c etc (shipped config), Python {sys.version.split()[0]}, median of {args.runs} runs")
    print("| measure | ekws | target | | baseline |")
    print("|---|---|---|---|---|")
    for name, value, target, ok, baseline in rows:
        print(f"| {name} | {value} | {target} | {'ok' if ok else 'MISS'} | {baseline} |")


if __name__ == "__main__":
    main()
