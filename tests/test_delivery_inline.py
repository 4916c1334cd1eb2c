"""delivery="inline": callbacks on the thread that read the socket, never two at once per subscription.

Server mode has a thread per peer, so two peers prove the per-subscription
lock; a blocked callback proves the back-pressure reaches TCP (the peer's
sends stall, nothing is buffered); errors go through the same on_error path.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from helpers.server import Collector, ErrorLog, create_sql, server_stream, wait_until, write_etc, ws_connect

import ekws
from ekws.message import Message, Peer
from ekws.subscription import Subscription

PEER = Peer("s", "/", "127.0.0.1:1", 1)


def test_inline_delivers_in_order_on_the_peer_thread(tmp_path: Path) -> None:
    threads: list[str] = []
    got = Collector(on_each=lambda msg: threads.append(threading.current_thread().name))
    with server_stream(tmp_path, collector=got, delivery="inline") as (_rt, sub, _got, url):
        assert sub.delivery == "inline"
        with ws_connect(url) as ws:
            for n in range(300):
                ws.send(json.dumps({"n": n}))
            assert got.wait_for(300)
        assert [m["n"] for m in got.data] == list(range(300))
        assert sub.delivered == 300 and sub.buffered == 0
        assert not any(name.startswith("ekws-sub-") for name in threads)
        assert not any(t.name.startswith("ekws-sub-") for t in threading.enumerate())


def test_two_peers_never_run_one_subscriptions_callbacks_at_once(tmp_path: Path) -> None:
    lock = threading.Lock()
    active = [0, 0]  # now, most at once
    threads: set[str] = set()

    def on_each(msg: ekws.Message) -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.0002)  # widen the window a second peer thread could use
        with lock:
            active[0] -= 1

    got = Collector(on_each=on_each)
    per_peer = 400
    with server_stream(tmp_path, collector=got, delivery="inline") as (_rt, _sub, _got, url), \
            ws_connect(url) as a, ws_connect(url) as b:

        def send(ws: object, peer: str) -> None:
            for n in range(per_peer):
                ws.send(json.dumps({"peer": peer, "n": n}))  # type: ignore[attr-defined]

        senders = [threading.Thread(target=send, args=(ws, p)) for ws, p in ((a, "a"), (b, "b"))]
        for t in senders:
            t.start()
        for t in senders:
            t.join(20)
        assert got.wait_for(2 * per_peer)
    assert active[1] == 1
    assert len(threads) == 2  # both peers' threads delivered: the lock was what kept them apart
    for peer in ("a", "b"):
        assert [m["n"] for m in got.data if m["peer"] == peer] == list(range(per_peer))


def test_raising_callback_reaches_on_error_and_delivery_goes_on(tmp_path: Path) -> None:
    boom = ValueError("bad reading")

    def on_each(msg: ekws.Message) -> None:
        if msg.data["n"] == 1:
            raise boom

    got, errors = Collector(on_each=on_each), ErrorLog()
    with server_stream(tmp_path, collector=got, on_error=errors, delivery="inline") as (rt, sub, _got, url):
        with ws_connect(url) as ws:
            for n in range(3):
                ws.send(json.dumps({"n": n}))
            ws.send("not json")
            assert got.wait_for(2) and wait_until(lambda: len(errors.errors) == 2)
        assert [m["n"] for m in got.data] == [0, 2]
        # A decode error is reported while its read is decoded, before that read's records are offered.
        (callback_error,) = [e for e in errors.errors if isinstance(e, ekws.CallbackError)]
        (decode_error,) = [e for e in errors.errors if not isinstance(e, ekws.CallbackError)]
        assert callback_error.__cause__ is boom
        assert callback_error.item.data == {"n": 1}  # type: ignore[union-attr]
        assert isinstance(decode_error, ekws.DecodeError)
        assert sub.failed == 1 and sub.delivered == 2
        metrics = rt.status("demo")
        assert metrics["exceptions_total"] == 2 and metrics["records_out_total"] == 2


def test_a_blocked_callback_stalls_the_peer_not_memory(tmp_path: Path) -> None:
    release = threading.Event()
    got = Collector(on_each=lambda msg: release.wait(20))
    chunk = json.dumps({"pad": "x" * 60_000})
    count = 400  # 24 MB: more than loopback socket buffers hold
    sent = [0]
    with server_stream(tmp_path, collector=got, delivery="inline") as (_rt, sub, _got, url), \
            ws_connect(url) as ws:

        def send() -> None:
            for _ in range(count):
                ws.send(chunk)
                sent[0] += 1

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)  # what the sender manages while the callback blocks
        assert sender.is_alive() and sent[0] < count
        assert sub.buffered == 0
        release.set()
        sender.join(20)
        assert got.wait_for(count, timeout=20)
    assert not sender.is_alive()


def test_close_waits_for_a_running_callback_then_nothing_more_is_delivered() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def on_message(msg: Message) -> None:
        seen.append(msg.data["n"])
        entered.set()
        release.wait(10)

    sub = Subscription("s", on_message, delivery="inline")
    sub.start()
    reader = threading.Thread(target=sub.offer, args=([Message({"n": 0}, PEER, 0)],))
    reader.start()
    assert entered.wait(5)
    closer = threading.Thread(target=sub.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive() and not sub.finished  # waiting for the callback
    release.set()
    closer.join(5)
    reader.join(5)
    assert sub.finished and sub.delivered == 1
    sub.offer([Message({"n": 1}, PEER, 0)])
    assert seen == [0]


def test_a_callback_may_close_its_own_subscription() -> None:
    seen: list[int] = []
    holder: list[Subscription] = []

    def on_message(msg: Message) -> None:
        seen.append(msg.data["n"])
        if msg.data["n"] == 1:
            holder[0].close()

    sub = Subscription("s", on_message, delivery="inline")
    holder.append(sub)
    sub.start()
    sub.offer([Message({"n": n}, PEER, 0) for n in range(3)])  # the batch in hand is delivered
    sub.offer([Message({"n": 9}, PEER, 0)])
    assert seen == [0, 1, 2] and sub.finished


def test_delivery_prop_from_the_conf_key_and_its_errors(tmp_path: Path) -> None:
    with ekws.Runtime(config_dir=write_etc(tmp_path, {"delivery": "inline"})) as rt:
        rt.create_stream(create_sql("demo", "/ws"))
        with rt.subscribe("demo", lambda msg: None) as sub:
            assert sub.delivery == "inline"
        with rt.subscribe("demo", lambda msg: None, delivery="queue") as sub:
            assert sub.delivery == "queue"
    with pytest.raises(ekws.ConfigError, match="delivery"):
        ekws.Runtime(config_dir=write_etc(tmp_path / "bad", {"delivery": "sideways"}))
    with pytest.raises(ValueError, match="delivery"):
        Subscription("s", lambda msg: None, delivery="sideways")
