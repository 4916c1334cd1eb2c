"""The mqtt action against a real Mosquitto broker, started per test on a free port.

Mosquitto is installed by .ci/install-mosquitto.sh; without its binary these
tests skip and say why. The subscriber is a paho client with a persistent
session, so a broker restart loses nothing on its side either: what is
checked is that the action buffers QoS 1 messages while the broker is away
and delivers every one once it is back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.certs import Pki, make_pki
from helpers.rules import send
from helpers.server import free_port, refuses, wait_until

import ekws
from ekws.actions import ActionError, parse_action
from ekws.rules.manager import RuleManager

paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'ekws[mqtt]')")

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


class Broker:
    """A Mosquitto subprocess on 127.0.0.1:port with persistence in a temp folder."""

    def __init__(self, folder: Path, pki: Pki | None = None) -> None:
        self.port = free_port()
        self.tls_port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = folder / "mosquitto.conf"
        tls = "" if pki is None else (
            f"listener {self.tls_port} 127.0.0.1\n"
            f"certfile {pki.server_cert_path}\nkeyfile {pki.server_key_path}\ncafile {pki.ca_path}\n")
        self.conf.write_text(
            tls
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            f"log_dest file {folder}/mosquitto.log\n"
            # As root, mosquitto drops to user "mosquitto", who cannot write in pytest's temp folder.
            + ("user root\n" if os.geteuid() == 0 else ""))

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        assert wait_until(lambda: not refuses(self.port), timeout=10), "mosquitto did not start listening"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean stop saves the sessions to disk
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed: run .ci/install-mosquitto.sh")
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(folder)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A paho subscriber with a persistent session (QoS 1), reconnecting by itself."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test subscriber did not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self.messages.append((message.topic, json.loads(message.payload)))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout)

    def wait_for_distinct(self, count: int, timeout: float = 15.0) -> bool:
        """Wait for ``count`` different payloads (QoS 1 may deliver one twice)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: len({json.dumps(p, sort_keys=True) for _, p in self.messages}) >= count, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_ekuiper_mqtt_rule_and_topic_templates(rules: RuleManager, runtime: ekws.Runtime,
                                               broker: Broker) -> None:
    sub = Subscriber(broker.port, "#")
    try:
        # eKuiper's CLI docs rule ("create rule rule1"), the broker address pointed at this test's.
        body = json.loads('{"sql": "SELECT * from demo","actions": [{"log":  {}},{"mqtt":  '
                          '{"server":"tcp://127.0.0.1:1883", "topic":"demoSink"}}]}')
        body["actions"][1]["mqtt"]["server"] = f"tcp://127.0.0.1:{broker.port}"
        body["id"] = "rule1"
        rules.create(body)
        rules.create({"id": "fleet",
                      "sql": "SELECT temperature, device, meta(stream) AS s FROM demo WHERE device <> ''",
                      "actions": [{"mqtt": {"server": f"mqtt://127.0.0.1:{broker.port}", "qos": 2,
                                            "sendSingle": True,  # as eKuiper's dynamic-topic example
                                            "topic": "devices/{{.s}}/{device}"}}]})
        assert wait_until(lambda: rules.status("rule1")["sink_mqtt_1_0_connection_status"] == 1
                          and rules.status("fleet")["sink_mqtt_0_0_connection_status"] == 1, timeout=10)
        send(runtime, {"device": "d1", "temperature": 20}, {"temperature": 21})
        assert sub.wait_for(3)
        got = sorted(sub.messages, key=lambda m: (m[0], json.dumps(m[1])))
        # rule1 has eKuiper's default (sendSingle false): a message an emission, the array of its rows.
        assert got == [("demoSink", [{"device": "d1", "temperature": 20}]),
                       ("demoSink", [{"temperature": 21}]),
                       ("devices/demo/d1", {"temperature": 20, "device": "d1", "s": "demo"})]
        assert wait_until(lambda: rules.status("fleet")["sink_mqtt_0_0_records_out_total"] == 1)
    finally:
        sub.close()


def test_mqtt_template_field_missing_is_counted(rules: RuleManager, runtime: ekws.Runtime,
                                                broker: Broker) -> None:
    rules.create({"id": "t", "stream": "demo",
                  "actions": [{"mqtt": {"server": f"tcp://127.0.0.1:{broker.port}", "topic": "x/{device}",
                                        "sendSingle": True}}]})
    send(runtime, {"temperature": 1})
    assert wait_until(lambda: rules.status("t")["sink_mqtt_0_0_exceptions_total"] == 1)
    assert "'x/{device}' needs a field the record lacks" in rules.status("t")["sink_mqtt_0_0_last_exception"]
    assert rules.status("t")["status"] == "running"


