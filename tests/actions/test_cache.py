"""The sink cache (enableCache): records kept across an outage and a restart, bounded, counted.

DiskCache on its own (memory first, then sqlite, order kept, bounded, kept at
close); then the websocket action against a real `websockets` server that goes
away and comes back, and the mqtt action against a real Mosquitto stopped and
restarted, with the rule restarted and the whole process (a device script
running Runtime + RuleManager, as ``ekws run`` does) restarted in between:
nothing lost. eKuiper's cache: ``docs/en_US/guide/sinks/overview.md#caching``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.rules import send
from helpers.server import create_sql, free_port, wait_until, write_etc
from test_actions import Receiver

import ekws
from ekws.actions import cache
from ekws.actions.cache import CacheConf, DiskCache
from ekws.rules.manager import RuleManager


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    cache.set_directory(str(folder))
    yield folder
    cache.set_directory(None)


def drain(queue: DiskCache) -> list[bytes]:
    out = []
    while (payload := queue.peek()) is not None:
        out.append(payload)
        queue.ack()
    return out


def test_disk_cache_keeps_order_across_memory_disk_and_a_reopen(data_dir: Path) -> None:
    conf = CacheConf(memory_threshold=3, max_disk=100, page_size=2)
    queue = DiskCache(conf, "r/mqtt/0")
    for n in range(10):
        queue.push(b"%d" % n)
    assert (len(queue), queue.on_disk) == (10, 7)  # the oldest 3 in memory, the newer 7 on disk
    assert queue.peek() == b"0"
    queue.ack()
    queue.release()
    queue.close()  # memory goes to disk ahead of the rest
    rows = sqlite3.connect(data_dir / "cache.db").execute('SELECT payload FROM "r/mqtt/0" ORDER BY seq')
    assert [bytes(r[0]) for r in rows] == [b"%d" % n for n in range(1, 10)]
    again = DiskCache(conf, "r/mqtt/0")
    assert again.restored == 9 and len(again) == 9
    again.push(b"10")
    assert drain(again) == [b"%d" % n for n in range(1, 11)]
    again.close()


def test_disk_cache_is_bounded_drops_the_oldest_and_counts(data_dir: Path) -> None:
    queue = DiskCache(CacheConf(memory_threshold=2, max_disk=3, page_size=2), "bounded")
    for n in range(8):
        queue.push(b"%d" % n)
    assert len(queue) == 5 and queue.dropped == 3
    assert queue.metrics() == {"buffer_length": 5, "cache_length": 5, "cache_disk_length": 3,
                               "dropped_total": 3}
    assert drain(queue) == [b"3", b"4", b"5", b"6", b"7"]
    queue.close()


def test_disk_cache_in_flight_payload_is_never_the_one_dropped(data_dir: Path) -> None:
    queue = DiskCache(CacheConf(memory_threshold=1, max_disk=1, page_size=1), "flight")
    queue.push(b"a")
    assert queue.peek() == b"a"  # being sent
    queue.push(b"b")
    queue.push(b"c")  # full: b goes, a stays
    queue.ack()
    assert drain(queue) == [b"c"] and queue.dropped == 1
    queue.close()


def test_clean_cache_at_stop(data_dir: Path) -> None:
    queue = DiskCache(CacheConf(memory_threshold=1, max_disk=10, clean_at_stop=True), "clean")
    for n in range(4):
        queue.push(b"%d" % n)
    queue.close()
    assert DiskCache(CacheConf(), "clean").restored == 0


def test_enable_cache_without_a_data_dir_fails_the_start_saying_so(rules: RuleManager) -> None:
    cache.set_directory(None)
    rules.create({"id": "nodir", "stream": "demo", "actions": [{"websocket": {
        "addr": f"127.0.0.1:{free_port()}", "enableCache": True}}]})
    status = rules.status("nodir")
    assert status["status"] == "stopped" and "enableCache needs a data directory" in status["message"]


def test_websocket_cache_keeps_records_across_an_outage_and_a_rule_restart(
        rules: RuleManager, runtime: ekws.Runtime, data_dir: Path) -> None:
    port = free_port()
    rules.create({"id": "wc", "stream": "demo", "actions": [{"websocket": {
        "addr": f"127.0.0.1:{port}", "path": "/in", "sendSingle": True, "enableCache": True,
        "memoryCacheThreshold": 4, "maxDiskCache": 1000, "resendInterval": 1,
        "reconnect": {"initialDelay": "20ms", "maxDelay": "100ms"}}}]})
    send(runtime, *({"n": n} for n in range(30)))
    assert wait_until(lambda: rules.status("wc")["sink_websocket_0_0_cache_length"] == 30)
    status = rules.status("wc")
    assert status["sink_websocket_0_0_cache_disk_length"] == 26
    assert status["sink_websocket_0_0_buffer_length"] == 30
    rules.restart("wc")  # the memory part goes to disk at stop and comes back at start
    assert wait_until(lambda: rules.status("wc")["sink_websocket_0_0_cache_length"] == 30)
    send(runtime, *({"n": n} for n in range(30, 40)))
    receiver = Receiver(port)
    receiver.start()
    try:
        assert receiver.wait_for(40, timeout=20), rules.status("wc")
        assert [m["n"] for m in receiver.messages] == list(range(40))  # in order, nothing lost
        assert wait_until(lambda: rules.status("wc")["sink_websocket_0_0_cache_length"] == 0)
        assert rules.status("wc")["sink_websocket_0_0_dropped_total"] == 0
    finally:
        rules.stop("wc")
        receiver.stop()


# --------------------------------------------------------------------------- mqtt + Mosquitto

@pytest.fixture
def mq() -> Any:
    """test_actions_mqtt's Broker and Subscriber; it skips without paho-mqtt (the [mqtt] extra)."""
    return pytest.importorskip("test_actions_mqtt")


