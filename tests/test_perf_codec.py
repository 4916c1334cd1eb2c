"""The standard-library JSON fast path (the C scanner called directly) decodes and
fails exactly as ``JSONDecoder.decode`` does: same values, same messages, same positions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ekws import codec
from ekws.errors import DecodeError

CASES = [
    '{"a": 1}',
    ' {"a": 1}',  # leading whitespace: the fast path declines, the reference takes it
    '{"a": 1} \n\t\r',  # trailing whitespace is allowed
    '{"a": 1} x',  # extra data
    '{"a": 1}{"b": 2}',  # two documents joined
    "[1, 2] 3",
    "",
    "   ",
    "{",
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": -Infinity}',
    '{"a": 1,}',
    '{"a": "\\ud800"}',  # lone surrogate escape
    '{"a": "\\ud83d\\ude00"}',  # a pair: fine
    '{"n": 123456789012345678901234567890}',
    "[" * 100_000 + "]" * 100_000,  # nested too deeply
    '"just a string"',
    "\u00a0{}",  # non-JSON whitespace before the value
    "{}\u00a0",  # and after it
]


def reference(text: str) -> Any:
    """What the module did before the fast path: JSONDecoder.decode, errors worded alike."""
    try:
        value = codec._stdlib_decode(text)
    except json.JSONDecodeError as exc:
        return ("error", f"invalid JSON at position {exc.pos}: {exc.msg}")
    except ValueError as exc:
        return ("error", f"invalid JSON: {exc}")
    except RecursionError:
        return ("error", "invalid JSON: nested too deeply")
    if "\\" in text and codec._SURROGATE_ESCAPE.search(text) and codec._has_lone_surrogate(value):
        return ("error", "invalid JSON: a string holds an unpaired surrogate escape")
    return ("value", value)


def fast(text: str) -> Any:
    try:
        return ("value", codec._loads_stdlib(text))
    except DecodeError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("text", CASES, ids=range(len(CASES)))
def test_fast_path_matches_the_reference(text: str) -> None:
    assert fast(text) == reference(text)
    if text.isascii():  # a binary message: the same bytes, the same outcome
        assert fast(text.encode()) == reference(text)


def test_nan_and_infinity_rejected() -> None:
    for text in ('{"a": NaN}', "[Infinity]", "-Infinity"):
        with pytest.raises(DecodeError, match="is not valid JSON"):
            codec._loads_stdlib(text)


def test_errors_name_the_position() -> None:
    with pytest.raises(DecodeError, match=r"position 9: Extra data"):
        codec._loads_stdlib('{"a": 1} x')
    with pytest.raises(DecodeError, match=r"position 0: Expecting value"):
        codec._loads_stdlib("")


def test_scanner_is_reusable_across_errors() -> None:
    """An error in one call leaves nothing behind for the next (the scanner's memo is per call)."""
    for _ in range(3):
        with pytest.raises(DecodeError):
            codec._loads_stdlib('{"k": [1, 2,')
        assert codec._loads_stdlib('{"k": [1, 2]}') == {"k": [1, 2]}
