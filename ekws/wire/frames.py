"""WebSocket frame parsing and encoding (RFC 6455), sans I/O.

ekws dials with websocket-client and upgrades with simple-websocket, then reads
the raw socket itself and hands the bytes to :class:`FrameParser`: websocket-client
validates UTF-8 in pure Python and wsproto builds an event object per frame, and
both are several times slower than this one-pass parser on the many small JSON
messages an edge device receives. Like h11 and ``websockets.protocol`` there is
no networking code here: bytes in, ``(opcode, payload)`` tuples out. The
connection protocol on top (pongs, the close handshake, failing) lives in
:mod:`ekws.wire.protocol`.

No extension is ever negotiated, so RSV bits are a protocol error. A text
message is decoded here, once, and returned as ``str``: ``bytes.decode`` for a
whole frame, an incremental decoder across fragments so that invalid UTF-8
fails at the first fragment that holds it (close code 1007, RFC 6455 8.1).
The stream's decoder then parses the ``str`` without decoding it again.
Binary and control payloads are ``bytes``.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
from typing import Callable, Optional, Union

from ..errors import MessageTooBig, ProtocolError

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "FrameParser",
    "Payload",
    "close_payload",
    "encode_frame",
    "parse_close",
]

logger = logging.getLogger(__name__)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

_CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))
_DATA_OPCODES = frozenset((OP_TEXT, OP_BINARY))
_MAX_CONTROL_PAYLOAD = 125
# Close codes a peer may put on the wire (RFC 6455 7.4 and the IANA registry);
# 1005, 1006 and 1015 are reserved for local use and never sent.
_WIRE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
_NO_LIMIT = 1 << 64  # larger than any 63-bit frame length
# First header bytes allowed outside / inside a fragmented message (FIN, RSV, opcode).
_ALLOWED_BETWEEN_MESSAGES = frozenset((0x81, 0x82, 0x01, 0x02, 0x88, 0x89, 0x8A))
_ALLOWED_IN_MESSAGE = frozenset((0x00, 0x80, 0x88, 0x89, 0x8A))
# Without the C unmask, masked payloads from this size are unmasked with
# translate tables (measured crossover ~450 B).
_TRANSLATE_FROM = 512
_IDENTITY = int.from_bytes(bytes(range(256)), "little")
_XOR_TABLES = [
    (_IDENTITY ^ int.from_bytes(bytes((key,)) * 256, "little")).to_bytes(256, "little") for key in range(256)
]

# The [fast] extra: the ``websockets`` library's C apply_mask unmasks 16 KiB in
# ~0.6 us against ~15 us for the translate tables (23x), and 112 B in ~0.2 us
# against ~0.75 us for the big-int XOR (bench/README.md). A well-kept package,
# already a test dependency, whose speedups module needs nothing else.
# Imported by the first server-side parser, not with ekws (importing
# ``websockets`` costs ~14 ms, which a client-mode script never pays).
# Without it, the big-int XOR and the translate tables.
_MaskFn = Callable[[bytes, bytes], bytes]
_c_apply_mask: Optional[_MaskFn] = None
_c_mask_looked_up = False


def c_apply_mask() -> Optional[_MaskFn]:
    """websockets' C ``apply_mask(data, key)`` when installed (looked up once), else None."""
    global _c_apply_mask, _c_mask_looked_up
    if not _c_mask_looked_up:
        try:
            from websockets.speedups import apply_mask
        except ImportError:  # not installed, or a build without the C extension
            pass
        else:
            _c_apply_mask = apply_mask
        _c_mask_looked_up = True
    return _c_apply_mask


