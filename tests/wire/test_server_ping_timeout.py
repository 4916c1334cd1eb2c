"""Server mode honours pingTimeout (issue 20): a silent peer is dropped pingTimeout after the ping.

The peer is a raw socket that upgrades and then never answers: it only
reads, and times when the ping and the close frame arrive.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from helpers.server import raw_upgrade, server_stream, wait_until

pytestmark = pytest.mark.timeout(30)


def _read_frame(sock: socket.socket) -> tuple[int, bytes, float]:
    """One unmasked server frame with a short payload: (opcode, payload, arrival time)."""
    head = sock.recv(2, socket.MSG_WAITALL)
    arrived = time.monotonic()
    assert len(head) == 2, head
    length = head[1] & 0x7F
    assert length < 126
    payload = sock.recv(length, socket.MSG_WAITALL) if length else b""
    return head[0] & 0x0F, payload, arrived


def test_a_silent_peer_is_dropped_ping_timeout_after_the_ping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = {"pingInterval": 1.0, "pingTimeout": 0.3}
    with server_stream(tmp_path, conf=conf) as (rt, _sub, _got, _url):
        assert rt.server_address is not None
        status, mute = raw_upgrade(rt.server_address[1], "/ws")
        with mute:
            assert status == 101
            mute.settimeout(5)
            opcode, _, pinged = _read_frame(mute)
            assert opcode == 9  # a ping after pingInterval of silence
            opcode, payload, closed = _read_frame(mute)
            assert opcode == 8 and int.from_bytes(payload[:2], "big") == 1011, payload
            waited = closed - pinged
            assert 0.25 <= waited <= 0.8, waited  # pingTimeout, not another pingInterval
            assert wait_until(lambda: rt.status("demo")["connections"] == 0)
    assert "no answer to a ping within 0.3 s (pingTimeout)" in caplog.text, caplog.text
