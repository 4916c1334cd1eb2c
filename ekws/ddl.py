"""``CREATE STREAM`` statements: a recursive-descent parser over the one SQL lexer (:mod:`ekws.sqllex`).

Grammar (keywords, type names and option names are case-insensitive)::

    statement := CREATE STREAM name [quote] '(' [fields] ')' [WITH '(' [options] ')'] [';'] [quote] [';']
    fields    := field {',' field} [',']
    field     := name type [DEFAULT literal]
    type      := BIGINT | FLOAT | STRING | DATETIME | BOOLEAN | BYTEA
               | ARRAY '(' type ')' | STRUCT '(' fields ')'
    options   := option_name '=' string {',' option_name '=' string} [',']
    name      := word | `backticked` | "double-quoted"
    literal   := number | string | TRUE | FALSE
    string    := 'single' | "double"          (backslash escapes: \\n \\t \\r \\\\ \\' \\" \\/)

``quote`` accepts the form copied from eKuiper's CLI docs, where the shell's
quoting was left in the text: ``CREATE STREAM demo'() WITH (...)'`` parses like
``CREATE STREAM demo() WITH (...)``. A single quote right after the stream name
opens a segment that ends at the statement's last single quote. It is never
ambiguous: a string literal cannot follow the name otherwise.

Parsing is pure; every problem is a :class:`~ekws.errors.DDLError` (a ``ParseError``) with the
1-based line and column of the offending token and what was expected.

Options ekws honours beyond the obvious ones:

* ``TIMESTAMP="field"`` sets each message's ``timestamp`` from that field
  (event time, as eKuiper does); on a typed stream the field must be declared
  as BIGINT, FLOAT, DATETIME or STRING. ``TIMESTAMP_FORMAT`` says how a string
  value reads (eKuiper's letters, see :mod:`ekws.timestamps`); it is checked
  here and refused without ``TIMESTAMP``, where ekws would have no use for it.
* ``KEY``, ``VERSION`` and ``SCHEMAID`` are accepted so eKuiper statements
  run unchanged (its docs' websocket example has ``KEY="id"``); they are
  kept and shown by ``describe`` but change nothing: ekws has no lookup
  tables (KEY), no versioned import (VERSION) and no schema registry
  (SCHEMAID).
* ``SHARED``: an ekws stream always shares one source (one dial, one mounted
  path) among all its subscriptions, and gives each subscription its own
  buffer and its own copy of every record, so what a subscriber sees is what
  an unshared eKuiper source would give it. ``SHARED="true"`` is therefore
  exactly what happens; ``SHARED="false"`` is accepted (eKuiper statements
  run unchanged) and the parser logs an INFO note saying the source is
  shared anyway.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Final

from . import sqllex
from .errors import DDLError, DecodeError
from .schema import Field, FieldType, convert_value
from .timestamps import compile_format

__all__ = ["StreamDef", "describe_text", "id_problem", "parse_command", "parse_stream"]

logger = logging.getLogger(__name__)

FORMATS: Final = ("json", "binary", "delimited")
_SCALAR_TYPES: Final = ("BIGINT", "FLOAT", "STRING", "DATETIME", "BOOLEAN", "BYTEA")
_TYPE_NAMES: Final = "BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, ARRAY or STRUCT"
_MAX_DEPTH: Final = 32  # ARRAY/STRUCT nesting; bounds the recursion on hostile input
_TIMESTAMP_TYPES: Final = ("bigint", "float", "datetime", "string")
_ID: Final = re.compile(r"[a-zA-Z0-9_\-]+")


def id_problem(value: str) -> str | None:
    """Why ``value`` is no valid stream name or rule id, in eKuiper's words; ``None`` if it is.

    eKuiper's ``pkg/validate.ValidateID``: ASCII letters, digits, ``-`` and ``_``.
    """
    if value == "":
        return "id cannot be empty"
    if value != value.strip():
        return f"id '{value}' contains leading or trailing whitespace"
    if not _ID.fullmatch(value):
        return (f"id '{value}' contains invalid characters: "
                "only alphanumeric, hyphens and underscores are allowed")
    return None


@dataclass(frozen=True)
class StreamDef:
    """A parsed ``CREATE STREAM``: name, schema (empty: schemaless) and options."""

    name: str
    fields: tuple[Field, ...] = ()
    datasource: str = "/"
    format: str = "json"  # lower-cased: "json" | "binary" | "delimited"
    delimiter: str = ","
    type: str = "websocket"
    conf_key: str | None = None
    shared: bool = False
    strict_validation: bool = False
    timestamp: str | None = None
    timestamp_format: str | None = None
    # eKuiper's KEY, VERSION and SCHEMAID: kept and described, used for nothing (see the docstring)
    key: str | None = None
    version: str | None = None
    schemaid: str | None = None
    sql: str = ""  # the statement as given

    @property
    def schemaless(self) -> bool:
        return not self.fields

    def describe(self) -> dict[str, Any]:
        """eKuiper's ``describe stream`` form: ``{"Name", "StreamFields", "Options", "Statement"}``.

        Option keys follow eKuiper's JSON names; unset options are omitted.
        """
        options: dict[str, Any] = {"datasource": self.datasource, "format": self.format, "type": self.type}
        if self.format == "delimited":
            options["delimiter"] = self.delimiter
        if self.conf_key is not None:
            options["confKey"] = self.conf_key
        if self.shared:
            options["shared"] = True
        if self.strict_validation:
            options["strictValidation"] = True
        if self.timestamp is not None:
            options["timestamp"] = self.timestamp
        if self.timestamp_format is not None:
            options["timestampFormat"] = self.timestamp_format
        for name in ("key", "version", "schemaid"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return {
            "Name": self.name,
            "StreamFields": [f.describe() for f in self.fields] if self.fields else None,
            "Options": options,
            "Statement": self.sql,
        }


def parse_stream(sql: str) -> StreamDef:
    """Parse one ``CREATE STREAM`` statement.

    Raises:
        DDLError: the statement is malformed or names an unknown or invalid
            option; the message ends with ``at line L, column C``.
    """
    stream = _Parser(sql).statement()
    logger.debug("parsed stream %s (%d fields, format %s)", stream.name, len(stream.fields), stream.format)
    return stream


def parse_command(sql: str) -> tuple[str, str | None] | None:
    """The other stream statements eKuiper's ``POST /streams`` runs; ``None`` for a ``CREATE``.

    ``SHOW STREAMS`` gives ``("SHOW", None)``; ``DROP STREAM s`` and
    ``DESCRIBE STREAM s`` give the verb and the name.

    Raises:
        DDLError: neither a CREATE nor one of those.
    """
    parser = _Parser(sql)
    token = parser.peek()
    verb = token.value.upper() if token.kind == "name" else ""
    if verb == "CREATE":
        return None
    if verb not in ("SHOW", "DROP", "DESCRIBE"):
        raise parser.unexpected(token, "CREATE STREAM, DROP STREAM, DESCRIBE STREAM or SHOW STREAMS")
    parser.take()
    if verb == "SHOW":
        parser.keyword("STREAMS")
        parser._end_of_statement()
        return verb, None
    parser.keyword("STREAM")
    name = parser.name("a stream name")
    parser._end_of_statement()
    return verb, name


def describe_text(stream: StreamDef) -> str:
    """eKuiper's ``DESCRIBE STREAM`` text: the fields, a dashed rule, then the options set."""
    lines = ["Fields", "-" * 80]
    lines += [f"{f.name}\t{_type_text(f.type)}" + (f"\tDEFAULT\t{default_text(f.default)}" if f.has_default
                                                    else "") for f in stream.fields]
    lines.append("")
    options = [("CONF_KEY", stream.conf_key), ("DATASOURCE", stream.datasource),
               ("FORMAT", stream.format.upper()), ("SCHEMAID", stream.schemaid), ("KEY", stream.key),
               ("SHARED", "true" if stream.shared else None),
               ("STRICT_VALIDATION", "true" if stream.strict_validation else None),
               ("TIMESTAMP", stream.timestamp), ("TIMESTAMP_FORMAT", stream.timestamp_format),
               ("TYPE", stream.type), ("VERSION", stream.version)]
    lines += [f"{name}: {value}" for name, value in options if value]
    return "\n".join(lines) + "\n"


