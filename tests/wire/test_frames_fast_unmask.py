"""The [fast] unmask (websockets' C apply_mask) and the stdlib fallbacks agree, at every lane offset."""

from __future__ import annotations

import os

import pytest

from ekws.wire import frames
from ekws.wire.frames import FrameParser


def _masked_frame(payload: bytes, key: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((0x82, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x82, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("length", [0, 1, 3, 112, 125, 126, 511, 512, 513, 514, 515, 16384, 70001])
def test_c_and_stdlib_unmasking_agree(length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert frames.c_apply_mask() is not None  # the test environment has websockets' speedups
    key, payload = os.urandom(4), os.urandom(length)
    data = _masked_frame(payload, key) * 2
    assert FrameParser(masked=True).feed(data) == [(2, payload), (2, payload)]
    monkeypatch.setattr(frames, "_c_apply_mask", None)  # the stdlib build: big-int XOR, translate tables
    stdlib = FrameParser(masked=True)
    assert stdlib._apply_mask is None
    assert stdlib.feed(data) == [(2, payload), (2, payload)]
    head = len(data) // 2 - length
    assert frames._unmask_translate(data, head, head + length) == payload
