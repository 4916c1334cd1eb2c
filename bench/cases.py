"""The benchmark cases: each starts sender and receiver processes and collects figures.

Every receiver run is a fresh ``python -m bench.receivers`` process and every
sender a ``python -m bench.senders`` process (see those modules). Throughput
runs are interleaved (run 1 of every receiver, then run 2, ...) so that a noisy
moment on this shared machine hurts all receivers alike; ratios are taken
between medians measured in the same invocation.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.common import Child, median, rss_kb, threads, write_etc

Log = Callable[[str], None]


@dataclass(frozen=True)
class Params:
    """How long and how often to measure (full run vs ``--quick`` smoke run)."""

    seconds: float = 1.0  # throughput: counting time per run
    runs: int = 3  # throughput: runs per receiver (median)
    # throughput with many connections: 50 reader threads take longer than 1 s to reach
    # their steady state (peak RSS plateaus after ~1.5 s), so count a little longer
    multi_seconds: float = 2.0
    latency_rate: float = 1000.0
    latency_seconds: float = 2.0
    latency_runs: int = 3  # p50 at 1 kHz moves by tens of microseconds between runs
    many_clients: int = 1000
    many_seconds: int = 20
    many_settle: float = 1.0  # peers connected and idle before sending: RSS and threads sampled then
    footprint_runs: int = 3
    startup_runs: int = 5
    fanin_clients: int = 200
    fanin_records: int = 1000
    service_runs: int = 3


QUICK = Params(
    seconds=0.15,
    multi_seconds=0.15,
    runs=1,
    latency_seconds=0.3,
    latency_runs=1,
    many_clients=50,
    many_seconds=2,
    many_settle=0.3,
    footprint_runs=1,
    startup_runs=1,
    fanin_clients=20,
    fanin_records=100,
    service_runs=1,
)


@dataclass(frozen=True)
class Receiver:
    label: str
    kind: str  # ekws | naive | websockets | aiohttp | picows | ceiling | ceiling-mem (bench/receivers.py)
    env: tuple[tuple[str, str], ...] = ()

    @property
    def is_ekws(self) -> bool:
        return self.kind == "ekws"

    @property
    def is_inline(self) -> bool:
        return INLINE in self.env


HAVE_ORJSON = importlib.util.find_spec("orjson") is not None
EKWS_STDLIB = Receiver("ekws [stdlib json]", "ekws", (("EKWS_JSON", "stdlib"),))
EKWS_ORJSON = Receiver("ekws [orjson] (default)", "ekws", (("EKWS_JSON", "orjson"),))
EKWS_DEFAULT = EKWS_ORJSON if HAVE_ORJSON else Receiver("ekws [stdlib json] (default)", "ekws")
INLINE = ("EKWS_BENCH_DELIVERY", "inline")  # the subscription's delivery option (bench/receivers.py)
EKWS_INLINE_STDLIB = Receiver("ekws inline [stdlib json]", "ekws", (("EKWS_JSON", "stdlib"), INLINE))
EKWS_INLINE_ORJSON = Receiver("ekws inline [orjson]", "ekws", (("EKWS_JSON", "orjson"), INLINE))
NAIVE = {"client": "websocket-client recv+json.loads (naive)", "server": "werkzeug+simple-websocket (naive)"}
WEBSOCKETS = {"client": "websockets sync client", "server": "websockets sync server"}
AIOHTTP = {"client": "aiohttp client", "server": "aiohttp server"}
PICOWS = {"client": "picows client (Cython)", "server": "picows server (Cython)"}
CEILING = "pure-Python parser+json.loads, socket"
CEILING_MEM = "pure-Python parser+json.loads, in memory (ceiling)"
HAVE_AIOHTTP = importlib.util.find_spec("aiohttp") is not None
HAVE_PICOWS = importlib.util.find_spec("picows") is not None


def ekws_receivers() -> list[Receiver]:
    if HAVE_ORJSON:
        return [EKWS_STDLIB, EKWS_ORJSON, EKWS_INLINE_STDLIB, EKWS_INLINE_ORJSON]
    return [EKWS_STDLIB, EKWS_INLINE_STDLIB]


def receivers(mode: str, clients: int = 1) -> list[Receiver]:
    """ekws rows and baselines (aiohttp and picows when installed: the ``bench`` extra);
    no ceilings with several clients (they read one socket)."""
    rows = [*ekws_receivers(), Receiver(NAIVE[mode], "naive"), Receiver(WEBSOCKETS[mode], "websockets")]
    if HAVE_AIOHTTP:
        rows.append(Receiver(AIOHTTP[mode], "aiohttp"))
    if HAVE_PICOWS:
        rows.append(Receiver(PICOWS[mode], "picows"))
    if clients == 1:
        rows += [Receiver(CEILING, "ceiling"), Receiver(CEILING_MEM, "ceiling-mem")]
    return picked(rows)


def picked(rows: list[Receiver]) -> list[Receiver]:
    """Only the rows whose label contains one of ``$BENCH_RECEIVERS`` (comma-separated), if set."""
    wanted = [w.strip() for w in os.environ.get("BENCH_RECEIVERS", "").split(",") if w.strip()]
    return [r for r in rows if any(w in r.label for w in wanted)] if wanted else rows


@dataclass
class Row:
    """One receiver's figures in one case; ``runs`` holds every RESULT line."""

    receiver: Receiver
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def values(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.runs if key in r]

    def med(self, key: str) -> float:
        return median(self.values(key))