Payload = Union[bytes, str]  # str for a text message, bytes for everything else
Frame = tuple[int, Payload]  # (opcode, payload): a whole data message or a control frame
_new_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class FrameParser:
    """Turns a byte stream from one peer into messages and control frames.

    :meth:`parse` returns complete data messages (fragments reassembled, text
    decoded) and control frames in wire order, and keeps any partial frame for
    the next call. A frame header that breaks the protocol or declares a
    message over ``max_message_size`` ends the input at once, before its
    payload is buffered; so does text that is not UTF-8. The parser then
    refuses further input.

    Memory per peer is bounded by ``max_message_size``: fragments are appended
    to one buffer (a ``bytearray``, or a ``StringIO`` for text), so a message
    split into many tiny or empty frames costs no more than its payload.

    Args:
        masked: True on the server side (every client frame must be masked),
            False on the client side (server frames must not be masked).
        max_message_size: largest message in bytes, summed over its fragments;
            None or 0 means no limit.
    """

    def __init__(self, *, masked: bool, max_message_size: int | None = None) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 or None, got {max_message_size}")
        self._masked = masked
        self._apply_mask = c_apply_mask() if masked else None
        self._limit = max_message_size or _NO_LIMIT
        # Partial frame: chunks kept as received and joined once the frame is
        # complete (``_need`` bytes), so a big message costs O(n), not O(n^2).
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._need = 0
        # Open fragmented message: its opcode (0 when none), payload so far and,
        # for text, the incremental UTF-8 decoder that checks each fragment.
        self._frag_op = 0
        self._frag_bin = bytearray()
        self._frag_text = io.StringIO()
        self._frag_dec = _new_utf8_decoder()
        self._frag_len = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Payload bytes held: a partial frame plus the fragments of an open message."""
        return self._pending_len + self._frag_len

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Parse ``data`` and return the messages and control frames it completes.

        Raises:
            ProtocolError: the peer broke the protocol (code 1002) or sent text
                that is not UTF-8 (1007); also on every call after any error.
                Frames that preceded the violation are lost: use :meth:`parse`
                to keep them.
            MessageTooBig: a frame header declares a message over the limit.
        """
        frames, error = self.parse(data)
        if error is not None:
            raise error
        return frames

    def parse(self, data: bytes | bytearray | memoryview) -> tuple[list[Frame], ProtocolError | None]:
        """Parse ``data``; return the frames it completes and the violation that ended it, if any.

        Never raises for what a peer sends. The frames are those of this call
        only: after an error every call returns ``([], error)`` again (a new
        exception each time, so nothing from an earlier call rides along).
        A bytearray or memoryview (e.g. a ``recv_into`` buffer) is copied once.
        """
        if self._error is not None:
            return [], _again(self._error)
        chunk = data if isinstance(data, bytes) else bytes(data)
        if self._pending:
            self._pending.append(chunk)
            self._pending_len += len(chunk)
            if self._pending_len < self._need:
                return [], None
            chunk = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
        frames: list[Frame] = []
        try:
            self._parse(chunk, frames)
        except ProtocolError as exc:
            error = exc
        except UnicodeDecodeError as exc:
            error = ProtocolError(f"text message is not valid UTF-8: {exc.reason} at byte {exc.start} "
                                  "of a frame", 1007)
        else:
            return frames, None
        logger.debug("frame parser failed, refusing further input: %s", error)
        self._error = error
        self._pending = []
        self._pending_len = 0
        self._frag_bin = bytearray()
        self._frag_text = io.StringIO()
        self._frag_len = 0
        return frames, error

    def _parse(self, data: bytes, out: list[Frame]) -> None:
        # One pass of index arithmetic over ``data``; state lives in locals and
        # is written back at the end. This loop is the hot path: keep it flat.
        # Since RSV bits must be 0, the first byte alone tells the frame kind:
        # 0x81/0x82 whole message, 0x01/0x02 first fragment, 0x00 middle
        # fragment, 0x80 last fragment, 0x88-0x8A control frame.
        append = out.append
        masked = self._masked
        apply_mask = self._apply_mask
        mask_bit = 0x80 if masked else 0
        short_head = 6 if masked else 2
        limit = self._limit
        frag_op = self._frag_op
        frag_len = self._frag_len
        allowed = _ALLOWED_IN_MESSAGE if frag_op else _ALLOWED_BETWEEN_MESSAGES
        end = len(data)
        pos = 0
        need = 2
        while end - pos > 1:
            b0 = data[pos]
            # XOR with the expected mask bit: a 7-bit length < 126 means the
            # masking is right and the length is final; >= 128 means it is wrong.
            length = data[pos + 1] ^ mask_bit
            if b0 not in allowed:
                raise _first_byte_error(b0, frag_op)
            if length < 126:
                head = short_head
            else:
                if length > 127:
                    raise ProtocolError(
                        "frame from client is not masked" if masked else "frame from server is masked"
                    )
                if b0 > 0x87:
                    raise ProtocolError(f"control frame (opcode {b0 & 0x0F}) payload over 125 bytes")
                head = short_head + (2 if length == 126 else 8)
                if end - pos < head:
                    need = head
                    break
                length = int.from_bytes(data[pos + 2 : pos + head - short_head + 2], "big")
                if length >> 63:
                    raise ProtocolError("frame length has the most significant bit set")
            if frag_len + length > limit and b0 < 0x88:
                raise MessageTooBig(
                    f"message of at least {frag_len + length} bytes exceeds maxMessageSize {limit}"
                )
            start = pos + head
            stop = start + length
            if stop > end:
                need = stop - pos
                break
            if not masked:
                payload = data[start:stop]
            elif apply_mask is not None:
                payload = apply_mask(data[start:stop], data[start - 4 : start])
            elif length < _TRANSLATE_FROM:
                # Big-int XOR runs in C; a per-byte loop would dominate the cost.
                payload = (
                    int.from_bytes(data[start:stop], "little")
                    ^ int.from_bytes((data[start - 4 : start] * ((length + 3) >> 2))[:length], "little")
                ).to_bytes(length, "little")
            else:
                payload = _unmask_translate(data, start, stop)
            pos = stop

            if b0 > 0x80:  # a whole data message or a control frame
                if b0 == 0x81:
                    append((1, payload.decode()))  # UnicodeDecodeError: the caller fails with 1007
                else:
                    append((b0 & 0x0F, payload))
            elif b0 == 0x80:  # last fragment
                append((frag_op, self._end_message(frag_op, payload)))
                frag_op = frag_len = 0
                allowed = _ALLOWED_BETWEEN_MESSAGES
            else:  # first or middle fragment
                if b0:
                    frag_op = b0
                    allowed = _ALLOWED_IN_MESSAGE
                if frag_op == 1:
                    self._frag_text.write(self._frag_dec.decode(payload))
                else:
                    self._frag_bin += payload
                frag_len += length

        if pos < end:
            rest = data[pos:] if pos else data
            self._pending = [rest]
            self._pending_len = len(rest)
            self._need = need
        self._frag_op = frag_op
        self._frag_len = frag_len

    def _end_message(self, opcode: int, payload: bytes) -> Payload:
        """The whole payload of a fragmented message, given its last fragment."""
        if opcode == 1:
            text = self._frag_text
            text.write(self._frag_dec.decode(payload, True))
            self._frag_text = io.StringIO()
            self._frag_dec.reset()
            return text.getvalue()
        whole = self._frag_bin
        whole += payload
        self._frag_bin = bytearray()
        return bytes(whole)


