"""Stream schemas: field types and the conversion of decoded records to them.

A typed stream (``CREATE STREAM s (a BIGINT, ...)``) keeps only its declared
fields, converts each value to the declared type and fills in ``DEFAULT``s.
The work is planned once per schema (:func:`make_converter`) so converting a
record is one dict walk with a type check per field; :func:`convert_record` is
the convenient one-shot form.

Conversion rules (``None``, i.e. JSON ``null``, is kept as ``None`` for every
type: it is SQL NULL, not a mismatch):

* BIGINT: ``int``; a ``float`` with an integral value; a number string with
  an integral value (``"42"``, ``"1_000"``, ``"4.0"``, ``"1e3"``). ``bool`` is not
  a number here.
* FLOAT: ``int`` or ``float``; a number string (``"2.5"``, ``"1_000"``, and the
  specials ``"NaN"``, ``"inf"``, as eKuiper's ``cast`` reads them). Number
  strings are read by :mod:`ekws.values`, the same grammar as rule ``cast()``.
* STRING: ``str``; numbers become ``str(value)``; booleans ``"true"``/``"false"``.
* BOOLEAN: ``bool``; ``"true"``/``"false"``, ``"t"``/``"f"``, ``"1"``/``"0"`` in any
  case (:func:`ekws.values.parse_bool`, as rule ``cast()`` reads them).
* DATETIME: an ``int`` (milliseconds since the epoch; an integral ``float`` is
  made an ``int``) or an ISO-8601 string, read as ``cast(x, 'datetime')`` and
  ``TIMESTAMP`` read it (:func:`ekws.timestamps.parse_iso`). The value is *validated and kept as
  given*, not turned into :class:`datetime.datetime`, so records stay
  JSON-serialisable for actions and the REST API.
* BYTEA: ``bytes``; a base64 string is decoded to ``bytes``.
* ARRAY(t): a list, each element converted to ``t``.
* STRUCT(...): an object, converted recursively like a record.

A missing field takes its ``DEFAULT``. Otherwise the two modes differ:

* non-strict (the default): a missing field stays absent, and a value that
  cannot be converted is passed through raw, as eKuiper does; inside arrays
  and structs only the offending leaf is passed through.
* strict (``STRICT_VALIDATION="true"``): a missing field without ``DEFAULT``
  or a mismatch raises :class:`~ekws.errors.DecodeError` naming the field path,
  e.g. ``field 'pos.x': expected FLOAT, got string "abc"``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Final

from .errors import DecodeError
from .timestamps import parse_iso
from .values import parse_bool, parse_float, parse_int

__all__ = ["KINDS", "NO_DEFAULT", "Field", "FieldType", "convert_record", "convert_value", "make_converter"]


class _NoDefault:
    """The type of :data:`NO_DEFAULT`; a singleton with a readable repr."""

    _instance: _NoDefault | None = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:  # pickles/copies stay the singleton
        return "NO_DEFAULT"


NO_DEFAULT: Final = _NoDefault()
"""Marks a :class:`Field` declared without ``DEFAULT``."""

KINDS: Final = frozenset({"bigint", "float", "string", "datetime", "boolean", "bytea", "array", "struct"})


@dataclass(frozen=True)
class FieldType:
    """A column type: a scalar ``kind``, ``ARRAY(element)`` or ``STRUCT(fields)``."""

    kind: str
    element: FieldType | None = None  # for array
    fields: tuple[Field, ...] = ()  # for struct

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field type kind {self.kind!r}")
        if (self.kind == "array") != (self.element is not None):
            raise ValueError("an array type needs an element type, and only an array has one")

    def __str__(self) -> str:
        """The SQL spelling: ``BIGINT``, ``ARRAY(FLOAT)``, ``STRUCT(x FLOAT, y FLOAT)``."""
        if self.kind == "array":
            return f"ARRAY({self.element})"
        if self.kind == "struct":
            return "STRUCT(" + ", ".join(f"{f.name} {f.type}" for f in self.fields) + ")"
        return self.kind.upper()

    def describe(self) -> Any:
        """eKuiper's JSON form: ``"bigint"``, ``{"Type": "array", "ElementType": ...}``, ..."""
        if self.kind == "array":
            assert self.element is not None
            return {"Type": "array", "ElementType": self.element.describe()}
        if self.kind == "struct":
            return {"Type": "struct", "Fields": [f.describe() for f in self.fields]}
        return self.kind


@dataclass(frozen=True)
class Field:
    """One declared field: a name, a type and an optional ``DEFAULT`` value.

    ``default`` holds the value already converted to ``type``.
    """

    name: str
    type: FieldType
    default: object = NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def describe(self) -> dict[str, Any]:
        """eKuiper's JSON form ``{"Name": ..., "FieldType": ...}`` (plus ``Default``)."""
        out: dict[str, Any] = {"Name": self.name, "FieldType": self.type.describe()}
        if self.has_default:
            default = self.default
            if isinstance(default, bytes):  # keep the description JSON-serialisable
                default = base64.b64encode(default).decode("ascii")
            out["Default"] = default
        return out


# --------------------------------------------------------------------------
# Conversion plan. A converter takes a value and returns the converted value;
# on a mismatch a strict converter raises _Invalid and a lenient one returns
# the raw value. Containers prepend their path segment to _Invalid.path, and
# the record converter turns it into a DecodeError naming the whole path.

Converter = Callable[[Any], Any]
RecordConverter = Callable[[dict[str, Any]], dict[str, Any]]

_ABSENT: Final = object()


