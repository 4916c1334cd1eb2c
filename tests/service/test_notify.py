"""systemd's notify protocol, checked on a real unix datagram socket."""

from __future__ import annotations

import os
import socket
import time

import pytest
from helpers.service import S2_SQL, Service, write_etc

from ekws.service.notify import Notifier


class Listener:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(10)
        self.messages: list[str] = []

    def next_with(self, key: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if key in message.split("\n") or any(line.startswith(key) for line in message.split("\n")):
                    self.messages.remove(message)
                    return message
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                raise AssertionError(f"no {key} within {timeout} s; got {self.messages}") from None

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    sock = Listener(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled and notifier.send("READY=1") is False and notifier.watchdog_interval is None


def test_messages_reach_a_path_socket(listener, tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    notifier.ready("1 stream")
    assert listener.next_with("READY=1").split("\n")[:2] == ["READY=1", "STATUS=1 stream"]
    notifier.stopping()
    assert "STOPPING=1" in listener.next_with("STOPPING=1")


def test_messages_reach_an_abstract_socket():
    name = f"ekws-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(100) == b"STATUS=hello"


def test_the_watchdog_pings_at_half_the_period_while_alive(listener, tmp_path):
    alive = [True]
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"})
    assert notifier.watchdog_interval == pytest.approx(0.1)
    start = time.monotonic()
    notifier.start_watchdog(lambda: alive[0])
    listener.next_with("WATCHDOG=1")
    listener.next_with("WATCHDOG=1")
    assert time.monotonic() - start >= 0.18
    alive[0] = False
    time.sleep(0.3)
    listener.messages.clear()
    with pytest.raises(AssertionError):
        listener.next_with("WATCHDOG=1", timeout=0.35)
    notifier.close()


def test_a_watchdog_meant_for_another_pid_is_ignored(tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval is None


def test_the_service_reports_ready_status_watchdog_and_stopping(listener, tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "300000"}
    with Service(write_etc(tmp_path), env=env) as svc:
        ready = listener.next_with("READY=1").split("\n")
        assert f"MAINPID={svc.proc.pid}" in ready
        assert f"STATUS=1 stream; REST API http://127.0.0.1:{svc.port}" in ready
        listener.next_with("WATCHDOG=1")
        assert svc.request("POST", "/streams", {"sql": S2_SQL})[0] == 201
        assert listener.next_with("STATUS=2 streams").startswith("STATUS=2 streams")
        assert svc.stop() == 0
        assert "STOPPING=1" in listener.next_with("STOPPING=1")
