"""Other, hashing and transform functions, ported from eKuiper's
``internal/binder/function/funcs_misc_test.go`` and the examples of ``docs/en_US/sqls/functions/``
``other_functions.md``, ``hashing_functions.md`` and ``transform_functions.md``."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import EvalError, SQLError

MISC = "funcs_misc_test.go"
HASH = "hashing_functions.md"
TRANSFORM = "transform_functions.md"


@pytest.mark.parametrize(("source", "name", "args", "expected"), [
    (MISC, "coalesce", ("foo", "bar", "2"), "foo"),  # TestCoalesceExec
    (MISC, "coalesce", (None, "dd", "1"), "dd"),
    (MISC, "coalesce", ("bar", None, "1"), "bar"),
    (MISC, "coalesce", (None, None, "2"), "2"),
    (MISC, "coalesce", (None, None, None), None),
    (MISC, "to_json", ("foo",), '"foo"'),  # TestToJson
    (MISC, "to_json", ({"key1": "bar", "key2": "foo"},), '{"key1":"bar","key2":"foo"}'),
    (MISC, "parse_json", ('"foo"',), "foo"),  # TestFromJson
    (MISC, "parse_json", ("null",), None),
    (MISC, "parse_json", ('{"key1":"bar","key2":"foo"}',), {"key1": "bar", "key2": "foo"}),
    (MISC, "parse_json", ('[{"key1":"bar","key2":"foo"}]',), [{"key1": "bar", "key2": "foo"}]),
    (MISC, "hex2dec", ("0x10",), 16),  # TestHexIntFunctions
    (MISC, "hex2dec", ("0xff",), 255),
    (MISC, "dec2hex", (16,), "0x10"),
    (MISC, "dec2hex", (255,), "0xff"),
    (MISC, "isnull", (None,), True),
    (MISC, "isnull", (0,), False),
    (MISC, "isnull", ([],), False),
    (MISC, "cast", ("42", "bigint"), 42),  # TestCast
    (MISC, "cast", (42.9, "bigint"), 42),
    (MISC, "cast", ("1.5", "float"), 1.5),
    (MISC, "cast", (1, "float"), 1.0),
    (MISC, "cast", (True, "string"), "true"),
    (MISC, "cast", (1.5, "string"), "1.5"),
    (MISC, "cast", ("true", "boolean"), True),
    (MISC, "cast", ("0", "boolean"), False),
    (MISC, "cast", (1, "boolean"), True),
    (MISC, "cast", (1700000000000, "datetime"), 1700000000000),
    (HASH, "md5", ("abc",), "900150983cd24fb0d6963f7d28e17f72"),
    (HASH, "sha1", ("abc",), "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (HASH, "sha256", ("abc",), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (HASH, "sha384", ("abc",), "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
                               "8086072ba1e7cc2358baeca134c825a7"),
    (HASH, "sha512", ("abc",), "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                               "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    (HASH, "crc32", ("abc",), "352441c2"),
    (HASH, "md5", (123,), "202cb962ac59075b964b07152d234b70"),  # hashes "123", Go's %v
    (TRANSFORM, "encode", ("hello", "base64"), "aGVsbG8="),
    (TRANSFORM, "decode", ("aGVsbG8=", "base64"), "hello"),
    (TRANSFORM, "chr", (65,), "A"),
    (TRANSFORM, "chr", ("a",), "a"),
    ("math_func_test.go", "trunc", (3.1415, 2), 3.14),
    ("math_func_test.go", "trunc", (3, 2), 3.0),
    ("funcs_misc.go toFixed", "trunc", (-3.789, 1), -3.8),  # eKuiper's code rounds
    (TRANSFORM, "decompress", ("eJzLSM3JyQcABiwCFQ==", "zlib"), "hello"),
])
def test_functions(source: str, name: str, args: tuple[Any, ...], expected: Any) -> None:
    got = call(name, *args)
    assert got == expected and type(got) is type(expected), source


def test_compress_round_trips_both_methods() -> None:
    for method in ("zlib", "gzip"):
        packed = call("compress", "hello world", method)
        assert call("decompress", packed, method) == "hello world"


@pytest.mark.parametrize(("name", "args", "error"), [
    ("parse_json", ("key1",), "fail to parse json"),  # TestFromJson
    ("hex2dec", ("0xzz",), "invalid hexadecimal value: zz"),  # TestHexIntFunctions
    ("hex2dec", (12,), "invalid input type: 12 please input hex string"),
    ("cast", ("abc", "bigint"), "cannot cast string 'abc' to bigint"),
    ("cast", ("maybe", "boolean"), "cannot cast string 'maybe' to boolean"),
    ("decode", ("***", "base64"), "fail to decode base64 string"),
    ("chr", ("ab",), "Parameter length cannot larger than 1."),
    ("encode", (1, "base64"), "Only string type can be encoded."),
])
def test_errors_fail_the_record(name: str, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(EvalError, match=re.escape(error)):
        call(name, *args)


@pytest.mark.parametrize(("expr", "error"), [
    ("cast(a, 'date')", "cast: Expect one of following value for the 2nd parameter: bigint, float, string, "
                        "boolean, datetime, bytea."),
    ("cast(a, 1)", "cast: Expect string type for parameter 2"),
    ("encode(a, 'hex')", "encode: Only base64 is supported for the 2nd parameter."),
    ("newuuid(a)", "newuuid: Expect 0 arguments but found 1."),
    ("md5(1)", "md5: Expect string type for parameter 1"),
])
def test_refused_at_rule_creation(expr: str, error: str) -> None:
    with pytest.raises(SQLError, match=re.escape(error)):
        value(expr)


def test_the_record_and_rule_context_functions() -> None:
    assert value("event_time()", timestamp=1234) == 1234
    assert value("rule_id()", rule_id="r7") == "r7"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", value("newuuid()"))
    before = time.time_ns() // 1_000_000
    assert before <= value("tstamp()") <= time.time_ns() // 1_000_000
    assert before - 1000 <= value("rule_start()") <= time.time_ns() // 1_000_000
    assert value("mqtt(a)", {"a": "topic"}) is None  # a WebSocket stream has no MQTT metadata
    assert value("bypass(a, b)", {"a": 1, "b": 2}) == 1


@pytest.mark.parametrize("name", ["delay", "props"])
def test_eKuiper_functions_ekws_does_not_run_are_refused_by_name(name: str) -> None:
    with pytest.raises(SQLError, match=f"function {name} is not supported by ekws rules: "):
        value(f"{name}(a, b)")