@pytest.fixture
def broker(tmp_path: Path, mq: Any) -> Iterator[Any]:
    if mq.MOSQUITTO is None:
        pytest.skip("mosquitto is not installed: run .ci/install-mosquitto.sh")
    folder = tmp_path / "broker"
    folder.mkdir()
    b = mq.Broker(folder)
    b.start()
    yield b
    b.stop()


def mqtt_rule(rule_id: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "stream": "demo", "actions": [{"mqtt": {
        "server": f"tcp://127.0.0.1:{port}", "topic": "cached/{n}", "qos": 1, "clientId": f"ekws-{rule_id}",
        "sendSingle": True, "enableCache": True, "memoryCacheThreshold": 5, "maxDiskCache": 10000,
        "reconnect": {"initialDelay": "50ms", "maxDelay": "200ms"}, **extra}}]}


def test_mqtt_cache_across_a_broker_restart_and_a_rule_restart(rules: RuleManager, runtime: ekws.Runtime,
                                                                broker: Any, mq: Any) -> None:
    sub = mq.Subscriber(broker.port, "cached/#")
    try:
        rules.create(mqtt_rule("mc", broker.port))
        assert wait_until(lambda: rules.status("mc")["sink_mqtt_0_0_connection_status"] == 1, timeout=10)
        send(runtime, *({"n": n} for n in range(5)))
        assert sub.wait_for_distinct(5)
        broker.stop()
        assert wait_until(lambda: rules.status("mc")["sink_mqtt_0_0_connection_status"] == -1, timeout=10)
        send(runtime, *({"n": n} for n in range(5, 45)))
        assert wait_until(lambda: rules.status("mc")["sink_mqtt_0_0_cache_length"] == 40)
        assert rules.status("mc")["sink_mqtt_0_0_cache_disk_length"] >= 35  # counted in the rule status
        rules.restart("mc")  # while the broker is away
        assert wait_until(lambda: rules.status("mc")["sink_mqtt_0_0_cache_length"] == 40)
        broker.start()
        assert sub.wait_for_distinct(45, timeout=30), rules.status("mc")
        numbers = [payload["n"] for _, payload in sub.messages]
        assert sorted(set(numbers)) == list(range(45))
        assert [n for n in dict.fromkeys(numbers) if n >= 5] == list(range(5, 45))  # in order
        assert wait_until(lambda: rules.status("mc")["sink_mqtt_0_0_cache_length"] == 0)
        assert rules.status("mc")["sink_mqtt_0_0_dropped_total"] == 0
    finally:
        sub.close()


SCRIPT = textwrap.dedent("""
    # A device script: what `ekws run` builds (Runtime, RuleManager, the cache in its data dir).
    import json, sys
    import ekws
    from ekws.actions import cache
    from ekws.rules.manager import RuleManager

    etc, data, stream, rule = sys.argv[1:5]
    cache.set_directory(data)
    with ekws.Runtime(config_dir=etc) as rt:
        rt.create_stream(stream)
        rules = RuleManager(rt)
        body = json.loads(rule)
        rules.create(body)
        print(json.dumps({"port": rt.server_address[1]}), flush=True)
        for line in sys.stdin:  # "status" prints the rule's status; end of input stops cleanly
            print(json.dumps(rules.status(body["id"])), flush=True)
        rules.close()
""")


class Device:
    def __init__(self, tmp_path: Path, data_dir: Path, rule: dict[str, Any]) -> None:
        script = tmp_path / "device.py"
        script.write_text(SCRIPT)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), write_etc(tmp_path), str(data_dir), create_sql("demo", "/api/data"),
             json.dumps(rule)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def status(self) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def send(self, *records: Any) -> None:
        from helpers.server import ws_connect
        with ws_connect(f"ws://127.0.0.1:{self.port}/api/data") as ws:
            for record in records:
                ws.send(json.dumps(record))

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


def test_mqtt_cache_across_a_broker_outage_and_a_process_restart(tmp_path: Path, data_dir: Path,
                                                                 broker: Any, mq: Any) -> None:
    sub = mq.Subscriber(broker.port, "cached/#")
    rule = mqtt_rule("dev", broker.port)
    device = Device(tmp_path, data_dir, rule)
    try:
        assert wait_until(lambda: device.status()["sink_mqtt_0_0_connection_status"] == 1, timeout=10)
        broker.stop()
        assert wait_until(lambda: device.status()["sink_mqtt_0_0_connection_status"] == -1, timeout=10)
        device.send(*({"n": n} for n in range(25)))
        assert wait_until(lambda: device.status()["sink_mqtt_0_0_cache_length"] == 25)
        device.stop()  # the process ends with the broker still away
        kept = sqlite3.connect(data_dir / "cache.db").execute('SELECT count(*) FROM "dev/mqtt/0"').fetchone()
        assert kept == (25,)
        broker.start()
        device = Device(tmp_path, data_dir, rule)  # the next run resends what the last one kept
        assert sub.wait_for_distinct(25, timeout=30), device.status()
        assert list(dict.fromkeys(payload["n"] for _, payload in sub.messages)) == list(range(25))
        assert wait_until(lambda: device.status()["sink_mqtt_0_0_cache_length"] == 0)
    finally:
        device.stop()
        sub.close()