def _again(error: ProtocolError) -> ProtocolError:
    """A fresh exception like ``error``, for a parser asked to go on after it."""
    if isinstance(error, MessageTooBig):
        return MessageTooBig(str(error))
    return ProtocolError(str(error), error.code)


def _first_byte_error(b0: int, frag_op: int) -> ProtocolError:
    """Say why the first header byte ``b0`` is not allowed here."""
    opcode = b0 & 0x0F
    if b0 & 0x70:
        return ProtocolError(f"frame has reserved bits set (0x{b0 & 0x70:02x}) with no extension")
    if opcode not in _CONTROL_OPCODES and opcode not in _DATA_OPCODES and opcode != OP_CONT:
        return ProtocolError(f"frame has reserved opcode {opcode}")
    if opcode in _CONTROL_OPCODES:
        return ProtocolError(f"control frame (opcode {opcode}) is fragmented")
    if opcode == OP_CONT:
        return ProtocolError("continuation frame without a started message")
    return ProtocolError(f"new data frame (opcode {opcode}) while a fragmented message is open")


def _unmask_translate(data: bytes, start: int, stop: int) -> bytes:
    """Unmask ``data[start:stop]`` with the key in the 4 bytes before ``start``.

    For payloads over a few hundred bytes, translating every 4th byte through
    a 256-byte XOR table beats the big-int XOR about 2-3x (wsproto's trick).
    """
    out = bytearray(memoryview(data)[start:stop])  # one copy, not two
    for lane in range(4):
        table = _XOR_TABLES[data[start - 4 + lane]]
        out[lane::4] = out[lane::4].translate(table)
    return bytes(out)


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """Encode one frame with FIN set; ``mask=True`` (client side) uses a random key.

    Raises:
        ValueError: unknown opcode, or a control payload over 125 bytes.
    """
    if opcode in _CONTROL_OPCODES:
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload is {len(payload)} bytes, at most 125 allowed")
    elif opcode not in _DATA_OPCODES and opcode != OP_CONT:
        raise ValueError(f"unknown opcode {opcode}")
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = bytes((0x80 | opcode, mask_bit | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mask_bit | 127)) + length.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = (
        int.from_bytes(payload, "little") ^ int.from_bytes((key * ((length + 3) >> 2))[:length], "little")
    ).to_bytes(length, "little")
    return head + key + masked


def _valid_close_code(code: int) -> bool:
    return code in _WIRE_CLOSE_CODES or 3000 <= code <= 4999


def close_payload(code: int, reason: str = "") -> bytes:
    """Build a Close frame payload; a long reason is cut to 123 bytes on a UTF-8 boundary.

    Raises:
        ValueError: ``code`` may not be sent on the wire (e.g. 1005, 1006, 999).
    """
    if not _valid_close_code(code):
        raise ValueError(f"close code {code} cannot be sent; expected 1000-1003, 1007-1014 or 3000-4999")
    raw = reason.encode()
    if len(raw) > _MAX_CONTROL_PAYLOAD - 2:
        raw = raw[: _MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode()
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """Read a Close frame payload as ``(code, reason)``; ``(None, "")`` when empty.

    Raises:
        ProtocolError: a 1-byte payload or a code not allowed on the wire
            (1002), or a reason that is not UTF-8 (1007).
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close frame payload is 1 byte; expected 0 or at least 2")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise ProtocolError(f"close frame has invalid code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError("close frame reason is not valid UTF-8", 1007) from exc
    return code, reason
