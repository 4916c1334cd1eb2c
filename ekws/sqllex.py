"""One SQL lexer for both front ends: ``CREATE STREAM`` (:mod:`ekws.ddl`) and rule SQL.

Both statements are eKuiper's one SQL dialect, read by one scanner in
eKuiper too (``internal/xsql/lexical.go``), so ekws has one as well: the
same tokens, the same 1-based line and column in every error, and the same
words for the same mistake. What differs between the two front ends is a
:class:`Dialect`, not code:

* the operators: a ``CREATE STREAM`` needs only ``( ) , ; =`` (anything else
  is "unexpected character"), rule SQL has arithmetic, comparisons, ``->``
  and ``[ ]``;
* signed numbers: ``DEFAULT -1`` is one token in a ``CREATE STREAM``; in
  rule SQL ``a-1`` must be ``a``, ``-``, ``1`` (unary minus is the parser's);
* string escapes: a ``CREATE STREAM`` refuses an unknown escape (its strings
  are paths and formats); rule SQL keeps it with its backslash, because
  ``LIKE`` patterns use ``\\%`` and ``\\_``.

Pure: a :class:`Lexer` maps text to :class:`Token` values, and every problem
is the front end's :class:`~ekws.errors.ParseError` subclass (``DDLError``,
``SQLError``) pointing at the offending character.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from .errors import ParseError

__all__ = ["DDL", "RULES", "Dialect", "Lexer", "Token"]

E = TypeVar("E", bound=ParseError)


class Token(NamedTuple):
    """One token.

    ``kind`` is ``"name"``, ``"quoted"`` (a `` `backquoted` `` name), ``"string"``,
    ``"number"``, ``"op"`` or ``"end"``. ``text`` is the name upper-cased (compare
    keywords with it), a string's quote character, or a number or operator as
    written. ``value`` is the name, string or quoted name as a ``str``, a
    number as ``int`` or ``float``, an operator as written; ``pos`` is the
    offset of its first character.
    """

    kind: str
    text: str
    value: Any
    pos: int


@dataclass(frozen=True)
class Dialect:
    """What a front end's tokens differ in (see the module docstring)."""

    ops: re.Pattern[str]
    signed_numbers: bool
    escapes: Mapping[str, str]
    strict_escapes: bool  # an unknown escape is an error; else it keeps its backslash


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}

DDL = Dialect(ops=re.compile(r"[(),;=]"), signed_numbers=True, escapes={**_ESCAPES, "/": "/"},
              strict_escapes=True)
RULES = Dialect(ops=re.compile(r"->|<>|!=|<=|>=|[-+*/%=<>(),.\[\]:;&|^!]"), signed_numbers=False,
                escapes=_ESCAPES, strict_escapes=False)

# White space and comments, as eKuiper's scanner skips them: ``/* ... */`` and ``--`` to the end
# of the line (so ``a--1`` is ``a`` and a comment there, as in eKuiper, not ``a - -1``).
_SPACE = re.compile(r"(?:\s+|/\*.*?\*/|--[^\n]*)*", re.DOTALL)
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SIGNED_NUMBER = re.compile(r"[+-]?" + _NUMBER.pattern)
_NAME = re.compile(r"[^\W\d]\w*")
_WORD_CHAR = re.compile(r"\w")


class Lexer(Generic[E]):
    """The tokens of ``sql`` in ``dialect``; errors are ``error`` (a :class:`ParseError` class)."""

    def __init__(self, sql: str, dialect: Dialect, error: type[E]) -> None:
        self.sql = sql
        self.dialect = dialect
        self._error = error
        self._lines = [0] + [m.end() for m in re.finditer("\n", sql)]
        self._number = _SIGNED_NUMBER if dialect.signed_numbers else _NUMBER

    def position(self, pos: int) -> tuple[int, int]:
        """1-based line and column of offset ``pos``."""
        line = bisect_right(self._lines, pos)
        return line, pos - self._lines[line - 1] + 1

    def error(self, message: str, pos: int) -> E:
        line, column = self.position(pos)
        return self._error(message, line=line, column=column)

    def tokens(self) -> list[Token]:
        """Every token, then one ``end`` token."""
        out: list[Token] = []
        pos = 0
        while True:
            token, pos = self.scan(pos)
            out.append(token)
            if token.kind == "end":
                return out

    def skip_space(self, pos: int, end: int | None = None) -> int:
        """The offset of the next token at or after ``pos``: white space and comments skipped."""
        sql = self.sql
        end = len(sql) if end is None else end
        match = _SPACE.match(sql, pos, end)
        assert match is not None  # the pattern matches the empty string
        pos = match.end()
        if sql.startswith("/*", pos) and pos + 2 <= end:
            raise self.error("unterminated /* comment", pos)
        return pos

    def scan(self, pos: int, end: int | None = None) -> tuple[Token, int]:
        """The token at or after ``pos`` (text beyond ``end`` is not read) and where the next one starts."""
        sql = self.sql
        end = len(sql) if end is None else end
        pos = self.skip_space(pos, end)
        if pos >= end:
            return Token("end", "", None, end), end
        char = sql[pos]
        if char in "\"'":
            return self._string(pos, end)
        if char == "`":
            close = sql.find("`", pos + 1, end)
            if close < 0:
                raise self.error("unterminated quoted identifier: expected a closing '`'", pos)
            if close == pos + 1:
                raise self.error("empty quoted identifier", pos)
            text = sql[pos + 1 : close]
            return Token("quoted", text, text, pos), close + 1
        match = self._number.match(sql, pos, end)
        if match is not None:
            return self._number_token(match, pos, end)
        match = _NAME.match(sql, pos, end)
        if match is not None:
            text = match.group()
            return Token("name", text.upper(), text, pos), match.end()
        match = self.dialect.ops.match(sql, pos, end)
        if match is not None:
            text = match.group()
            return Token("op", text, text, pos), match.end()
        raise self.error(f"unexpected character {char!r}", pos)

    def _number_token(self, match: re.Match[str], pos: int, end: int) -> tuple[Token, int]:
        text, after = match.group(), match.end()
        if after < end and _WORD_CHAR.match(self.sql, after):
            raise self.error(f"invalid number {text + self.sql[after]!r}", pos)
        try:
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:  # more digits than int() converts
            raise self.error("number literal too long", pos) from None
        return Token("number", text, value, pos), after

    def _string(self, start: int, end: int) -> tuple[Token, int]:
        sql, quote = self.sql, self.sql[start]
        escapes, strict = self.dialect.escapes, self.dialect.strict_escapes
        parts: list[str] = []
        pos = start + 1
        while True:
            found = [i for i in (sql.find(quote, pos, end), sql.find("\\", pos, end)) if i >= 0]
            stop = min(found, default=-1)
            if stop < 0:
                raise self.error(f"unterminated string: expected a closing {quote}", start)
            parts.append(sql[pos:stop])
            if sql[stop] == quote:
                return Token("string", quote, "".join(parts), start), stop + 1
            escaped = sql[stop + 1 : stop + 2] if stop + 1 < end else ""
            if not escaped:
                raise self.error(f"unterminated string: expected a closing {quote}", start)
            if escaped in escapes:
                parts.append(escapes[escaped])
            elif strict:
                raise self.error(f"invalid escape sequence \\{escaped} in string", stop)
            else:
                parts.append("\\" + escaped)  # kept: LIKE's \% and \_
            pos = stop + 2