def test_mqtt_qos1_broker_restart_loses_nothing(rules: RuleManager, runtime: ekws.Runtime,
                                                broker: Broker) -> None:
    sub = Subscriber(broker.port, "out/#")
    try:
        rules.create({"id": "q1", "stream": "demo", "actions": [{"mqtt": {
            "server": f"tcp://127.0.0.1:{broker.port}", "topic": "out/n", "qos": 1, "clientId": "ekws-q1",
            "sendSingle": True,
            "reconnect": {"initialDelay": "50ms", "maxDelay": "200ms"}}}]})
        assert wait_until(lambda: rules.status("q1")["sink_mqtt_0_0_connection_status"] == 1, timeout=10)
        send(runtime, *({"n": n} for n in range(10)))
        assert sub.wait_for(10)

        broker.stop()
        assert wait_until(lambda: rules.status("q1")["sink_mqtt_0_0_connection_status"] == -1, timeout=10)
        send(runtime, *({"n": n} for n in range(10, 40)))
        assert wait_until(lambda: rules.status("q1")["sink_mqtt_0_0_records_in_total"] == 40)
        status = rules.status("q1")
        assert status["sink_mqtt_0_0_buffer_length"] == 30
        assert status["sink_mqtt_0_0_dropped_total"] == 0

        broker.start()
        assert sub.wait_for_distinct(40, timeout=30), f"got {len(sub.messages)}; {rules.status('q1')}"
        numbers = [payload["n"] for _, payload in sub.messages]
        assert sorted(set(numbers)) == list(range(40))  # QoS 1: nothing lost (a resend may duplicate)
        assert wait_until(lambda: rules.status("q1")["sink_mqtt_0_0_buffer_length"] == 0)
        status = rules.status("q1")
        assert status["sink_mqtt_0_0_connects_total"] == 2
        assert status["sink_mqtt_0_0_exceptions_total"] >= 1  # the disconnect, counted
    finally:
        sub.close()


def test_mqtt_over_tls(rules: RuleManager, runtime: ekws.Runtime, tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed: run .ci/install-mosquitto.sh")
    pki = make_pki(tmp_path)
    folder = tmp_path / "tls-broker"
    folder.mkdir()
    broker = Broker(folder, pki)
    broker.start()
    sub = Subscriber(broker.port, "secure/#")
    try:
        assert wait_until(lambda: not refuses(broker.tls_port))
        rules.create({"id": "tls", "stream": "demo", "actions": [{"mqtt": {
            "server": f"ssl://127.0.0.1:{broker.tls_port}", "topic": "secure/x", "qos": 1, "sendSingle": True,
            "rootCaPath": str(pki.ca_path)}}]})
        other = make_pki(tmp_path, name="other")
        rules.create({"id": "untrusted", "stream": "demo", "actions": [{"mqtt": {
            "server": f"mqtts://127.0.0.1:{broker.tls_port}", "topic": "secure/y",
            "rootCaPath": str(other.ca_path)}}]})
        assert wait_until(lambda: rules.status("tls")["sink_mqtt_0_0_connection_status"] == 1, timeout=10)
        send(runtime, {"over": "tls"})
        assert sub.wait_for(1)
        assert sub.messages == [("secure/x", {"over": "tls"})]
        assert rules.status("untrusted")["sink_mqtt_0_0_connection_status"] == -1
        assert wait_until(lambda: rules.status("untrusted")["sink_mqtt_0_0_exceptions_total"] >= 1)
        assert "cannot connect" in rules.status("untrusted")["sink_mqtt_0_0_last_exception"]
        assert rules.status("untrusted")["sink_mqtt_0_0_records_out_total"] == 0
    finally:
        sub.close()
        rules.close()
        broker.stop()


@pytest.mark.parametrize(("props", "match"), [
    ({"topic": "t"}, "server: is required"),
    ({"server": "http://127.0.0.1:1", "topic": "t"}, "server: expected tcp://"),
    ({"server": "tcp://127.0.0.1:1"}, "topic: is required"),
    ({"server": "tcp://127.0.0.1:1", "topic": "a/#"}, "no wildcards"),
    ({"server": "tcp://127.0.0.1:1", "topic": "t", "qos": 3}, "qos: expected one of 0, 1, 2"),
    ({"server": "tcp://127.0.0.1:1", "topic": "t", "reconnect": {"initialDelay": "soon"}},
     "mqtt #0: reconnect: initialDelay"),
    ({"server": "tcp://127.0.0.1:1", "topic": "t", "user": "me"}, "user: unknown prop"),
])
def test_mqtt_props_are_checked(props: dict[str, Any], match: str) -> None:
    with pytest.raises(ActionError, match=match):
        parse_action({"mqtt": props}, 0)


def test_without_paho_the_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['paho'] = None; sys.modules['paho.mqtt'] = None; "
            "sys.modules['paho.mqtt.client'] = None\n"
            "from ekws.actions import ActionError, parse_action\n"
            "try:\n"
            "    parse_action({'mqtt': {'server': 'tcp://127.0.0.1:1883', 'topic': 't'}}, 0)\n"
            "except ActionError as exc:\n"
            "    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'ekws[mqtt]'" in proc.stdout and "action mqtt #0" in proc.stdout