def _try(row: Row, log: Log, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    if row.error:
        return None
    try:
        res = fn()
    except Exception as exc:  # a broken receiver is reported in the table, not fatal
        lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
        row.error = lines[-1][:160]  # a child's traceback ends with the exception
        log(f"  {what}: {row.receiver.label}: ERROR\n    " + "\n    ".join(lines))
        return None
    row.runs.append(res)
    return res


def _pair(
    mode: str, sender_args: list[str], receiver: Receiver, receiver_args: list[str], timeout: float
) -> dict[str, Any]:
    """Start sender and receiver in the right order for ``mode``; return the receiver's RESULT."""
    env = dict(receiver.env)
    if receiver.kind == "ceiling-mem":  # no socket, no sender
        with Child("receivers", [receiver.kind, "--mode", mode, *receiver_args], env=env) as rcv:
            return rcv.wait_result(timeout)
    if mode == "client":
        with Child("senders", sender_args) as snd:
            port = snd.wait_ready()["port"]
            args = [receiver.kind, "--mode", "client", "--port", port, *receiver_args]
            with Child("receivers", args, env=env) as rcv:
                return rcv.wait_result(timeout)
    with Child("receivers", [receiver.kind, "--mode", "server", *receiver_args], env=env) as rcv:
        port = rcv.wait_ready()["port"]
        with Child("senders", [*sender_args, "--port", port]):
            return rcv.wait_result(timeout)


# -- throughput ---------------------------------------------------------------


def throughput(name: str, mode: str, size: str, params: Params, log: Log, clients: int = 1) -> list[Row]:
    """Throughput runs; ``clients`` > 1 (server mode) has one sender process dial that many
    connections and push on all of them, counted for ``params.multi_seconds``."""
    rows = [Row(r) for r in receivers(mode, clients)]
    if clients > 1:
        sender = ["dial-push-many", "--clients", str(clients), "--size", size]
    else:
        sender = ["serve-push" if mode == "client" else "dial-push", "--size", size]
    secs = params.seconds if clients == 1 else params.multi_seconds
    timeout = secs + 40
    for run in range(params.runs):
        for row in rows:
            args = ["--task", "throughput", "--seconds", str(secs), "--timeout", str(timeout - 10)]
            args += ["--clients", str(clients), "--size", size]
            res = _try(row, log, name, partial(_pair, mode, sender, row.receiver, args, timeout))
            if res is not None:
                cpu = res.get("cpu_us_per_msg")
                log(f"  {name} run {run + 1}/{params.runs}: {row.receiver.label}: {res['rate']:,.0f} msg/s"
                    + (f", {cpu:.2f} us CPU/msg, {res['cores']:.2f} cores, switches voluntary "
                       f"{res['vcsw']:,} involuntary {res['ivcsw']:,}" if cpu else ""))
    return rows


# -- latency ------------------------------------------------------------------


def latency(name: str, mode: str, params: Params, log: Log) -> list[Row]:
    rows = [Row(r) for r in receivers(mode) if r.kind != "ceiling-mem"]
    count = int(params.latency_rate * params.latency_seconds)
    rate = str(params.latency_rate)
    sender = ["serve-paced" if mode == "client" else "dial-paced", "--count", str(count), "--rate", rate]
    timeout = params.latency_seconds + 40
    args = [
        "--task",
        "latency",
        "--count",
        str(count),
        "--skip",
        str(count // 10),
        "--timeout",
        str(timeout - 10),
    ]
    for run in range(params.latency_runs):
        for row in rows:
            res = _try(row, log, name, partial(_pair, mode, sender, row.receiver, args, timeout))
            if res is not None:
                log(
                    f"  {name} run {run + 1}/{params.latency_runs}: {row.receiver.label}:"
                    f" p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms"
                )
    return rows


# -- many connections (server mode) -------------------------------------------


class Sampler:
    """Samples a process's RSS and thread count every 0.2 s in a background thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid = pid
        self.every = every
        self.rss_max = 0
        self.threads_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.rss_max = max(self.rss_max, rss_kb(self.pid))
            self.threads_max = max(self.threads_max, threads(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def many(name: str, params: Params, log: Log) -> list[Row]:
    rows = [Row(EKWS_DEFAULT), Row(Receiver(NAIVE["server"], "naive"))]
    n, secs = params.many_clients, params.many_seconds
    for row in rows:

        def once(row: Row = row) -> dict[str, Any]:
            args = [row.receiver.kind, "--mode", "server", "--task", "lag", "--count", str(n * secs)]
            with Child("receivers", [*args, "--timeout", str(secs + 30)], env=dict(row.receiver.env)) as rcv:
                port = rcv.wait_ready()["port"]
                time.sleep(0.3)
                idle = rss_kb(rcv.pid)
                sender = ["dial-many", "--clients", str(n), "--seconds", str(secs), "--port", port]
                with Child("senders", [*sender, "--settle", str(params.many_settle)]) as snd:
                    snd.wait_ready(timeout=120)  # every peer connected, none sending yet
                    time.sleep(params.many_settle * 0.7)
                    connected, connected_threads = rss_kb(rcv.pid), threads(rcv.pid)
                    sampler = Sampler(rcv.pid)
                    try:
                        res = rcv.wait_result(timeout=secs + 40)
                    finally:
                        sampler.stop()
            res.update(
                idle_rss_kb=idle,
                connected_rss_kb=connected,
                run_rss_kb=max(sampler.rss_max, connected),
                connected_threads=connected_threads,
                run_threads=max(sampler.threads_max, connected_threads),
                clients=n,
            )
            return res

        res = _try(row, log, name, once)
        if res is not None:
            per_conn = (res["run_rss_kb"] - res["idle_rss_kb"]) / n
            log(f"  {name}: {row.receiver.label}: {per_conn:.0f} KB/conn, lag p99 {res['p99_ms']:.2f} ms")
    return rows


# -- fan-in memory (server mode) ----------------------------------------------


def fanin(name: str, params: Params, log: Log) -> list[Row]:
    """``fanin_clients`` peers each write ``fanin_records`` 120 B records as fast as TCP takes them."""
    rows = [Row(r) for r in ekws_receivers()]
    rows += [Row(Receiver(WEBSOCKETS["server"], "websockets"))]
    if HAVE_AIOHTTP:
        rows.append(Row(Receiver(AIOHTTP["server"], "aiohttp")))
    n, records = params.fanin_clients, params.fanin_records
    for row in rows:

        def once(row: Row = row) -> dict[str, Any]:
            args = [row.receiver.kind, "--mode", "server", "--task", "tally", "--count", str(n * records)]
            with Child("receivers", [*args, "--timeout", "90"], env=dict(row.receiver.env)) as rcv:
                port = rcv.wait_ready()["port"]
                time.sleep(0.3)
                idle = rss_kb(rcv.pid)
                sender = ["dial-burst", "--clients", str(n), "--count", str(records), "--port", port]
                with Child("senders", [*sender, "--settle", "0.5"]) as snd:
                    snd.wait_ready(timeout=120)  # every peer connected, none sending yet
                    time.sleep(0.35)
                    connected = rss_kb(rcv.pid)
                    sampler = Sampler(rcv.pid, every=0.02)
                    try:
                        res = rcv.wait_result(timeout=100)
                    finally:
                        sampler.stop()
            res.update(idle_rss_kb=idle, connected_rss_kb=connected, sampled_peak_kb=sampler.rss_max,
                       clients=n, records=records)
            return res

        res = _try(row, log, name, once)
        if res is not None:
            growth = (max(res["rss_peak_kb"], res["sampled_peak_kb"]) - res["connected_rss_kb"]) / 1024
            log(f"  {name}: {row.receiver.label}: +{growth:.1f} MB over connected-idle")
    return rows


def service(name: str, params: Params, log: Log) -> list[Row]:
    """``ekws run`` on the shipped config: idle RSS and exec -> READY=1 (bench/bench_service.py)."""
    import shutil
    import tempfile
    from pathlib import Path

    from bench import bench_service

    row = Row(Receiver("ekws run -c etc (shipped config)", "service"))
    with tempfile.TemporaryDirectory(prefix="ekws-bench-") as tmp:
        work = Path(tmp)
        shutil.copytree(bench_service.REPO / "etc", work / "etc")
        for _ in range(params.service_runs):

            def once() -> dict[str, Any]:
                ready_s, rss = bench_service.service_run(work)
                return {"ready_s": ready_s, "rss_mb": rss}

            res = _try(row, log, name, once)
            if res is not None:
                log(f"  {name}: {res['rss_mb']:.1f} MB idle, READY=1 after {res['ready_s']:.3f} s")
    return [row]


# -- footprint and startup ----------------------------------------------------


def footprint(name: str, params: Params, log: Log) -> list[Row]:
    rows = [
        Row(Receiver("python interpreter alone", "rss-bare")),
        Row(Receiver("websocket-client + werkzeug/simple-websocket (naive)", "rss-naive")),
        Row(EKWS_DEFAULT),
    ]
    for _ in range(params.footprint_runs):
        for row in rows:

            def once(row: Row = row) -> dict[str, Any]:
                with Child("senders", ["serve-idle"]) as idle:
                    port = idle.wait_ready()["port"]
                    kind = "rss-ekws" if row.receiver.is_ekws else row.receiver.kind
                    args = [kind, "--port", port, "--etc", write_etc(int(port))]
                    with Child("footprint", args, env=dict(row.receiver.env)) as probe:
                        return probe.wait_result(30)

            res = _try(row, log, name, once)
            if res is not None:
                log(f"  {name}: {row.receiver.label}: {res['rss_kb'] / 1024:.1f} MB")
    return rows


def startup(name: str, params: Params, log: Log) -> list[Row]:
    rows = [Row(Receiver("werkzeug + simple-websocket (naive)", "startup-naive")), Row(EKWS_DEFAULT)]
    for _ in range(params.startup_runs):
        for row in rows:

            def once(row: Row = row) -> dict[str, Any]:
                kind = "startup-ekws" if row.receiver.is_ekws else row.receiver.kind
                with Child("footprint", [kind, "--etc", write_etc()], env=dict(row.receiver.env)) as probe:
                    return probe.wait_result(30)

            res = _try(row, log, name, once)
            if res is not None:
                log(f"  {name}: {row.receiver.label}: {res['seconds'] * 1000:.0f} ms")
    return rows


def python_version() -> str:
    return sys.version.split()[0]
