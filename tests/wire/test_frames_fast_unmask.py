"""The [fast] unmask (websockets' C apply_mask) and the stdlib fallback agree, at every lane offset."""

from __future__ import annotations

import os

import pytest

from ekws.wire import frames


@pytest.mark.parametrize("length", [512, 513, 514, 515, 16384, 70001])
def test_c_and_stdlib_unmasking_agree(length: int) -> None:
    key, payload = os.urandom(4), os.urandom(length)
    data = b"xx" + key + payload
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    chosen = frames._unmask_large(data, 6, len(data))  # the first call picks the C one here
    assert frames._unmask_large is frames._unmask_c
    assert frames._unmask_translate(data, 6, len(data)) == expected == chosen
    assert frames._unmask_c(data, 6, len(data)) == expected
