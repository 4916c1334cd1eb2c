"""Tests for ekws.wire.protocol.Connection, the sans-I/O protocol both modes read through.

Frames come from the ``websockets`` library's serializer, and what the
connection owes the peer is parsed back with it.
"""

from __future__ import annotations

import tracemalloc

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from ekws.errors import MessageTooBig, ProtocolError
from ekws.wire.protocol import CLOSED, CLOSING, OPEN, Connection

WHERE = "stream s: peer 10.0.0.9:5000 (connection 3)"


def frame(opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=mask, extensions=[])


def parse(raw: bytes, *, masked: bool = False) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=masked, extensions=[])
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


def server(limit: int | None = None) -> Connection:
    return Connection(client=False, where=WHERE, max_message_size=limit)


def test_messages_keep_their_type_and_order_and_pings_are_answered() -> None:
    conn = server()
    data = frame(Opcode.TEXT, "h\u00e9".encode()) + frame(Opcode.PING, b"p1")
    data += frame(Opcode.BINARY, b"\x00\xff")
    assert conn.receive_data(data) == ["h\u00e9", b"\x00\xff"]
    out = parse(conn.data_to_send())
    assert [(f.opcode, f.data) for f in out] == [(Opcode.PONG, b"p1")]
    assert conn.data_to_send() == b""
    assert conn.state is OPEN


def test_client_side_masks_what_it_sends() -> None:
    conn = Connection(client=True, where="ws://h:1/p")
    conn.receive_data(frame(Opcode.PING, b"x", mask=False))
    (pong,) = parse(conn.data_to_send(), masked=True)
    assert pong.opcode is Opcode.PONG and pong.data == b"x"


def test_peer_close_is_echoed_and_ends_input() -> None:
    conn = server()
    data = frame(Opcode.TEXT, b"a") + frame(Opcode.CLOSE, Close(1001, "bye").serialize())
    data += frame(Opcode.TEXT, b"b")
    assert conn.receive_data(data) == ["a"]
    assert conn.state is CLOSED and (conn.close_code, conn.close_reason) == (1001, "bye")
    (echo,) = parse(conn.data_to_send())
    assert echo.opcode is Opcode.CLOSE and Close.parse(echo.data).code == 1001
    assert conn.receive_data(frame(Opcode.TEXT, b"late")) == []
    assert conn.error is None


def test_our_close_waits_for_the_peers() -> None:
    conn = server()
    conn.close(1001, "stream stopped")
    assert conn.state is CLOSING
    (sent,) = parse(conn.data_to_send())
    assert Close.parse(sent.data) == Close(1001, "stream stopped")
    conn.receive_data(frame(Opcode.CLOSE, Close(1001, "").serialize()))
    assert conn.state is CLOSED and conn.data_to_send() == b""  # not echoed twice


def test_eof_without_close_is_1006() -> None:
    conn = server()
    conn.receive_eof()
    assert conn.state is CLOSED and conn.close_code == 1006


@pytest.mark.parametrize(
    ("data", "code", "kind"),
    [
        (frame(Opcode.TEXT, b"x", mask=False), 1002, ProtocolError),
        (frame(Opcode.TEXT, b"\xff"), 1007, ProtocolError),
        (frame(Opcode.BINARY, b"y" * 11), 1009, MessageTooBig),
        (frame(Opcode.CLOSE, b"\x03\xe8\xff"), 1007, ProtocolError),
        (frame(Opcode.CLOSE, b"\x03\xed"), 1002, ProtocolError),  # 1005 is never sent
    ],
)
def test_violations_fail_with_their_code_and_name_the_peer(data: bytes, code: int, kind: type) -> None:
    conn = server(limit=10)
    assert conn.receive_data(frame(Opcode.TEXT, b"ok") + data) == ["ok"]
    assert conn.state is CLOSED
    assert type(conn.error) is kind and conn.error.code == code and str(conn.error).startswith(WHERE)
    (sent,) = parse(conn.data_to_send())
    assert Close.parse(sent.data).code == code


def test_a_failed_connection_never_redelivers_earlier_frames() -> None:
    conn = server()
    assert conn.receive_data(frame(Opcode.TEXT, b"first")) == ["first"]
    assert conn.receive_data(frame(Opcode.TEXT, b"second") + b"\xc1\x80") == ["second"]  # then RSV1
    assert conn.receive_data(frame(Opcode.TEXT, b"third")) == []


def test_text_split_inside_a_character_across_fragments_and_reads() -> None:
    conn = server()
    text = "\u20ac" * 3  # 9 bytes, cut inside characters
    raw = text.encode()
    data = frame(Opcode.TEXT, raw[:2], fin=False) + frame(Opcode.CONT, raw[2:7], fin=False)
    data += frame(Opcode.CONT, raw[7:])
    got = []
    for i in range(0, len(data), 3):
        got += conn.receive_data(data[i : i + 3])
    assert got == [text] and conn.state is OPEN


def test_bad_utf8_fails_at_its_fragment_before_the_message_ends() -> None:
    conn = server()
    assert conn.receive_data(frame(Opcode.TEXT, b"fine so far", fin=False)) == []
    assert conn.state is OPEN
    conn.receive_data(frame(Opcode.CONT, b"\xc3\x28", fin=False))
    assert conn.state is CLOSED and conn.failed_code == 1007


def test_zero_length_fragments_do_not_grow_memory() -> None:
    conn = server(limit=1 << 20)
    conn.receive_data(frame(Opcode.BINARY, b"start", fin=False))
    chunk = frame(Opcode.CONT, b"", fin=False) * 10_000
    tracemalloc.start()
    try:
        for _ in range(30):  # 300,000 empty fragments
            conn.receive_data(chunk)
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 200_000, current
    assert conn.receive_data(frame(Opcode.CONT, b"end")) == [b"startend"]


@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_4_mib_in_64_byte_fragments_passes_when_the_limit_allows(opcode: Opcode) -> None:
    """Autobahn 9.3.1/9.4.1: 65,536 fragments of 64 bytes."""
    conn = server(limit=4 << 20)
    piece = b"*" * 64
    data = frame(opcode, piece, fin=False) + frame(Opcode.CONT, piece, fin=False) * 65534
    data += frame(Opcode.CONT, piece)
    got = []
    for i in range(0, len(data), 65536):
        got += conn.receive_data(data[i : i + 65536])
    assert len(got) == 1 and len(got[0]) == 4 << 20 and conn.state is OPEN
    too_big = server(limit=(4 << 20) - 1)
    too_big.receive_data(data)
    assert too_big.failed_code == 1009


def test_keepalive_ping_and_fail() -> None:
    conn = server()
    conn.ping()
    assert conn.awaiting_pong
    (ping,) = parse(conn.data_to_send())
    assert ping.opcode is Opcode.PING
    conn.receive_data(frame(Opcode.PONG, b""))
    assert not conn.awaiting_pong
    conn.fail(1011, "keepalive ping timeout")
    assert conn.state is CLOSED and conn.failed_code == 1011
    assert Close.parse(parse(conn.data_to_send())[0].data).code == 1011
