"""Benchmark ekws.wire.frames.FrameParser against wsproto, websocket-client and a minimal parser.

Why: ekws reads frames itself after the handshake because the libraries it
uses to dial/upgrade are slow on the hot path. This script shows by how much,
on the same byte streams, fed in 64 KiB chunks like socket reads:

- 100k text frames of a ~120-byte JSON document (the edge-device case);
- 2k binary frames of 16 KiB;
- one 16 MiB binary message (checks that big messages cost O(n), not O(n^2)).

Each case runs masked (server side: client frames) and unmasked (client side).
Rates are messages per second, best of ``--repeat`` runs; the ratio column is
FrameParser's rate divided by the row's rate. Not a test: no assertions.

    PYTHONPATH=. python bench/bench_frames.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from ekws.wire.frames import OP_BINARY, OP_TEXT, FrameParser, encode_frame

CHUNK = 64 * 1024

Runner = Callable[[list[bytes], bool], int]


def build(opcode: int, payload: bytes, count: int, masked: bool) -> list[bytes]:
    stream = b"".join(encode_frame(opcode, payload, mask=masked) for _ in range(count))
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def build_big(size: int, masked: bool) -> list[bytes]:
    stream = encode_frame(OP_BINARY, os.urandom(size), mask=masked)
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def run_ekws(chunks: list[bytes], masked: bool) -> int:
    parser = FrameParser(masked=masked)
    count = 0
    for chunk in chunks:
        count += len(parser.feed(chunk))
    return count


def run_minimal(chunks: list[bytes], masked: bool) -> int:
    """Baseline: the least a Python parser can do (FIN frames only, no checks)."""
    buf = b""
    count = 0
    for chunk in chunks:
        buf = buf + chunk if buf else chunk
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = pos + 2
            if length == 126:
                length = int.from_bytes(buf[head : head + 2], "big")
                head += 2
            elif length == 127:
                length = int.from_bytes(buf[head : head + 8], "big")
                head += 8
            if masked:
                head += 4
            if head + length > end:
                break
            payload = buf[head : head + length]
            if masked:
                key = buf[head - 4 : head]
                payload = (
                    int.from_bytes(payload, "little")
                    ^ int.from_bytes((key * ((length + 3) >> 2))[:length], "little")
                ).to_bytes(length, "little")
            out.append((buf[pos] & 0x0F, payload))
            pos = head + length
        buf = buf[pos:]
        count += len(out)
    return count


def run_wsproto(chunks: list[bytes], masked: bool) -> int:
    from wsproto.frame_protocol import FrameProtocol

    # client=False means "I am the server" and expects masked frames.
    protocol = FrameProtocol(client=not masked, extensions=[])
    count = 0
    for chunk in chunks:
        protocol.receive_bytes(chunk)
        for frame in protocol.received_frames():
            if frame.message_finished:
                count += 1
    return count


def websocket_client_runner(skip_utf8_validation: bool) -> Runner:
    def run(chunks: list[bytes], masked: bool) -> int:
        from websocket._abnf import ABNF, continuous_frame, frame_buffer

        pending = list(reversed(chunks))

        def recv(bufsize: int) -> bytes:
            # Serve the 64 KiB chunks as a socket would, at most bufsize at a time.
            data = pending.pop()
            if len(data) > bufsize:
                pending.append(data[bufsize:])
                return data[:bufsize]
            return data

        reader = frame_buffer(recv, skip_utf8_validation)
        messages = continuous_frame(False, skip_utf8_validation)
        count = 0
        while pending or any(reader.recv_buffer):
            frame = reader.recv_frame()
            if frame.opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                messages.validate(frame)
                messages.add(frame)
                if messages.is_fire(frame):
                    messages.extract(frame)
                    count += 1
        return count

    return run


def measure(runner: Runner, chunks: list[bytes], masked: bool, repeat: int) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = runner(chunks, masked)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10x fewer frames")
    args = parser.parse_args()
    scale = 10 if args.quick else 1

    record = {"device": "sensor-0042", "ts": 1700000000123, "temperature": 21.57, "humidity": 40.2}
    document = json.dumps(record).encode()
    document += b" " * max(0, 120 - len(document))
    cases = [
        (f"{100_000 // scale} x {len(document)} B JSON text", OP_TEXT, document, 100_000 // scale),
        (f"{2_000 // scale} x 16 KiB binary", OP_BINARY, os.urandom(16 * 1024), 2_000 // scale),
    ]
    runners: list[tuple[str, Runner]] = [
        ("ekws FrameParser", run_ekws),
        ("minimal inline parser", run_minimal),
        ("wsproto FrameProtocol", run_wsproto),
        ("websocket-client ABNF", websocket_client_runner(skip_utf8_validation=True)),
        ("websocket-client ABNF+utf8", websocket_client_runner(skip_utf8_validation=False)),
    ]
    print(f"64 KiB chunks, best of {args.repeat}; ratio = ekws rate / row rate")
    for masked in (True, False):
        side = "masked (server side)" if masked else "unmasked (client side)"
        streams = [(name, build(op, payload, n, masked), n) for name, op, payload, n in cases]
        streams.append(("1 x 16 MiB binary in 64 KiB chunks", build_big(16 << 20, masked), 1))
        for name, chunks, expected in streams:
            print(f"\n{side}: {name}")
            ekws_rate = 0.0
            for label, runner in runners:
                if "utf8" in label and not name.endswith("text"):
                    continue  # same as the row above for binary frames
                seconds, count = measure(runner, chunks, masked, args.repeat)
                if count != expected:
                    print(f"  {label:28s} parsed {count} messages, expected {expected}")
                    continue
                rate = count / seconds
                ekws_rate = ekws_rate or rate
                mib = sum(len(c) for c in chunks) / seconds / (1 << 20)
                print(f"  {label:28s} {rate:12,.0f} msgs/s {mib:9,.1f} MiB/s  x{ekws_rate / rate:5.2f}")


if __name__ == "__main__":
    main()
