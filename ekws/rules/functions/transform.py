"""Transform functions: eKuiper's ``funcs_misc.go`` (docs ``transform_functions.md``):
``cast``, ``encode``/``decode`` (base64), ``compress``/``decompress`` (zlib, gzip),
``chr``, ``hex2dec``, ``dec2hex``, ``trunc``, ``to_json``, ``parse_json``.

``cast(x, "datetime")`` gives epoch milliseconds (ekws has no time type);
``cast(x, "bytea")`` decodes a base64 string to bytes, which a rule's JSON output
writes back as base64, as eKuiper writes ``[]byte``. ``decode`` returns the
decoded text (UTF-8, invalid bytes replaced).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import zlib
from collections.abc import Sequence
from typing import Any

from ...timestamps import parse_iso
from ...values import parse_bool, parse_float, parse_int
from ..expr import EvalError, kind_of
from .args import INT, NUMBER, STRING, expect, go_str, to_float, to_int
from .registry import NOT_CONST, Arg, register

CAST_TYPES = ("bigint", "float", "string", "boolean", "datetime", "bytea")


def _cast_check(args: Sequence[Arg]) -> None:
    target = args[1].value
    if type(target) in (int, float, bool):
        raise ValueError("Expect string type for parameter 2")
    if target is not NOT_CONST and target not in CAST_TYPES:
        raise ValueError("Expect one of following value for the 2nd parameter: "
                         f"{', '.join(CAST_TYPES)}.")


@register("cast", 2, validate=_cast_check, family="transform")
def cast(value: Any, to: Any) -> Any:
    target = go_str(to)
    try:
        # Number text is read by ekws.values, as a stream schema's BIGINT and FLOAT read it.
        if target == "bigint":
            return parse_int(value) if type(value) is str else int(value)
        if target == "float":
            return parse_float(value) if type(value) is str else float(value)
        if target == "string":
            return go_str(value)
        if target == "boolean":
            if type(value) is str:
                return parse_bool(value)
            if type(value) in (int, float, bool):
                return bool(value)
            raise TypeError(value)
        if target == "datetime":
            if type(value) is int:
                return value
            if type(value) is str:
                return parse_iso(value)
            raise TypeError(value)
        if target == "bytea":
            if isinstance(value, (bytes, bytearray)):
                return bytes(value)
            if type(value) is str:
                return base64.b64decode(value, validate=True)
            raise TypeError(value)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise EvalError(f"cannot cast {kind_of(value)} {value!r:.40} to {target}") from exc
    raise EvalError(f"cast() to unknown type {target!r}")


def _base64_check(args: Sequence[Arg]) -> None:
    expect(STRING)(args)
    if args[1].value is not NOT_CONST and args[1].value != "base64":
        raise ValueError("Only base64 is supported for the 2nd parameter.")


@register("encode", 2, validate=_base64_check, family="transform")
def encode(value: Any, scheme: Any) -> str:
    if go_str(scheme).lower() != "base64":
        raise EvalError("Only base64 encoding is supported.")
    if type(value) is not str:
        raise EvalError("Only string type can be encoded.")
    return base64.b64encode(value.encode()).decode()


@register("decode", 2, validate=_base64_check, family="transform")
def decode(value: Any, scheme: Any) -> str:
    if go_str(scheme).lower() != "base64":
        raise EvalError("Only base64 decoding is supported.")
    if type(value) is not str:
        raise EvalError("Only string type can be decoded.")
    try:
        return base64.b64decode(value, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError) as exc:
        raise EvalError(f"fail to decode base64 string: {exc}") from None


@register("compress", 2, validate=expect(STRING), family="transform")
def compress(value: Any, method: Any) -> str:
    """zlib or gzip, as base64 text (JSON carries no bytes)."""
    data, how = go_str(value).encode(), go_str(method).lower()
    if how == "zlib":
        packed = zlib.compress(data)
    elif how == "gzip":
        packed = gzip.compress(data, mtime=0)
    else:
        raise EvalError(f"unsupported compress type {how}")
    return base64.b64encode(packed).decode()


@register("decompress", 2, validate=expect(STRING), family="transform")
def decompress(value: Any, method: Any) -> str:
    how = go_str(method).lower()
    try:
        data = base64.b64decode(go_str(value), validate=True)
        if how == "zlib":
            return zlib.decompress(data).decode(errors="replace")
        if how == "gzip":
            return gzip.decompress(data).decode(errors="replace")
    except (binascii.Error, ValueError, zlib.error, OSError, EOFError) as exc:
        raise EvalError(f"fail to decompress: {exc}") from None
    raise EvalError(f"unsupported decompress type {how}")


@register("chr", 1, validate=expect(INT), family="transform")
def chr_(value: Any) -> str:
    if type(value) is str:
        if len(value) > 1:
            raise EvalError("Parameter length cannot larger than 1.")
        return value
    if type(value) in (int, float):
        try:
            return chr(int(value))
        except (ValueError, OverflowError) as exc:
            raise EvalError(f"chr: {exc}") from None
    raise EvalError("Only bigint, float and string type can be convert to char type.")


@register("hex2dec", 1, validate=expect(STRING), family="transform")
def hex2dec(value: Any) -> int:
    if type(value) is not str:
        raise EvalError(f"invalid input type: {go_str(value)} please input hex string")
    text = value[2:] if value.startswith("0x") else value
    try:
        return int(text, 16)
    except ValueError:
        raise EvalError(f"invalid hexadecimal value: {text}") from None


@register("dec2hex", 1, family="transform")
def dec2hex(value: Any) -> str:
    n = to_int(value, "dec2hex")
    return ("-0x" if n < 0 else "0x") + format(abs(n), "x")


@register("trunc", 2, validate=expect(NUMBER, INT), family="transform")
def trunc(value: Any, places: Any) -> float:
    """As eKuiper's code does it (``toFixed``): rounded half away from zero to ``places``
    decimals. Its reference says "truncates"; the code, and so eKuiper's results, round."""
    x, digits = to_float(value, "trunc"), places
    if type(digits) is not int:
        raise EvalError("The 2nd parameter must be int value.")
    if not -300 <= digits <= 300:
        return x if digits > 0 else 0.0
    scale = 10.0 ** digits
    if math.isinf(x * scale):
        return x
    return math.trunc(x * scale + math.copysign(0.5, x)) / scale


@register("to_json", 1, family="json")
def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@register("parse_json", 1, nulls="pass", validate=expect(STRING), family="json")
def parse_json(value: Any) -> Any:
    if value is None or value == "null":
        return None
    if type(value) is not str:
        raise EvalError(f"fail to convert {go_str(value)} to string")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise EvalError(f"fail to parse json: {exc}") from None