def default_text(value: Any) -> str:
    """A DEFAULT value as eKuiper's ``Literal.String()`` prints it: ``true``, ``3``, ``1.5``, ``x``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _type_text(ftype: FieldType) -> str:
    if ftype.kind == "array":
        assert ftype.element is not None
        return f"array({_type_text(ftype.element)})"
    if ftype.kind == "struct":
        return "struct(" + ", ".join(f"{f.name} {_type_text(f.type)}" for f in ftype.fields) + ")"
    return ftype.kind


# --------------------------------------------------------------------------
# Tokens: the one SQL lexer (ekws.sqllex), in its CREATE STREAM dialect


_Token = sqllex.Token


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of statement"
    if token.kind == "string":
        return f"string {token.text}{token.value}{token.text}"
    if token.kind == "quoted":
        return f"`{token.value}`"
    if token.kind == "number":
        return f"number {token.value}"
    return f"'{token.value}'"


class _Parser:
    """One statement's parser; tokens are read lazily, one ahead."""

    def __init__(self, sql: str) -> None:
        self.src = sql
        self.lexer = sqllex.Lexer(sql, sqllex.DDL, DDLError)
        self.pos = 0  # where the next token is read
        self.end = len(sql)  # where tokens end: the closing quote of a quoted segment
        self.ahead: _Token | None = None

    # -- errors --------------------------------------------------------------

    def error(self, message: str, pos: int) -> DDLError:
        return self.lexer.error(message, pos)

    def unexpected(self, token: _Token, expected: str) -> DDLError:
        return self.error(f"unexpected {_describe(token)}: expected {expected}", token.pos)

    # -- tokens --------------------------------------------------------------

    def peek(self) -> _Token:
        if self.ahead is None:
            self.ahead, self.pos = self.lexer.scan(self.pos, self.end)
        return self.ahead

    def take(self) -> _Token:
        token = self.peek()
        self.ahead = None
        return token

    # -- grammar -------------------------------------------------------------

    def keyword(self, word: str) -> _Token:
        token = self.take()
        if token.kind != "name" or token.value.upper() != word:
            raise self.unexpected(token, f"'{word}'")
        return token

    def punct(self, char: str) -> _Token:
        token = self.take()
        if token.kind != "op" or token.value != char:
            raise self.unexpected(token, f"'{char}'")
        return token

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.value == char

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.value.upper() == word

    def name(self, what: str) -> str:
        token = self.take()
        if token.kind in ("name", "quoted") or (token.kind == "string" and token.text == '"'):
            if not token.value:
                raise self.error(f"empty {what}", token.pos)
            return str(token.value)
        raise self.unexpected(token, what)

    def statement(self) -> StreamDef:
        self.keyword("CREATE")
        self.keyword("STREAM")
        start = self.peek().pos
        name = self.name("a stream name")
        problem = id_problem(name)
        if problem is not None:
            raise self.error(problem, start)
        close_quote = self._open_quote()
        fields = self.fields(0, allow_empty=True)
        options: dict[str, Any] = {}
        if self.at_keyword("WITH"):
            self.take()
            options = self.options(fields)
        self._end_of_statement()
        if close_quote is not None:
            self.pos, self.end, self.ahead = close_quote + 1, len(self.src), None
            self._end_of_statement()
        if options.get("shared") is False:
            logger.info('stream %s: SHARED="false" has no effect: an ekws stream shares one source among '
                        "its subscriptions (each still gets its own buffer and copy of every record)", name)
        return StreamDef(name=name, fields=fields, sql=self.src, **options)

    def _end_of_statement(self) -> None:
        if self.at_punct(";"):
            self.take()
        token = self.take()
        if token.kind != "end":
            raise self.unexpected(token, "end of statement")

    def _open_quote(self) -> int | None:
        """Enter a ``'...'`` segment right after the name; return the closing quote's offset."""
        assert self.ahead is None
        start = self.lexer.skip_space(self.pos)
        if not self.src.startswith("'", start):
            return None
        tail = self.src.rstrip()
        if tail.endswith(";"):
            tail = tail[:-1].rstrip()
        close = len(tail) - 1
        if close <= start or tail[close] != "'":
            raise self.error("unterminated quote after the stream name: expected a closing '", start)
        self.pos, self.end = start + 1, close
        return close

    def fields(self, depth: int, *, allow_empty: bool) -> tuple[Field, ...]:
        self.punct("(")
        if allow_empty and self.at_punct(")"):
            self.take()
            return ()
        fields: list[Field] = []
        seen: set[str] = set()
        while True:
            start = self.peek().pos
            field = self.field(depth)
            if field.name in seen:
                raise self.error(f"duplicate field '{field.name}'", start)
            seen.add(field.name)
            fields.append(field)
            token = self.take()
            if token.kind == "op" and token.value == "," and self.at_punct(")"):
                token = self.take()  # a trailing comma, as eKuiper's parser allows
            if token.kind == "op" and token.value == ")":
                return tuple(fields)
            if token.kind != "op" or token.value != ",":
                raise self.unexpected(token, "',' or ')'")

    def field(self, depth: int) -> Field:
        name = self.name("a field name")
        ftype = self.field_type(depth)
        if not self.at_keyword("DEFAULT"):
            return Field(name, ftype)
        self.take()
        token = self.take()
        if token.kind in ("number", "string"):
            literal = token.value
        elif token.kind == "name" and token.value.upper() in ("TRUE", "FALSE"):
            literal = token.value.upper() == "TRUE"
        else:
            raise self.unexpected(token, "a literal (number, string, TRUE or FALSE)")
        try:
            default = convert_value(literal, ftype, name=name)
        except DecodeError as exc:
            raise self.error(f"invalid DEFAULT: {exc}", token.pos) from None
        return Field(name, ftype, default)

    def field_type(self, depth: int) -> FieldType:
        token = self.take()
        word = token.value.upper() if token.kind == "name" else ""
        if word in _SCALAR_TYPES:
            return FieldType(word.lower())
        if word in ("ARRAY", "STRUCT"):
            if depth >= _MAX_DEPTH:
                raise self.error(f"types nested deeper than {_MAX_DEPTH} levels", token.pos)
            if word == "STRUCT":
                return FieldType("struct", fields=self.fields(depth + 1, allow_empty=False))
            self.punct("(")
            element = self.field_type(depth + 1)
            self.punct(")")
            return FieldType("array", element=element)
        raise self.unexpected(token, f"a field type ({_TYPE_NAMES})")

    def options(self, fields: tuple[Field, ...]) -> dict[str, Any]:
        self.punct("(")
        options: dict[str, Any] = {}
        seen: dict[str, int] = {}  # option -> position of its value
        if self.at_punct(")"):
            self.take()
            return options
        while True:
            token = self.take()
            if token.kind != "name":
                raise self.unexpected(token, "an option name")
            option = token.value.upper()
            check = _OPTIONS.get(option)
            if check is None:
                expected = ", ".join(_OPTIONS)
                raise self.error(f"unknown option '{token.value}': expected one of {expected}", token.pos)
            if option in seen:
                raise self.error(f"duplicate option '{token.value}'", token.pos)
            self.punct("=")
            value = self.take()
            seen[option] = value.pos
            if value.kind != "string":
                raise self.unexpected(value, f"a quoted string for {option}")
            try:
                options[option.lower()] = check(value.value)
            except ValueError as exc:
                shown = f"{value.text}{value.value}{value.text}"
                raise self.error(f"invalid {option} {shown}: {exc}", value.pos) from None
            self.check_option(option, options, fields, value.pos)
            token = self.take()
            if token.kind == "op" and token.value == "," and self.at_punct(")"):
                token = self.take()  # a trailing comma, as eKuiper's parser allows
            if token.kind == "op" and token.value == ")":
                if "TIMESTAMP_FORMAT" in seen and "TIMESTAMP" not in seen:
                    raise self.error("TIMESTAMP_FORMAT without TIMESTAMP: it says how the TIMESTAMP "
                                     "field reads, and ekws uses it for nothing else",
                                     seen["TIMESTAMP_FORMAT"])
                return options
            if token.kind != "op" or token.value != ",":
                raise self.unexpected(token, "',' or ')'")

    def check_option(self, option: str, options: dict[str, Any], fields: tuple[Field, ...], pos: int) -> None:
        """Checks that involve the schema, reported at the option's value."""
        binary = option == "FORMAT" and options["format"] == "binary"
        if binary and fields and (len(fields) > 1 or fields[0].type.kind != "bytea"):
            raise self.error("FORMAT binary allows no fields or exactly one BYTEA field", pos)
        if option == "TIMESTAMP" and fields:
            declared = {f.name: f for f in fields}.get(options["timestamp"])
            if declared is None:
                raise self.error(f"TIMESTAMP names no declared field: '{options['timestamp']}'", pos)
            if declared.type.kind not in _TIMESTAMP_TYPES:
                raise self.error(f"TIMESTAMP field '{declared.name}' is {declared.type.kind.upper()}: "
                                 "expected BIGINT, FLOAT, DATETIME or STRING", pos)


def _datasource(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected a path starting with '/'")
    return value


def _format(value: str) -> str:
    if value.lower() not in FORMATS:
        raise ValueError("expected json, binary or delimited")
    return value.lower()


def _type(value: str) -> str:
    if value.lower() != "websocket":
        raise ValueError('expected "websocket" (the only source type ekws provides)')
    return "websocket"


def _boolean(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError('expected "true" or "false"')
    return value.lower() == "true"


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def _timestamp_format(value: str) -> str:
    if value:
        compile_format(value)  # ValueError says what is wrong
    return value


_OPTIONS: Final[dict[str, Callable[[str], Any]]] = {
    "DATASOURCE": _datasource,
    "FORMAT": _format,
    "DELIMITER": _non_empty,
    "TYPE": _type,
    "CONF_KEY": _non_empty,
    "SHARED": _boolean,
    "STRICT_VALIDATION": _boolean,
    "TIMESTAMP": _non_empty,
    "TIMESTAMP_FORMAT": _timestamp_format,
    "KEY": _non_empty,
    "VERSION": _non_empty,
    "SCHEMAID": _non_empty,
}
