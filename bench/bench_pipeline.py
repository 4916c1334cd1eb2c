"""CPU per message of ekws's server-mode pipeline, in process: no socket, no sender.

``ServerRoute.deliver``'s path as the reader thread runs it: masked frames in
reads of ``--read`` bytes -> ``Link.feed`` (``Connection.receive_data``, pongs
owed) -> ``Stream.publish`` -> one subscription (queued or inline) -> a
counting callback. Process CPU time (every thread) over messages, which is far
steadier than msg/s on a shared machine; ``--profile`` prints cProfile's top
functions for one delivery mode (run it alone: the profiler slows every call).

    python bench/bench_pipeline.py                      # both modes, 120 B
    python bench/bench_pipeline.py --size large --delivery inline
    python bench/bench_pipeline.py --profile --delivery inline
    python bench/bench_pipeline.py --json orjson     # default: stdlib, as the issue's figures
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import threading
import time
from typing import Any

# The JSON backend is chosen when ekws.codec is imported: stdlib unless --json orjson.
if "--json" in sys.argv[:-1]:
    os.environ["EKWS_JSON"] = sys.argv[sys.argv.index("--json") + 1]
os.environ.setdefault("EKWS_JSON", "stdlib")

import ekws  # noqa: E402
import ekws.codec  # noqa: E402
from bench.common import MASK, frame, payload, write_etc  # noqa: E402
from ekws.message import Peer  # noqa: E402
from ekws.wire.protocol import Connection, Link  # noqa: E402
from ekws.wire.server import ServerRoute  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def chunks(size: str, read: int, total_bytes: int) -> list[bytes]:
    one = frame(payload(size), mask=MASK)
    per = max(1, read // len(one))
    block = one * per
    return [block] * max(1, total_bytes // len(block))


def run(delivery: str, size: str, read: int, total_bytes: int, profile: bool) -> dict[str, Any]:
    rt = ekws.Runtime(config_dir=write_etc(0))
    rt.create_stream('CREATE STREAM b() WITH (DATASOURCE="/p", TYPE="websocket")')
    count = [0]
    done = threading.Event()
    data = chunks(size, read, total_bytes)
    expected = sum(len(c) for c in data) // len(frame(payload(size), mask=MASK))

    def on(msg: Any) -> None:
        count[0] += 1
        if count[0] == expected:
            done.set()

    rt.subscribe("b", on, delivery=delivery)
    stream = rt._get("b")  # the bench drives the stream's Sink side directly
    route = ServerRoute(None, stream, "b", "/p", stream.props, lambda: 1)  # type: ignore[arg-type]
    a, b = socket.socketpair()
    link = Link(Connection(client=False, where="bench"), a)
    peer = Peer("b", "/p", "127.0.0.1:1", 1)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    c0, t0 = cpu(), time.perf_counter()
    for chunk in data:
        messages = link.feed(chunk)
        if messages:
            route.deliver(link, peer, messages)
    done.wait(60)
    c1, t1 = cpu(), time.perf_counter()
    if prof is not None:
        prof.disable()
        import pstats

        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    rt.close()
    a.close()
    b.close()
    return {"delivery": delivery, "messages": count[0], "cpu_us": (c1 - c0) / count[0] * 1e6,
            "wall_us": (t1 - t0) / count[0] * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", default="small", choices=("small", "large"))
    parser.add_argument("--read", type=int, default=32 * 1024, help="bytes per simulated socket read")
    parser.add_argument("--mb", type=float, default=0, help="MB fed per run (30 small, 200 large)")
    parser.add_argument("--delivery", choices=("queue", "inline", "both"), default="both")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved runs per mode")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", choices=("stdlib", "orjson"), default="stdlib")
    args = parser.parse_args()
    total = int((args.mb or (30 if args.size == "small" else 200)) * 1e6)
    modes = ["queue", "inline"] if args.delivery == "both" else [args.delivery]
    if args.profile:
        print(run(modes[0], args.size, args.read, total, True))
        return
    results: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.pairs):
        for mode in modes:
            res = run(mode, args.size, args.read, total, False)
            results[mode].append(res["cpu_us"])
            print(f"{mode:6s} {ekws.codec.JSON_BACKEND} {args.size} read {args.read}: "
                  f"{res['cpu_us']:.2f} us CPU/msg "
                  f"({res['wall_us']:.2f} us wall, {res['messages']:,} messages)", flush=True)
    for mode, values in results.items():
        print(f"{mode}: median {sorted(values)[len(values) // 2]:.2f} us CPU/msg over {len(values)} runs")


if __name__ == "__main__":
    main()
