"""Run the ekws benchmark suite and write a markdown table of figures and ratios.

    python bench/run.py              # full suite, a few minutes on 2 cores
    python bench/run.py --quick      # smoke run: every case, tiny durations
    python bench/run.py --only client-120B,latency   # names or name prefixes
    python -m bench --readme         # also paste the table into bench/README.md

The table goes to stdout and bench/results/latest.md (raw figures in
latest.json); progress goes to stderr. Absolute figures drift on a shared
machine; the ratios, measured side by side in one run, are what to read.
Nothing here asserts: a missed target is a row marked "MISS".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cases  # noqa: E402
from bench.cases import Params, Row  # noqa: E402
from bench.common import ROOT, payload  # noqa: E402

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
MARK_START, MARK_END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"

THROUGHPUT = {  # name: (mode, size, concurrent client connections)
    "client-120B": ("client", "small", 1),
    "client-16KiB": ("client", "large", 1),
    "server-120B": ("server", "small", 1),
    "server-16KiB": ("server", "large", 1),
    "server-120B-50clients": ("server", "small", 50),
}
LATENCY = {"latency-client": "client", "latency-server": "server"}
CASE_NAMES = [*THROUGHPUT, *LATENCY, "many-connections", "fan-in", "footprint", "startup", "service"]

# Throughput targets: case -> [(baseline kind, minimum ratio, label)]. The strongest
# peers first: aiohttp (asyncio, C frame reader) and the in-memory pure-Python ceiling.
THROUGHPUT_TARGETS: dict[str, list[tuple[str, float, str]]] = {
    "client-120B": [("aiohttp", 1.0, "target"), ("ceiling-mem", 0.8, "target"), ("websockets", 1.0, "target"),
                    ("naive", 3.5, "target")],
    "client-16KiB": [("websockets", 1.0, "target"), ("naive", 10.0, "target")],
    "server-120B": [("aiohttp", 1.0, "target"), ("websockets", 0.6, "target"), ("naive", 1.0, "target")],
    "server-16KiB": [("websockets", 1.0, "target"), ("naive", 1.0, "target")],
    # server-120B-50clients: no ratio target in the issue; figures for comparison (RSS check only)
}
# Issue 20: inline delivery (one thread, as picows) against picows, queued against aiohttp,
# by msg/s and by CPU per message (the receiver's CPU time over the measured records,
# which holds when another process takes the core away: bench/README.md).
INLINE_TARGETS: dict[str, list[tuple[str, float, str]]] = {"server-120B": [("picows", 1.0, "target")]}
CPU_TARGETS: dict[str, tuple[str, str]] = {"server-120B": ("aiohttp", "picows")}  # (queued, inline)
RATIO_COLUMNS = {"naive": "x naive", "websockets": "x websockets", "aiohttp": "x aiohttp",
                 "picows": "x picows", "ceiling-mem": "x ceiling"}
# Peak RSS may grow in a run's second half by no more than what the subscription
# queue may legitimately hold (bufferLength decoded records) plus allocator slack
# (pymalloc grows in 1 MiB arenas); more than that would mean growth with message count.
BUFFER_LENGTH = 1024
SLACK_KB = 2048
LATENCY_P50_RATIO = 1.1  # inline delivery; queued delivery is shown for comparison
MANY_KB_PER_CONN, MANY_IDLE_KB_PER_CONN, MANY_P99_MS = 80.0, 40.0, 5.0
FANIN_GROWTH_MB = 40.0
FOOTPRINT_MB, STARTUP_S, SERVICE_MB = 35.0, 0.5, 35.0


def queue_bound_kb(size: str) -> float:
    """KiB that ``BUFFER_LENGTH`` decoded records of this payload occupy (tracemalloc)."""
    import tracemalloc

    data = payload(size)
    tracemalloc.start()
    records = [json.loads(data) for _ in range(32)]
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del records
    return BUFFER_LENGTH * used / 32 / 1024


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- formatting ---------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def short(value: float) -> str:
    """A compact rate for the per-run column: 412k, 7.6k, 487."""
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")


def table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def by_kind(rows: list[Row], kind: str) -> Row | None:
    return next((r for r in rows if r.receiver.kind == kind and not r.error and r.runs), None)


class Targets:
    """Collects target checks while the sections are formatted."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = []

    def check(self, case: str, what: str, measured: str, ok: bool | None, kind: str = "target") -> str:
        verdict = "-" if ok is None else ("ok" if ok else ("MISS" if kind == "target" else "miss (stretch)"))
        self.lines.append([case, what, measured, verdict])
        return verdict


