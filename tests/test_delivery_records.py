"""Each subscription owns its records: a callback's changes stay its own."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

from helpers.server import create_sql, wait_until, write_etc, ws_connect

import ekws
from ekws.config import load_websocket_config
from ekws.ddl import parse_stream
from ekws.stream import Stream, _copy_record

RECORD = {"a": {"b": [1, {"c": 2}], "d": {"e": [[3]]}}, "s": "text", "n": None}


def test_a_callback_changing_its_record_does_not_affect_the_other_subscriptions(tmp_path: Path) -> None:
    # Three subscriptions in a chain: each waits for the one before to have
    # changed its record in place, looks at its own, then changes it too.
    seen: dict[str, Any] = {}
    done = {name: threading.Event() for name in "ABC"}

    def make(name: str, after: str | None) -> Any:
        def on_message(msg: ekws.Message) -> None:
            if after is not None:
                assert done[after].wait(5)
            seen[name] = copy.deepcopy(msg.data)
            seen[name + "-id"] = id(msg.data)
            msg.data["a"]["b"][1]["c"] = name
            msg.data["a"]["b"].append(name)
            msg.data["a"]["d"]["e"][0].append(name)
            msg.data["added"] = name
            done[name].set()
        return on_message

    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        subs = [rt.subscribe("demo", make("A", None)), rt.subscribe("demo", make("B", "A")),
                rt.subscribe("demo", make("C", "B"))]
        port = rt.server_address[1]  # type: ignore[index]
        with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.send(json.dumps(RECORD))
            assert all(event.wait(5) for event in done.values())
        for sub in subs:
            sub.close()
    assert seen["A"] == seen["B"] == seen["C"] == RECORD
    assert len({seen["A-id"], seen["B-id"], seen["C-id"]}) == 3


class Idle:
    def start(self) -> None: ...

    def stop(self) -> None: ...


def test_a_single_subscription_gets_the_decoded_record_itself() -> None:
    decoded: list[dict[str, Any]] = []

    def decoder(payload: bytes) -> list[dict[str, Any]]:
        decoded.append(json.loads(payload))
        return [decoded[-1]]

    definition = parse_stream("CREATE STREAM s ()")
    stream = Stream(definition, load_websocket_config(None).props(None), decoder, lambda s: Idle())
    got: list[ekws.Message] = []
    first = stream.subscribe(got.append)
    peer = ekws.Peer("s", "/", "127.0.0.1:1", 1)
    stream.publish(peer, [json.dumps(RECORD).encode()], 0)
    assert wait_until(lambda: len(got) == 1)
    assert got[0].data is decoded[0]  # the hot path copies nothing
    also: list[ekws.Message] = []
    second = stream.subscribe(also.append)
    stream.publish(peer, [json.dumps(RECORD).encode()], 0)
    assert wait_until(lambda: len(got) == 2 and len(also) == 1)
    assert got[1].data is decoded[1] and also[0].data is not decoded[1]
    assert also[0].data == decoded[1]
    first.close()
    second.close()


def test_copy_record_is_deep_for_dicts_lists_and_bytearrays_and_shares_the_rest() -> None:
    raw = bytearray(b"xy")
    text = "a string"
    record = {"l": [{"k": [1]}], "raw": raw, "bytes": b"b", "text": text}
    copied = _copy_record(record)
    assert copied == record
    assert copied["l"] is not record["l"] and copied["l"][0] is not record["l"][0]
    assert copied["l"][0]["k"] is not record["l"][0]["k"]
    assert copied["raw"] is not raw and copied["text"] is text


def test_copy_record_handles_nesting_deeper_than_the_recursion_limit() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = [{}]
        node = node["x"][0]
    copied = _copy_record(deep)
    depth, node = 0, copied
    original = deep
    while node:
        assert node is not original
        node, original = node["x"][0], original["x"][0]
        depth += 1
    assert depth == 5000