class _Invalid(Exception):
    """Internal: a value does not fit its type; ``path`` is built innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []  # field names and array indices


def _show(value: Any) -> str:
    """A short description of a value for error messages: ``string "abc"``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"number {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
        return f"string {text}"
    if isinstance(value, (bytes, bytearray)):
        return f"bytes of length {len(value)}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _mismatch(ftype: FieldType, value: Any) -> _Invalid:
    return _Invalid(f"expected {ftype}, got {_show(value)}")


def _to_bigint(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():  # False for nan and inf
        return int(value)
    if kind is str:
        try:
            return parse_int(value)  # the one number grammar (ekws.values), as cast() reads it
        except ValueError:
            pass
    raise _Invalid("")


def _to_float(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            pass
    elif kind is str:
        try:
            return parse_float(value)
        except ValueError:
            pass
    raise _Invalid("")


def _to_string(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return str(value)
    raise _Invalid("")


def _to_boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    if type(value) is str:
        try:
            return parse_bool(value)
        except ValueError:
            pass
    raise _Invalid("")


def _to_datetime(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value
    if kind is float and value.is_integer():
        return int(value)
    if kind is str:
        try:
            parse_iso(value)  # the ISO reader of cast(x, 'datetime') and TIMESTAMP (ekws.timestamps)
        except (ValueError, OverflowError):
            pass
        else:
            return value
    raise _Invalid("")


def _to_bytea(value: Any) -> Any:
    kind = type(value)
    if kind is bytes:
        return value
    if kind is bytearray:
        return bytes(value)
    if kind is str:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
            pass
    raise _Invalid("")


_SCALARS: Final[dict[str, Converter]] = {
    "bigint": _to_bigint,
    "float": _to_float,
    "string": _to_string,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "bytea": _to_bytea,
}


def _scalar(ftype: FieldType, strict: bool) -> Converter:
    to = _SCALARS[ftype.kind]

    def convert(value: Any) -> Any:
        if value is None:
            return None
        try:
            return to(value)
        except _Invalid:
            if strict:
                raise _mismatch(ftype, value) from None
            return value

    return convert


def _array(ftype: FieldType, strict: bool) -> Converter:
    assert ftype.element is not None
    element = _converter(ftype.element, strict)

    def convert(value: Any) -> Any:
        if type(value) is not list:
            if value is None or not strict:
                return value
            raise _mismatch(ftype, value)
        try:
            return [element(item) for item in value]
        except _Invalid:
            # The error path only: find which element failed, for the message.
            for index, item in enumerate(value):
                try:
                    element(item)
                except _Invalid as exc:
                    exc.path.append(index)
                    raise exc from None
            raise  # pragma: no cover - conversion is deterministic

    return convert


def _struct(ftype: FieldType, strict: bool) -> Converter:
    plan = _plan(ftype.fields, strict)

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            if value is None or not strict:
                return value
            raise _mismatch(ftype, value)
        return _apply(plan, value, strict)

    return convert


def _converter(ftype: FieldType, strict: bool) -> Converter:
    if ftype.kind == "array":
        return _array(ftype, strict)
    if ftype.kind == "struct":
        return _struct(ftype, strict)
    return _scalar(ftype, strict)


_Plan = tuple[tuple[str, Converter, object], ...]


def _plan(fields: tuple[Field, ...], strict: bool) -> _Plan:
    return tuple((f.name, _converter(f.type, strict), f.default) for f in fields)


def _apply(plan: _Plan, record: dict[str, Any], strict: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, convert, default in plan:
        value = record.get(name, _ABSENT)
        if value is _ABSENT:
            if default is not NO_DEFAULT:
                out[name] = default
            elif strict:
                exc = _Invalid("missing, and it has no DEFAULT")
                exc.path.append(name)
                raise exc
            continue
        try:
            out[name] = convert(value)
        except _Invalid as exc:
            exc.path.append(name)
            raise
    return out


def _error(exc: _Invalid) -> DecodeError:
    path = ""
    for segment in reversed(exc.path):
        if isinstance(segment, int):
            path += f"[{segment}]"
        else:
            path += f".{segment}" if path else segment
    return DecodeError(f"field '{path}': {exc.reason}" if path else exc.reason)


@functools.lru_cache(maxsize=256)
def make_converter(fields: tuple[Field, ...], *, strict: bool) -> RecordConverter:
    """Plan the conversion of records to ``fields`` once; return the converter.

    The converter raises :class:`~ekws.errors.DecodeError` only when ``strict``.
    """
    plan = _plan(fields, strict)

    def convert(record: dict[str, Any]) -> dict[str, Any]:
        try:
            return _apply(plan, record, strict)
        except _Invalid as exc:
            raise _error(exc) from None

    return convert


def convert_record(record: dict[str, Any], fields: tuple[Field, ...], *, strict: bool) -> dict[str, Any]:
    """Keep ``fields`` of ``record``, converted to their types, with DEFAULTs applied.

    Raises:
        DecodeError: only when ``strict``: a missing field without DEFAULT or a
            value that does not fit its type; the message names the field path.
    """
    return make_converter(fields, strict=strict)(record)


def convert_value(value: Any, ftype: FieldType, *, name: str = "value") -> Any:
    """Convert one value strictly (used for ``DEFAULT`` literals).

    Raises:
        DecodeError: the value does not fit ``ftype``; the message names ``name``.
    """
    try:
        return _converter(ftype, True)(value)
    except _Invalid as exc:
        exc.path.append(name)
        raise _error(exc) from None