def throughput_section(results: dict[str, list[Row]], targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for name, rows in results.items():
        size = len(payload(THROUGHPUT[name][1]))
        base = {k: by_kind(rows, k) for k in RATIO_COLUMNS}
        bound = queue_bound_kb(THROUGHPUT[name][1]) + SLACK_KB
        for row in rows:
            if row.error or not row.runs:
                lines.append([name, row.receiver.label, "error: " + (row.error or "no result")]
                             + [""] * (6 + len(RATIO_COLUMNS)))
                continue
            rate = row.med("rate")
            growth = max(p - h for p, h in zip(row.values("rss_peak_kb"), row.values("rss_half_kb")))
            ratios = [fmt(ratio(rate, b.med("rate")), 2) + "x" if b else "-" for b in base.values()]
            lines.append(
                [
                    name,
                    row.receiver.label,
                    fmt(rate),
                    fmt(rate * size / 1e6, 1),
                    " / ".join(short(v) for v in row.values("rate")),
                    fmt(max(row.values("rss_peak_kb")) / 1024, 1),
                    fmt(growth, 0),
                    fmt(row.med("threads")),
                    fmt(row.med("cpu_us_per_msg"), 2) if row.values("cpu_us_per_msg") else "-",
                    *ratios,
                ]
            )
            if row.receiver.is_ekws:
                extra = INLINE_TARGETS.get(name, []) if row.receiver.is_inline else []
                for kind, minimum, label in THROUGHPUT_TARGETS.get(name, []) + extra:
                    b = base[kind]
                    r = ratio(rate, b.med("rate")) if b else float("nan")
                    what = f"{row.receiver.label} >= {minimum}x {b.receiver.label if b else kind}"
                    targets.check(name, what, fmt(r, 2) + "x", r >= minimum if r == r else None, label)
                if name in CPU_TARGETS:
                    b = base[CPU_TARGETS[name][row.receiver.is_inline]]
                    if b and b.values("cpu_us_per_msg") and row.values("cpu_us_per_msg"):
                        r = ratio(b.med("cpu_us_per_msg"), row.med("cpu_us_per_msg"))
                        targets.check(name, f"{row.receiver.label} CPU per message: {b.receiver.label}'s "
                                      "/ ekws's >= 1.0x", fmt(r, 2) + "x", r >= 1.0)
                targets.check(
                    name,
                    f"{row.receiver.label}: RSS growth in 2nd half <= queue bound + 2 MB ({bound:,.0f} KB)",
                    f"{growth:,.0f} KB",
                    growth <= bound,
                )
    header = [
        "case",
        "receiver",
        "msg/s (median)",
        "MB/s",
        "runs (msg/s)",
        "peak RSS MB",
        "RSS growth 2nd half KB",
        "threads",
        "CPU us/msg",
        *RATIO_COLUMNS.values(),
    ]
    note = ("`CPU us/msg`: the receiver process's CPU time (every thread) over the measured "
            "records, median; a receiver starved of CPU by other processes keeps its figure. "
            "`x ceiling`: against the pure-Python frame parser + `json.loads` over pre-built frames in "
            "memory (no socket). `ekws inline`: the subscription option `delivery: inline` (callbacks "
            "on the reading thread); the other ekws rows are the default queued delivery.")
    return ["## Throughput", "", note, "", *table(header, lines), ""]


def latency_section(results: dict[str, list[Row]], params: Params, targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for name, rows in results.items():
        naive = by_kind(rows, "naive")
        for row in rows:
            if row.error or not row.runs:
                lines.append([name, row.receiver.label, "error: " + (row.error or "no result")] + [""] * 5)
                continue
            p50 = row.med("p50_ms")
            r = ratio(p50, naive.med("p50_ms")) if naive else float("nan")
            lines.append(
                [
                    name,
                    row.receiver.label,
                    fmt(p50, 3),
                    fmt(row.med("p99_ms"), 3),
                    fmt(row.med("max_ms"), 2),
                    fmt(r, 2) + "x",
                    fmt(sum(row.values("lost"))),
                ]
            )
            if row.receiver.is_ekws:
                inline = "inline" in row.receiver.label
                what = f"{row.receiver.label}: p50 <= {LATENCY_P50_RATIO}x naive"
                if not inline:
                    what += " (queued delivery: for comparison)"
                ok = (r <= LATENCY_P50_RATIO if r == r else None) if inline else None
                targets.check(name, what, fmt(r, 2) + "x", ok)
    header = ["case", "receiver", "p50 ms", "p99 ms", "max ms", "p50 x naive", "lost"]
    rate = f"{params.latency_rate:.0f} msg/s for {params.latency_seconds:g} s"
    intro = (
        f"Sender timestamp to callback, 120 B messages at {rate} (first 10% left out);"
        f" medians over {params.latency_runs} interleaved run(s); lost = total over runs."
    )
    return ["## Latency", "", intro, "", *table(header, lines), ""]


def many_section(rows: list[Row], params: Params, targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for row in rows:
        if row.error or not row.runs:
            lines.append(
                ["many-connections", row.receiver.label, "error: " + (row.error or "no result")] + [""] * 9
            )
            continue
        res = row.runs[0]
        n = res["clients"]
        per_conn_idle = (res["connected_rss_kb"] - res["idle_rss_kb"]) / n
        per_conn_run = (res["run_rss_kb"] - res["idle_rss_kb"]) / n
        lines.append(
            [
                "many-connections",
                row.receiver.label,
                fmt(n),
                f"{res['received']:,}/{res['expected']:,}",
                fmt(res["lost"]),
                fmt(res["idle_rss_kb"] / 1024, 1),
                fmt(per_conn_idle, 1),
                fmt(per_conn_run, 1),
                f"{res['connected_threads']}/{res['run_threads']}",
                fmt(res["p50_ms"], 2),
                fmt(res["p99_ms"], 2),
                fmt(res["max_ms"], 1),
            ]
        )
        if row.receiver.is_ekws:
            case = "many-connections"
            targets.check(
                case,
                f"RSS per idle connection <= {MANY_IDLE_KB_PER_CONN:g} KB",
                f"{per_conn_idle:.1f} KB",
                per_conn_idle <= MANY_IDLE_KB_PER_CONN,
            )
            targets.check(
                case,
                f"RSS per connection while sending <= {MANY_KB_PER_CONN:g} KB",
                f"{per_conn_run:.1f} KB",
                per_conn_run <= MANY_KB_PER_CONN,
            )
            targets.check(
                case, f"lag p99 < {MANY_P99_MS:g} ms", f"{res['p99_ms']:.2f} ms", res["p99_ms"] < MANY_P99_MS
            )
            targets.check(case, "nothing lost", f"{res['lost']} lost", res["lost"] == 0)
    header = [
        "case",
        "receiver",
        "clients",
        "received",
        "lost",
        "RSS before peers MB",
        "KB/conn (peers idle)",
        "KB/conn (peak while sending)",
        "threads idle/peak",
        "lag p50 ms",
        "lag p99 ms",
        "lag max ms",
    ]
    intro = (
        f"Server mode, {params.many_clients:,} clients each sending one 120 B message per second for "
        f"{params.many_seconds} s (spread evenly), from one raw-socket sender process."
    )
    return ["## many-connections", "", intro, "", *table(header, lines), ""]


def fanin_section(rows: list[Row], params: Params, targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for row in rows:
        if row.error or not row.runs:
            lines.append(["fan-in", row.receiver.label, "error: " + (row.error or "no result")] + [""] * 5)
            continue
        res = row.runs[0]
        peak = max(res["rss_peak_kb"], res["sampled_peak_kb"])
        growth = (peak - res["connected_rss_kb"]) / 1024
        seconds = res["elapsed"]
        lines.append(
            [
                "fan-in",
                row.receiver.label,
                f"{res['received']:,}/{res['expected']:,}",
                fmt(res["connected_rss_kb"] / 1024, 1),
                fmt(peak / 1024, 1),
                f"+{growth:.1f}",
                fmt(res["expected"] / seconds if seconds else float("nan")),
            ]
        )
        if row.receiver.is_ekws:
            what = f"{row.receiver.label}: peak RSS <= +{FANIN_GROWTH_MB:g} MB over idle"
            targets.check("fan-in", what, f"+{growth:.1f} MB", growth <= FANIN_GROWTH_MB)
    header = ["case", "receiver", "received", "RSS idle (peers connected) MB", "peak RSS MB",
              "growth MB", "msg/s"]
    intro = (
        f"Server mode, {params.fanin_clients} peers connected, then each writes {params.fanin_records:,} "
        "120 B records as fast as TCP takes them (one raw-socket sender process); growth = peak RSS "
        "(sampled every 20 ms and the process's own maximum) minus RSS with the peers connected and idle."
    )
    return ["## fan-in", "", intro, "", *table(header, lines), ""]


def service_section(rows: list[Row], targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for row in rows:
        if row.error or not row.runs:
            lines.append(["service", row.receiver.label, "error: " + (row.error or "no result"), ""])
            continue
        rss, ready_s = row.med("rss_mb"), row.med("ready_s")
        lines.append(["service", row.receiver.label, f"{rss:.1f} MB RSS idle", f"{ready_s:.3f} s"])
        what = f"`ekws run` idle RSS <= {SERVICE_MB:g} MB"
        targets.check("service", what, f"{rss:.1f} MB", rss <= SERVICE_MB)
    intro = "`ekws run -c etc` (shipped config) 1 s after READY=1 (bench/bench_service.py); median."
    return ["## service", "", intro, "", *table(["case", "process", "RSS", "exec -> READY=1"], lines), ""]


def footprint_section(fp: list[Row], st: list[Row], targets: Targets) -> list[str]:
    lines: list[list[str]] = []
    for row in fp:
        if row.error or not row.runs:
            lines.append(["footprint", row.receiver.label, "error: " + (row.error or "no result"), ""])
            continue
        mb = row.med("rss_kb") / 1024
        lines.append(["footprint", row.receiver.label, f"{mb:.1f} MB RSS", fmt(row.med("threads"))])
        if row.receiver.is_ekws:
            targets.check(
                "footprint",
                f"idle client+server stream RSS <= {FOOTPRINT_MB:g} MB",
                f"{mb:.1f} MB",
                mb <= FOOTPRINT_MB,
            )
    for row in st:
        if row.error or not row.runs:
            lines.append(["startup", row.receiver.label, "error: " + (row.error or "no result"), ""])
            continue
        s = row.med("seconds")
        imp = row.med("import_s")
        lines.append(["startup", row.receiver.label, f"{s * 1000:.0f} ms (import {imp * 1000:.0f} ms)", "-"])
        if row.receiver.is_ekws:
            targets.check(
                "startup", f"import ekws to port accepting <= {STARTUP_S:g} s", f"{s:.3f} s", s <= STARTUP_S
            )
    intro = (
        "footprint: RSS of a fresh process holding one idle client-mode and one idle server-mode "
        "stream, a subscription each (naive: a websocket-client connection + a Werkzeug server). "
        "startup: from the first import to the server port accepting, fresh process (median)."
    )
    return [
        "## footprint and startup",
        "",
        intro,
        "",
        *table(["case", "process", "figure", "threads"], lines),
        "",
    ]


def header_lines(
    args: argparse.Namespace, params: Params, started: float, load: tuple[float, ...]
) -> list[str]:
    commit = "?"
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        pass
    load_now = os.getloadavg()
    return [
        "# ekws benchmark results",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}, commit {commit},"
        f" {'quick smoke run' if args.quick else 'full run'} in {time.monotonic() - started:.0f} s",
        f"- Python {cases.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs,"
        f" load average {load[0]:.2f} before / {load_now[0]:.2f} after",
        f"- throughput: median of {params.runs} run(s) of {params.seconds:g} s each"
        f" ({params.multi_seconds:g} s with 50 clients), runs interleaved;"
        f" ekws default JSON backend: {'orjson' if cases.HAVE_ORJSON else 'stdlib'}",
        *(
            ["- quick smoke run: durations far too short for the figures to mean anything"]
            if args.quick
            else []
        ),
        "- ratios = ekws figure / baseline figure measured in this same run (higher is better for"
        " throughput, lower for latency)",
        "",
    ]


# -- main ---------------------------------------------------------------------


def selected(only: str | None) -> list[str]:
    if not only:
        return list(CASE_NAMES)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    names = [n for n in CASE_NAMES if any(n == w or n.startswith(w) for w in wanted)]
    if not names:
        raise SystemExit(f"--only {only!r} matches no case; cases: {', '.join(CASE_NAMES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: every case, tiny durations")
    parser.add_argument("--only", help="comma-separated case names or prefixes: " + ", ".join(CASE_NAMES))
    parser.add_argument("--runs", type=int, help="throughput runs per receiver (default 3)")
    parser.add_argument(
        "--seconds",
        type=float,
        help="throughput counting time per run, every throughput case (default 1.0; 2.0 with 50 clients)",
    )
    parser.add_argument("--readme", action="store_true", help="also paste the table into bench/README.md")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md", help="markdown output file")
    args = parser.parse_args(argv)

    params = cases.QUICK if args.quick else Params()
    if args.runs:
        params = replace(params, runs=args.runs)
    if args.seconds:
        params = replace(params, seconds=args.seconds, multi_seconds=args.seconds)
    names = selected(args.only)
    started, load = time.monotonic(), os.getloadavg()

    tp: dict[str, list[Row]] = {}
    lat: dict[str, list[Row]] = {}
    many: list[Row] = []
    fp: list[Row] = []
    st: list[Row] = []
    fi: list[Row] = []
    sv: list[Row] = []

    def timed(name: str, step: Callable[[], list[Row]]) -> list[Row]:
        t0 = time.monotonic()
        log(f"{name} ...")
        rows = step()
        log(f"{name}: {time.monotonic() - t0:.1f} s")
        return rows

    for name, (mode, size, clients) in THROUGHPUT.items():
        if name in names:
            tp[name] = timed(name, partial(cases.throughput, name, mode, size, params, log, clients))
    for name, mode in LATENCY.items():
        if name in names:
            lat[name] = timed(name, partial(cases.latency, name, mode, params, log))
    if "many-connections" in names:
        many = timed("many-connections", lambda: cases.many("many-connections", params, log))
    if "fan-in" in names:
        fi = timed("fan-in", lambda: cases.fanin("fan-in", params, log))
    if "service" in names:
        sv = timed("service", lambda: cases.service("service", params, log))
    if "footprint" in names:
        fp = timed("footprint", lambda: cases.footprint("footprint", params, log))
    if "startup" in names:
        st = timed("startup", lambda: cases.startup("startup", params, log))

    targets = Targets()
    body: list[str] = []
    if tp:
        body += throughput_section(tp, targets)
    if lat:
        body += latency_section(lat, params, targets)
    if many:
        body += many_section(many, params, targets)
    if fi:
        body += fanin_section(fi, params, targets)
    if fp or st:
        body += footprint_section(fp, st, targets)
    if sv:
        body += service_section(sv, targets)
    body += ["## Targets", "", *table(["case", "target", "measured", "verdict"], targets.lines), ""]
    text = "\n".join(header_lines(args, params, started, load) + body)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw: dict[str, Any] = {"params": asdict(params), "cases": {}}
    for name, rows in [
        *tp.items(),
        *lat.items(),
        ("many-connections", many),
        ("footprint", fp),
        ("startup", st),
        ("fan-in", fi),
        ("service", sv),
    ]:
        raw["cases"][name] = [
            {"receiver": r.receiver.label, "kind": r.receiver.kind, "error": r.error, "runs": r.runs}
            for r in rows
        ]
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    if args.readme:
        paste_into_readme(text)
    print(text)
    return 0


def paste_into_readme(text: str) -> None:
    """Replace the table between the README's markers with ``text`` (its title dropped)."""
    readme = README.read_text()
    start, end = readme.index(MARK_START) + len(MARK_START), readme.index(MARK_END)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# "))
    body = body.replace("\n## ", "\n### ")
    README.write_text(readme[:start] + "\n" + body.strip() + "\n" + readme[end:])


if __name__ == "__main__":
    raise SystemExit(main())
