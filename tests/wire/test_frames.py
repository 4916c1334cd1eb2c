"""Tests for ekws.wire.frames, against frames built and parsed by the ``websockets`` library."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ekws.errors import MessageTooBig, ProtocolError
from ekws.wire.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    close_payload,
    encode_frame,
    parse_close,
)

Message = tuple[int, "bytes | str"]


def ws_frame(opcode: int, data: bytes, *, mask: bool, fin: bool = True) -> bytes:
    """One frame serialized by the independent ``websockets`` implementation."""
    return Frame(Opcode(opcode), data, fin=fin).serialize(mask=mask, extensions=[])


def ws_parse(raw: bytes, *, mask: bool) -> Frame:
    """Parse one frame with ``websockets``; ``mask`` says the frame must be masked."""
    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=mask, extensions=[])
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("websockets wanted more bytes than one whole frame")


def feed_all(parser: FrameParser, chunks: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def conversation(mask: bool) -> tuple[bytes, list[Message]]:
    """A stream covering every length encoding, fragmentation and interleaved control frames."""
    frames: list[bytes] = []
    expected: list[Message] = []
    for size in (0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70001):
        payload = bytes((i * 7 + size) & 0xFF for i in range(size))
        frames.append(ws_frame(OP_BINARY, payload, mask=mask))
        expected.append((OP_BINARY, payload))
    text = '{"temperature": 21.5, "unit": "°C", "id": "sensor-ü"}'.encode()
    frames.append(ws_frame(OP_TEXT, text, mask=mask))
    expected.append((OP_TEXT, text.decode()))  # text messages come out decoded
    # A fragmented text message with a ping, a pong and an empty fragment inside.
    frames += [
        ws_frame(OP_TEXT, text[:10], mask=mask, fin=False),
        ws_frame(OP_PING, b"are you there", mask=mask),
        ws_frame(OP_CONT, b"", mask=mask, fin=False),
        ws_frame(OP_CONT, text[10:30], mask=mask, fin=False),
        ws_frame(OP_PONG, b"", mask=mask),
        ws_frame(OP_CONT, text[30:], mask=mask),
    ]
    expected += [(OP_PING, b"are you there"), (OP_PONG, b""), (OP_TEXT, text.decode())]
    # A fragmented binary message whose fragments use 16- and 64-bit lengths.
    big = bytes(range(256)) * 300
    frames += [
        ws_frame(OP_BINARY, big[:200], mask=mask, fin=False),
        ws_frame(OP_CONT, big[200:70000], mask=mask, fin=False),
        ws_frame(OP_CONT, big[70000:], mask=mask),
    ]
    expected.append((OP_BINARY, big))
    frames.append(ws_frame(OP_PING, b"x" * 125, mask=mask))
    expected.append((OP_PING, b"x" * 125))
    frames.append(ws_frame(OP_CLOSE, close_payload(1000, "bye"), mask=mask))
    expected.append((OP_CLOSE, b"\x03\xe8bye"))
    return b"".join(frames), expected


SMALL_STREAM_FRAMES = [
    (OP_TEXT, b"hello", True),
    (OP_TEXT, b"wor", False),
    (OP_PING, b"p", True),
    (OP_CONT, b"ld", True),
    (OP_BINARY, b"\x00" * 130, True),
    (OP_CLOSE, b"", True),
]
SMALL_STREAM_EXPECTED = [
    (OP_TEXT, "hello"),
    (OP_PING, b"p"),
    (OP_TEXT, "world"),
    (OP_BINARY, b"\x00" * 130),
    (OP_CLOSE, b""),
]


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
def test_whole_stream_in_one_feed(masked: bool) -> None:
    stream, expected = conversation(masked)
    parser = FrameParser(masked=masked)
    assert parser.feed(stream) == expected
    assert parser.buffered == 0


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096, 65536])
def test_fixed_chunk_sizes(masked: bool, chunk: int) -> None:
    stream, expected = conversation(masked)
    parser = FrameParser(masked=masked)
    got = feed_all(parser, [stream[i : i + chunk] for i in range(0, len(stream), chunk)])
    assert got == expected
    assert parser.buffered == 0


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
def test_every_split_point(masked: bool) -> None:
    stream = b"".join(ws_frame(op, p, mask=masked, fin=fin) for op, p, fin in SMALL_STREAM_FRAMES)
    for cut in range(len(stream) + 1):
        for second in (cut, (cut + len(stream)) // 2):
            parser = FrameParser(masked=masked)
            got = feed_all(parser, [stream[:cut], stream[cut:second], stream[second:]])
            assert got == SMALL_STREAM_EXPECTED, (cut, second)
            assert parser.buffered == 0


@settings(max_examples=60, deadline=None)
@given(masked=st.booleans(), cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40))
def test_random_splits_of_the_full_stream(masked: bool, cuts: list[int]) -> None:
    stream, expected = conversation(masked)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:])]
    assert feed_all(FrameParser(masked=masked), chunks) == expected


def test_buffered_counts_partial_frame_and_open_fragments() -> None:
    parser = FrameParser(masked=False)
    first = ws_frame(OP_TEXT, b"a" * 100, mask=False, fin=False)
    assert parser.feed(first) == []
    assert parser.buffered == 100
    second = ws_frame(OP_CONT, b"b" * 1000, mask=False)
    assert parser.feed(second[:500]) == []
    assert parser.buffered == 100 + 500
    assert parser.feed(second[500:]) == [(OP_TEXT, "a" * 100 + "b" * 1000)]
    assert parser.buffered == 0


def test_accepts_bytearray_and_returns_bytes() -> None:
    parser = FrameParser(masked=True)
    got = parser.feed(bytearray(ws_frame(OP_BINARY, b"abc", mask=True)))
    assert got == [(OP_BINARY, b"abc")]
    assert type(got[0][1]) is bytes


# encode_frame, checked by the websockets parser


ENCODE_CASES = [
    (opcode, size)
    for opcode in (OP_TEXT, OP_BINARY, OP_CONT, OP_CLOSE, OP_PING, OP_PONG)
    for size in (0, 1, 5, 125, 126, 65535, 65536)
    if opcode < OP_CLOSE or size <= 125  # control frames are at most 125 bytes
]


@pytest.mark.parametrize(("opcode", "size"), ENCODE_CASES)
@pytest.mark.parametrize("mask", [True, False])
def test_encode_frame_read_by_websockets(opcode: int, size: int, mask: bool) -> None:
    filler = b"a" if opcode in (OP_TEXT, OP_CONT) else b"\xa5"
    payload = close_payload(1000, "x" * (size - 2)) if opcode == OP_CLOSE and size >= 2 else filler * size
    if opcode == OP_CLOSE and size == 1:
        payload = b""
    raw = encode_frame(opcode, payload, mask=mask)
    assert bool(raw[1] & 0x80) is mask
    frame = ws_parse(raw, mask=mask)
    assert (frame.opcode, bytes(frame.data), frame.fin) == (opcode, payload, True)
    if opcode == OP_CONT:
        with pytest.raises(ProtocolError, match="continuation"):
            FrameParser(masked=mask).feed(raw)
    else:
        expected = payload.decode() if opcode == OP_TEXT else payload
        assert FrameParser(masked=mask).feed(raw) == [(opcode, expected)]


def test_encode_frame_uses_a_fresh_mask_key() -> None:
    keys = {encode_frame(OP_TEXT, b"same", mask=True)[2:6] for _ in range(8)}
    assert len(keys) > 1


def test_encode_frame_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="opcode"):
        encode_frame(3, b"", mask=False)
    with pytest.raises(ValueError, match="125"):
        encode_frame(OP_PING, b"x" * 126, mask=True)


# Protocol errors


def header(b0: int, b1: int, *, masked: bool) -> bytes:
    return bytes((b0, b1 | (0x80 if masked else 0))) + (b"\x01\x02\x03\x04" if masked else b"")


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
@pytest.mark.parametrize(
    ("raw_head", "match"),
    [
        (lambda m: header(0xC1, 0, masked=m), "reserved bits"),
        (lambda m: header(0xA1, 0, masked=m), "reserved bits"),
        (lambda m: header(0x91, 0, masked=m), "reserved bits"),
        (lambda m: header(0x83, 0, masked=m), "reserved opcode 3"),
        (lambda m: header(0x87, 0, masked=m), "reserved opcode 7"),
        (lambda m: header(0x8B, 0, masked=m), "reserved opcode 11"),
        (lambda m: header(0x8F, 0, masked=m), "reserved opcode 15"),
        (lambda m: header(0x09, 0, masked=m), "fragmented"),
        (lambda m: header(0x88, 126, masked=m), "over 125"),
        (lambda m: header(0x8A, 127, masked=m), "over 125"),
        (lambda m: header(0x80, 0, masked=m), "continuation"),
        (lambda m: header(0x00, 0, masked=m), "continuation"),
        (lambda m: header(0x01, 0, masked=m) + header(0x82, 0, masked=m), "fragmented message is open"),
        (lambda m: header(0x02, 0, masked=m) + header(0x01, 0, masked=m), "fragmented message is open"),
        (lambda m: header(0x81, 0, masked=not m), "masked"),
        (lambda m: header(0x82, 127, masked=m)[:2] + b"\x80" + bytes(7), "most significant bit"),
    ],
)
def test_protocol_errors(masked: bool, raw_head: object, match: str) -> None:
    assert callable(raw_head)
    raw: bytes = raw_head(masked)
    if match == "most significant bit" and masked:
        raw += b"\x01\x02\x03\x04"
    parser = FrameParser(masked=masked)
    with pytest.raises(ProtocolError, match=match) as info:
        parser.feed(raw)
    assert info.value.code == 1002
    assert not isinstance(info.value, MessageTooBig)
    # The parser stays failed, even on valid input.
    with pytest.raises(ProtocolError) as again:
        parser.feed(ws_frame(OP_TEXT, b"ok", mask=masked))
    assert type(again.value) is type(info.value) and str(again.value) == str(info.value)
    assert parser.buffered == 0


def test_masking_messages_name_the_side() -> None:
    with pytest.raises(ProtocolError, match="from client is not masked"):
        FrameParser(masked=True).feed(ws_frame(OP_TEXT, b"hi", mask=False))
    with pytest.raises(ProtocolError, match="from server is masked"):
        FrameParser(masked=False).feed(ws_frame(OP_TEXT, b"hi", mask=True))


def test_error_raised_on_header_alone() -> None:
    parser = FrameParser(masked=False)
    with pytest.raises(ProtocolError, match="reserved bits"):
        parser.feed(b"\xc2\x7f")  # RSV1 with a 64-bit length whose bytes have not arrived
    with pytest.raises(ProtocolError):
        parser.feed(b"")


# Message size limit


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
def test_message_too_big_on_the_header_alone(masked: bool) -> None:
    parser = FrameParser(masked=masked, max_message_size=1000)
    raw = ws_frame(OP_BINARY, b"z" * 1001, mask=masked)
    head_len = 4 + (4 if masked else 0)
    with pytest.raises(MessageTooBig) as info:
        parser.feed(raw[:head_len])
    assert info.value.code == 1009
    assert isinstance(info.value, ProtocolError)
    with pytest.raises(MessageTooBig):
        parser.feed(raw[head_len:])


def test_message_too_big_counts_all_fragments() -> None:
    parser = FrameParser(masked=False, max_message_size=100)
    assert parser.feed(ws_frame(OP_TEXT, b"a" * 60, mask=False, fin=False)) == []
    assert parser.feed(ws_frame(OP_PING, b"p" * 120, mask=False)) == [(OP_PING, b"p" * 120)]
    with pytest.raises(MessageTooBig, match="101"):
        parser.feed(ws_frame(OP_CONT, b"b" * 41, mask=False)[:2])


def test_message_at_the_limit_passes() -> None:
    parser = FrameParser(masked=True, max_message_size=100)
    frames = ws_frame(OP_TEXT, b"a" * 40, mask=True, fin=False) + ws_frame(OP_CONT, b"b" * 60, mask=True)
    assert parser.feed(frames) == [(OP_TEXT, "a" * 40 + "b" * 60)]
    # Control frames do not count towards the limit.
    assert FrameParser(masked=False, max_message_size=1).feed(ws_frame(OP_PING, b"pp", mask=False))


def test_zero_or_none_limit_means_unlimited() -> None:
    for limit in (0, None):
        parser = FrameParser(masked=False, max_message_size=limit)
        assert parser.feed(ws_frame(OP_BINARY, b"q" * 70000, mask=False)) == [(OP_BINARY, b"q" * 70000)]
    with pytest.raises(ValueError):
        FrameParser(masked=False, max_message_size=-1)


# Close payloads


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014])
@pytest.mark.parametrize("reason", ["", "bye", "naïve ✓"])
def test_close_round_trip(code: int, reason: str) -> None:
    assert parse_close(close_payload(code, reason)) == (code, reason)


def test_close_application_codes_and_empty_payload() -> None:
    assert parse_close(close_payload(3000)) == (3000, "")
    assert parse_close(close_payload(4999, "app")) == (4999, "app")
    assert parse_close(b"") == (None, "")


def test_close_payload_cuts_long_reason_on_a_character_boundary() -> None:
    payload = close_payload(1000, "é" * 100)  # 200 bytes of UTF-8
    assert len(payload) <= 125
    code, reason = parse_close(payload)
    assert code == 1000
    assert reason == "é" * 61


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_invalid_codes(code: int) -> None:
    with pytest.raises(ValueError):
        close_payload(code)
    with pytest.raises(ProtocolError, match=str(code)) as info:
        parse_close(code.to_bytes(2, "big"))
    assert info.value.code == 1002


def test_parse_close_errors() -> None:
    with pytest.raises(ProtocolError, match="1 byte") as info:
        parse_close(b"\x03")
    assert info.value.code == 1002
    with pytest.raises(ProtocolError, match="UTF-8") as info:
        parse_close(b"\x03\xe8\xff\xfe")
    assert info.value.code == 1007


# Robustness


@settings(max_examples=400, deadline=None)
@given(
    masked=st.booleans(),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
    limit=st.sampled_from([None, 0, 10, 200]),
)
def test_arbitrary_bytes_raise_only_protocol_errors(
    masked: bool, data: bytes, cuts: list[int], limit: int | None
) -> None:
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    parser = FrameParser(masked=masked, max_message_size=limit)
    try:
        for a, b in zip(points, points[1:]):
            for opcode, payload in parser.feed(data[a:b]):
                assert opcode in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)
                assert type(payload) is (str if opcode == OP_TEXT else bytes)
                if opcode >= OP_CLOSE:
                    assert len(payload) <= 125
                    if opcode == OP_CLOSE:
                        assert isinstance(payload, bytes)
                        try:
                            parse_close(payload)
                        except ProtocolError:
                            pass
    except ProtocolError:
        # A failed parser drops what it held and refuses more input.
        assert parser.buffered == 0
        with pytest.raises(ProtocolError):
            parser.feed(b"\x81\x00")
    else:
        # Nothing lost or invented: what is held is at most what came in.
        assert 0 <= parser.buffered <= len(data)


@settings(max_examples=200, deadline=None)
@given(
    masked=st.booleans(),
    messages=st.lists(
        st.one_of(
            st.tuples(st.just(OP_TEXT), st.text(max_size=100).map(str.encode), st.integers(1, 4)),
            st.tuples(st.just(OP_BINARY), st.binary(max_size=300), st.integers(1, 4)),
        ),
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_random_fragmented_messages_round_trip(
    masked: bool, messages: list[tuple[int, bytes, int]], cuts: list[int]
) -> None:
    raw: list[bytes] = []
    for opcode, payload, pieces in messages:
        step = max(1, -(-len(payload) // pieces))
        parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            raw.append(ws_frame(opcode if index == 0 else OP_CONT, part, mask=masked, fin=last))
    stream = b"".join(raw)
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    got = feed_all(FrameParser(masked=masked), [stream[a:b] for a, b in zip(points, points[1:])])
    # Text split anywhere (even inside a character) comes out whole and decoded.
    assert got == [(op, payload.decode() if op == OP_TEXT else payload) for op, payload, _ in messages]


@st.composite
def noisy_stream(draw: st.DrawFn, masked: bool) -> bytes:
    """Mostly valid frames with random bytes and flipped header bits mixed in."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["frame", "noise", "flip"]))
        if kind == "noise":
            parts.append(draw(st.binary(max_size=20)))
            continue
        opcode = draw(st.sampled_from([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]))
        size = draw(st.sampled_from([0, 1, 2, 125, 126, 300]))
        if opcode >= OP_CLOSE:
            size = min(size, 125)
        raw = bytearray(ws_frame(opcode, b"\x00" * size, mask=masked, fin=draw(st.booleans()) or opcode >= 8))
        if kind == "flip":
            raw[draw(st.integers(0, 1))] ^= 1 << draw(st.integers(0, 7))
        parts.append(bytes(raw))
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), masked=st.booleans(), limit=st.sampled_from([None, 100, 200]))
def test_noisy_streams_raise_only_protocol_errors(
    data: st.DataObject, masked: bool, limit: int | None
) -> None:
    stream = data.draw(noisy_stream(masked))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    points = sorted({0, len(stream), *cuts})
    whole = FrameParser(masked=masked, max_message_size=limit)
    split = FrameParser(masked=masked, max_message_size=limit)
    try:
        expected: list[Message] | None = whole.feed(stream)
    except ProtocolError as exc:
        expected, error = None, type(exc)
    try:
        got = feed_all(split, [stream[a:b] for a, b in zip(points, points[1:])])
    except ProtocolError as exc:
        # The same stream fails the same way however it is split.
        assert expected is None and type(exc) is error
    else:
        assert got == expected
