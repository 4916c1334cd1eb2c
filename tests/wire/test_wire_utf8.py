"""Text that is not UTF-8 fails the connection with 1007 (RFC 6455 8.1), in both modes.

The bad bytes go on the wire from raw sockets (a conforming library refuses
to send them); the close frame ekws answers with is read back with the
``websockets`` library's frame parser. Each case leaves the fragmented message
unfinished: a close that arrives anyway proves the check fails fast, at the
first fragment that holds bad bytes, not at the end of the message.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.client import Recorder, write_etc
from helpers.peers import RawConnection, RawPeer, read_close, ws_frame
from helpers.server import Collector, ErrorLog, raw_upgrade, wait_until
from helpers.server import write_etc as write_server_etc
from websockets.frames import Close, Opcode

import ekws

pytestmark = pytest.mark.timeout(30)

BAD_FRAGMENT = b'{"a": "caf\xc3\xa9 \xff'  # valid UTF-8, then a byte that never is


def create(rt: ekws.Runtime, fmt: str, addr: bool) -> None:
    key = ', CONF_KEY="remote"' if addr else ""
    rt.create_stream(f'CREATE STREAM feed () WITH (DATASOURCE="/feed", FORMAT="{fmt}", '
                     f'TYPE="websocket"{key})')


def first_record(fmt: str) -> dict[str, Any]:
    return {"i": 0} if fmt == "json" else {"self": b'{"i": 0}'}


@pytest.mark.parametrize("fmt", ["json", "binary"])
def test_client_mode_fails_with_1007_at_the_first_bad_fragment(tmp_path: Path, fmt: str) -> None:
    closes: queue.Queue[Any] = queue.Queue()

    def on_connect(conn: RawConnection) -> None:
        if conn.index:  # the redial after the failure: stay silent
            return
        conn.send_text(b'{"i": 0}')
        head = ws_frame(Opcode.TEXT, BAD_FRAGMENT, mask=False, fin=False)
        conn.sock.sendall(head[:5])  # the bad fragment in two TCP segments
        time.sleep(0.05)
        conn.sock.sendall(head[5:])
        try:
            closes.put(read_close(conn.sock, masked=True))
        except (OSError, AssertionError) as exc:
            closes.put(exc)

    rec = Recorder()
    with RawPeer(on_connect) as peer, ekws.Runtime(config_dir=write_etc(tmp_path, peer.addr)) as rt:
        create(rt, fmt, addr=True)
        with rt.subscribe("feed", **rec.callbacks):
            close = closes.get(timeout=10)
            assert isinstance(close, Close), close
            assert close.code == 1007
            assert [m.data for m in rec.take(1)] == [first_record(fmt)]
            error = rec.wait_error(lambda e: isinstance(e, ekws.ProtocolError))
            assert error.code == 1007 and peer.addr in str(error) and "UTF-8" in str(error)
            assert wait_until(lambda: rt.status("feed")["exceptions_total"] >= 1)
            assert rt.status("feed")["decode_errors_total"] == 0


def server_runtime(tmp_path: Path, fmt: str) -> tuple[ekws.Runtime, Collector, ErrorLog]:
    rt = ekws.Runtime(config_dir=write_server_etc(tmp_path))
    create(rt, fmt, addr=False)
    return rt, Collector(), ErrorLog()


@pytest.mark.parametrize("fmt", ["json", "binary", "delimited"])
def test_server_mode_fails_with_1007_at_the_first_bad_fragment(tmp_path: Path, fmt: str) -> None:
    rt, got, errors = server_runtime(tmp_path, fmt)
    with rt, rt.subscribe("feed", got, on_error=errors):
        assert rt.server_address is not None
        status, sock = raw_upgrade(rt.server_address[1], "/feed")
        with sock:
            assert status == 101
            sock.sendall(ws_frame(Opcode.TEXT, b'{"i": 0}', mask=True))
            bad = ws_frame(Opcode.TEXT, BAD_FRAGMENT, mask=True, fin=False)
            sock.sendall(bad[:9])
            time.sleep(0.05)
            sock.sendall(bad[9:])
            close = read_close(sock, masked=False)
            assert close.code == 1007
        assert got.wait_for(1)
        if fmt != "delimited":
            assert got.data == [first_record(fmt)]
        assert wait_until(lambda: any(isinstance(e, ekws.ProtocolError) for e in errors.errors))
        error = next(e for e in errors.errors if isinstance(e, ekws.ProtocolError))
        assert error.code == 1007 and "peer 127.0.0.1:" in str(error)
        assert wait_until(lambda: rt.status("feed")["connections"] == 0)


def test_whole_bad_text_frame_and_bad_close_reason_are_1007(tmp_path: Path) -> None:
    rt, got, errors = server_runtime(tmp_path, "json")
    with rt, rt.subscribe("feed", got, on_error=errors):
        assert rt.server_address is not None
        port = rt.server_address[1]
        _, sock = raw_upgrade(port, "/feed")
        with sock:
            sock.sendall(ws_frame(Opcode.TEXT, b'{"a": "\xed\xa0\x80"}', mask=True))  # an encoded surrogate
            assert read_close(sock, masked=False).code == 1007
        _, sock = raw_upgrade(port, "/feed")
        with sock:
            sock.sendall(ws_frame(Opcode.CLOSE, b"\x03\xe8\xff\xfe", mask=True))
            assert read_close(sock, masked=False).code == 1007
        assert wait_until(lambda: sum(isinstance(e, ekws.ProtocolError) for e in errors.errors) == 2)
        assert got.data == []


def test_binary_frame_with_bad_utf8_stays_a_decode_error(tmp_path: Path) -> None:
    """Binary payloads are not text: for FORMAT json they are one message's DecodeError."""
    rt, got, errors = server_runtime(tmp_path, "json")
    with rt, rt.subscribe("feed", got, on_error=errors):
        assert rt.server_address is not None
        _, sock = raw_upgrade(rt.server_address[1], "/feed")
        with sock:
            sock.sendall(ws_frame(Opcode.BINARY, b'{"a": "\xff"}', mask=True))
            sock.sendall(ws_frame(Opcode.TEXT, b'{"i": 1}', mask=True))
            assert got.wait_for(1)
            assert got.data == [{"i": 1}]
            assert rt.status("feed")["decode_errors_total"] == 1
            assert rt.status("feed")["connections"] == 1
