"""Payload decoding: JSON (both backends), typed streams, binary and delimited."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekws import codec
from ekws.codec import json_loads, make_decoder
from ekws.ddl import parse_stream
from ekws.errors import DecodeError

Loads = Callable[[bytes], Any]

BACKENDS = [pytest.param(codec._loads_stdlib, id="stdlib")]
if codec.ORJSON_AVAILABLE:
    BACKENDS.append(pytest.param(codec._loads_orjson, id="orjson"))

SCHEMALESS = parse_stream('CREATE STREAM s () WITH (DATASOURCE="/s")')


@pytest.fixture(params=BACKENDS)
def loads(request: pytest.FixtureRequest) -> Loads:
    return request.param  # type: ignore[no-any-return]


def decode(loads: Loads, data: bytes, sql: str | None = None) -> list[dict[str, Any]]:
    stream = parse_stream(sql) if sql else SCHEMALESS
    return make_decoder(stream, loads=loads)(data)


# -- JSON shapes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b'{"temperature": 23.5, "humidity": 61}', [{"temperature": 23.5, "humidity": 61}]),
        (b'[{"a": 1}, {"a": 2}, {"a": 3}]', [{"a": 1}, {"a": 2}, {"a": 3}]),
        (b"[]", []),
        (b"{}", [{}]),
        (b' \n\t{"a": [1, {"b": null}]} \r\n', [{"a": [1, {"b": None}]}]),
        ('{"name": "caf\u00e9 \u2603 \U0001f600"}'.encode(), [{"name": "caf\u00e9 \u2603 \U0001f600"}]),
        (b'{"e": "\\ud83d\\ude00 \\u00e9 \\n"}', [{"e": "\U0001f600 \u00e9 \n"}]),
        (b'{"a": 1, "a": 2}', [{"a": 2}]),
        (b'{"big": 123456789012345678901234567890}', [{"big": 123456789012345678901234567890}]),
        (b'{"neg": -9223372036854775809}', [{"neg": -9223372036854775809}]),
        (b'{"u64": 18446744073709551615}', [{"u64": 18446744073709551615}]),
        (b'{"f": 0.1, "g": 1e-7, "h": -0.0}', [{"f": 0.1, "g": 1e-7, "h": -0.0}]),
    ],
)
def test_json_records(loads: Loads, data: bytes, records: list[dict[str, Any]]) -> None:
    got = decode(loads, data)
    assert got == records
    assert [type(v) for r in got for v in r.values()] == [type(v) for r in records for v in r.values()]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"42", "expected a JSON object or an array of objects, got number"),
        (b'"text"', "expected a JSON object or an array of objects, got string"),
        (b"null", "got null"),
        (b"true", "got boolean"),
        (b'[{"a": 1}, 2]', "got an array with number at index 1"),
        (b"[[]]", "got an array with array at index 0"),
        (b'{"a": 1', "invalid JSON at position 7"),
        (b"", "invalid JSON at position 0"),
        (b'{"a": 1} x', "invalid JSON at position 9"),
        (b"{'a': 1}", "invalid JSON at position 1"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": Infinity}', "Infinity is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte 7"),
        (b'{"ab\xc3": 1}', "invalid UTF-8 at byte 4"),
        (b'{"a": "\xed\xa0\x80"}', "invalid UTF-8 at byte 7"),  # an encoded surrogate
        (b'{"a": "\\ud800"}', "unpaired surrogate"),
        (b'{"\\udc00x": 1}', "unpaired surrogate"),
        (b'{"a": "\\ud83d\\u0041"}', "unpaired surrogate"),
        ("{}".encode("utf-16"), "invalid UTF-8 at byte 0"),
        (b"\x00{\x00}", "invalid JSON at position 0"),  # never guessed to be UTF-16
        (b"[" * 100_000, "invalid JSON"),
        (b"1" * 5000, "invalid JSON"),
    ],
)
def test_json_errors(loads: Loads, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(loads, data)
    assert message in str(info.value)


def test_backends_agree_on_edge_cases() -> None:
    if not codec.ORJSON_AVAILABLE:
        pytest.skip("orjson not installed")
    for data in (b"1e400", b'{"x": 1e400}', b'"\\u0000"', b"[1.7976931348623157e308]", b'{"\\u00e9": 0}'):
        outcomes = []
        for loads in (codec._loads_stdlib, codec._loads_orjson):
            try:
                outcomes.append(repr(loads(data)))
            except DecodeError as exc:
                outcomes.append(f"error {exc}")
        assert outcomes[0] == outcomes[1], data


def test_json_loads_uses_the_selected_backend() -> None:
    assert codec.JSON_BACKEND in ("stdlib", "orjson")
    assert json_loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(DecodeError):
        json_loads(b"{")


def test_ekws_json_env_selects_stdlib() -> None:
    code = "from ekws import codec; print(codec.JSON_BACKEND)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "EKWS_JSON": "stdlib", "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "stdlib", out.stderr
    env["EKWS_JSON"] = ""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == ("orjson" if codec.ORJSON_AVAILABLE else "stdlib"), out.stderr


# -- round trip (hypothesis) --------------------------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
_objects = st.dictionaries(st.text(), _json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    objects=st.one_of(_objects, st.lists(_objects, max_size=4)),
    ensure_ascii=st.booleans(),
)
def test_json_round_trip(objects: Any, ensure_ascii: bool) -> None:
    data = json.dumps(objects, ensure_ascii=ensure_ascii).encode("utf-8")
    expected = [objects] if isinstance(objects, dict) else objects
    for backend in BACKENDS:
        loads = backend.values[0]
        got = make_decoder(SCHEMALESS, loads=loads)(data)  # type: ignore[arg-type]
        assert got == expected
        assert json.dumps(got) == json.dumps(expected)  # same int/float types, -0.0 included


# -- typed JSON streams ----------------------------------------------------------

TYPED = 'CREATE STREAM t (id BIGINT, temp FLOAT, unit STRING DEFAULT "C", pos STRUCT(x FLOAT, y FLOAT))'


def test_typed_stream_keeps_declared_fields_and_converts(loads: Loads) -> None:
    data = b'[{"id": "1", "temp": 20, "extra": 1, "pos": {"x": 1, "y": "2"}}, {"id": 2, "unit": "F"}]'
    assert decode(loads, data, TYPED) == [
        {"id": 1, "temp": 20.0, "unit": "C", "pos": {"x": 1.0, "y": 2.0}},
        {"id": 2, "unit": "F"},
    ]


def test_typed_lenient_passes_raw_values(loads: Loads) -> None:
    assert decode(loads, b'{"id": "abc", "temp": "hot"}', TYPED) == [
        {"id": "abc", "temp": "hot", "unit": "C"}
    ]


def test_typed_strict_errors_name_the_field_and_record(loads: Loads) -> None:
    strict = TYPED + ' WITH (STRICT_VALIDATION="true")'
    good = b'{"id": 1, "temp": 1.5, "pos": {"x": 0, "y": 0}}'
    assert decode(loads, good, strict) == [{"id": 1, "temp": 1.5, "unit": "C", "pos": {"x": 0.0, "y": 0.0}}]
    with pytest.raises(DecodeError, match=r"^field 'pos\.x': expected FLOAT, got string \"abc\"$"):
        decode(loads, b'{"id": 1, "temp": 1, "pos": {"x": "abc", "y": 0}}', strict)
    with pytest.raises(DecodeError, match=r"^record 1: field 'temp': missing, and it has no DEFAULT$"):
        decode(loads, b"[" + good + b', {"id": 2, "pos": {"x": 0, "y": 0}}]', strict)
    with pytest.raises(DecodeError, match="got number"):
        decode(loads, b"5", strict)


# -- binary -------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"\x00\xff\xfe raw", b'{"a": 1}', bytes(range(256))])
def test_binary_format(payload: bytes) -> None:
    schemaless = make_decoder(parse_stream("CREATE STREAM b () WITH (FORMAT='binary')"))
    assert schemaless(payload) == [{"self": payload}]
    one_field = make_decoder(parse_stream("CREATE STREAM b (image BYTEA) WITH (FORMAT='binary')"))
    assert one_field(payload) == [{"image": payload}]


# -- delimited ----------------------------------------------------------------------


def test_delimited_schemaless() -> None:
    dec = make_decoder(parse_stream("CREATE STREAM d () WITH (FORMAT='delimited')"))
    assert dec(b"a,b,,c") == [{"col0": "a", "col1": "b", "col2": "", "col3": "c"}]
    assert dec(b"only\r\n") == [{"col0": "only"}]
    assert dec(b"x,y\n") == [{"col0": "x", "col1": "y"}]
    assert dec(b"") == []
    assert dec(b"\n") == []
    assert dec("\u00e9,\u2603".encode()) == [{"col0": "\u00e9", "col1": "\u2603"}]


def test_delimited_custom_delimiter() -> None:
    dec = make_decoder(parse_stream("CREATE STREAM d () WITH (FORMAT='delimited', DELIMITER='||')"))
    assert dec(b"1||2|3") == [{"col0": "1", "col1": "2|3"}]
    tab = make_decoder(parse_stream("CREATE STREAM d () WITH (FORMAT='delimited', DELIMITER='\\t')"))
    assert tab(b"a\tb") == [{"col0": "a", "col1": "b"}]


def test_delimited_typed() -> None:
    sql = (
        "CREATE STREAM d (id BIGINT, t FLOAT, ok BOOLEAN, name STRING DEFAULT 'n/a') "
        "WITH (FORMAT='delimited')"
    )
    dec = make_decoder(parse_stream(sql))
    assert dec(b"1,2.5,true,x,extra") == [{"id": 1, "t": 2.5, "ok": True, "name": "x"}]
    assert dec(b"1,2.5") == [{"id": 1, "t": 2.5, "name": "n/a"}]
    assert dec(b"one,2.5,true") == [{"id": "one", "t": 2.5, "ok": True, "name": "n/a"}]
    strict = make_decoder(parse_stream(sql.replace("'delimited'", "'delimited', STRICT_VALIDATION='true'")))
    with pytest.raises(DecodeError, match="field 'id': expected BIGINT, got string \"one\""):
        strict(b"one,2.5,true")
    with pytest.raises(DecodeError, match="field 'ok': missing"):
        strict(b"1,2.5")


def test_delimited_rejects_invalid_utf8() -> None:
    dec = make_decoder(parse_stream("CREATE STREAM d () WITH (FORMAT='delimited')"))
    with pytest.raises(DecodeError, match="invalid UTF-8 at byte 2"):
        dec(b"a,\xff")


def test_decoders_return_fresh_lists() -> None:
    dec = make_decoder(SCHEMALESS)
    first = dec(b'{"a": 1}')
    first.append({"b": 2})
    assert dec(b'{"a": 1}') == [{"a": 1}]


def test_json_nan_float_values_never_appear(loads: Loads) -> None:
    got = decode(loads, b'{"a": 1.5e308, "b": -1.5e308}')
    assert all(math.isfinite(v) for v in got[0].values())
