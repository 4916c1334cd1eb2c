"""Micro-benchmark: the schemaless JSON decoder against a bare ``json.loads``.

Prints, for a ~120-byte object and a 16 KiB object, the time per call of
``json.loads(data.decode())`` (the baseline, measured in the same run) and of
``make_decoder(schemaless json)`` with each available backend, and their ratio
to the baseline (< 1.0 is faster). No assertions: this is not a test.

    python bench/bench_codec.py
"""

from __future__ import annotations

import functools
import json
import random
import timeit
from typing import Any, Callable

from ekws import codec
from ekws.ddl import parse_stream


def _payloads() -> dict[str, bytes]:
    rng = random.Random(42)
    small = {
        "temperature": 23.5,
        "humidity": 61,
        "device": "sensor-0042",
        "ts": 1700000000123,
        "ok": True,
        "tags": ["a", "b"],
    }
    items: list[dict[str, Any]] = []
    big = b""
    while len(big) < 16 * 1024:
        i = len(items)
        items.append({"id": i, "name": f"item{i}", "value": round(rng.random() * 100, 3), "flag": i % 2 == 0})
        big = json.dumps({"items": items}).encode()
    small_data = json.dumps(small).encode()
    return {f"{len(small_data)} B object": small_data, f"{len(big)} B object": big}


def _bare(data: bytes) -> Any:
    return json.loads(data.decode())


def _time(func: Callable[[], Any], seconds: float = 0.3) -> float:
    number, elapsed = 1, 0.0
    while elapsed < seconds:  # find a loop count that runs long enough
        number *= 2
        elapsed = timeit.timeit(func, number=number)
    return min(timeit.repeat(func, number=number, repeat=5)) / number


def main() -> None:
    stream = parse_stream('CREATE STREAM bench() WITH (DATASOURCE="/bench", FORMAT="json")')
    backends: dict[str, codec.Loads] = {"stdlib": codec._loads_stdlib}
    if codec.ORJSON_AVAILABLE:
        backends["orjson"] = codec._loads_orjson
    print(f"default backend: {codec.JSON_BACKEND}")
    for label, data in _payloads().items():
        base = _time(functools.partial(_bare, data))
        print(f"{label}: json.loads(data.decode()) {base * 1e6:8.2f} us  (baseline 1.00)")
        for name, loads in backends.items():
            decode = codec.make_decoder(stream, loads=loads)
            took = _time(functools.partial(decode, data))
            print(f"{label}: make_decoder [{name:6}]   {took * 1e6:8.2f} us  ratio {took / base:.2f}")


if __name__ == "__main__":
    main()
