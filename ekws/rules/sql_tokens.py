"""Rule SQL's tokens: the rules' dialect of the one lexer (:mod:`ekws.sqllex`), the keyword
tables, and :class:`TokenParser`, the parser's state and token helpers.

Part of the rule SQL parser; :mod:`ekws.rules.sql` is its entry point and documents the language.
"""

from __future__ import annotations

from typing import Optional

from .. import sqllex
from ..errors import SQLError
from .aggregates import AGGREGATES
from .expr import Expr, Fn
from .functions import analytic
from .grouping import AggSpec, HitState
from .sql_query import FieldRef
from .window import StateConditions

MAX_DEPTH = 64  # nesting of parentheses and operators: bounds the recursion on hostile input


# One lexer for rule SQL and CREATE STREAM (ekws.sqllex); the rules' dialect of it.
Token = sqllex.Token


RESERVED = frozenset((
    "SELECT", "FROM", "JOIN", "LEFT", "RIGHT", "FULL", "CROSS", "INNER", "ON", "WHERE", "GROUP", "ORDER",
    "HAVING", "BY", "ASC", "DESC", "AND", "OR", "CASE", "WHEN", "THEN", "ELSE", "END", "IN", "NOT",
    "BETWEEN", "LIKE", "OVER", "PARTITION", "AS", "IS", "NULL", "TRUE", "FALSE", "LIMIT", "EXCEPT", "REPLACE",
))

CLAUSES = {
    "JOIN": "JOIN", "LEFT": "JOIN", "RIGHT": "JOIN", "FULL": "JOIN", "CROSS": "JOIN",
    "INNER": "JOIN", "OVER": "OVER (analytic functions)", "PARTITION": "PARTITION BY",
}
WINDOWS = frozenset((
    "TUMBLINGWINDOW", "HOPPINGWINDOW", "SLIDINGWINDOW", "SESSIONWINDOW", "COUNTWINDOW", "STATEWINDOW",
))
AGGREGATE_NAMES = frozenset(name.upper() for name in AGGREGATES)
NOT_RUN = frozenset(("FIRST_VALUE", "ROW_NUMBER"))
ANALYTIC_NAMES = frozenset((
    "LAG", "LATEST", "CHANGED_COL", "HAD_CHANGED", "CHANGED_COLS", "ACC_SUM", "ACC_AVG", "ACC_MIN",
    "ACC_MAX", "ACC_COUNT",
))


class RuleLexer(sqllex.Lexer[SQLError]):
    def __init__(self, sql: str) -> None:
        super().__init__(sql, sqllex.RULES, SQLError)


def describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the statement"
    if token.kind == "string":
        return f"string {token.value!r}"
    if token.kind == "quoted":
        return f"`{token.value}`"
    return repr(token.value)


# Compiled by the parser, not looked up in the function table (row_number is in NOT_RUN for windows).
EXPANDING_OR_COUNTING = frozenset(("ROW_NUMBER", "LAST_HIT_COUNT", "LAST_HIT_TIME", "UNNEST", "EXTRACT",
                                    "CHANGED_COLS"))


class TokenParser:
    """The parser's state and its token helpers; the grammar is in its subclasses."""

    def __init__(self, sql: str, rule_id: str = "") -> None:
        self.sql = sql
        self.rule_id = rule_id  # for rule_id()
        self.lexer = RuleLexer(sql)
        self.tokens = self.lexer.tokens()
        self.i = 0
        self.stream = ""
        self.alias: Optional[str] = None
        self.depth = 0
        self.aliases: set[str] = set()  # select aliases defined so far
        self.references: list[FieldRef] = []
        self.in_select = False
        self.in_where = False
        self.in_aggregate = False
        self.aggregate_tokens: list[Token] = []
        self.agg_specs: list[AggSpec] = []  # every aggregate call, by slot (incremental windows)
        self.group_keys: list[Expr] = []  # GROUP BY expressions besides the window
        self.hits = HitState()  # last_agg_hit_count() and last_agg_hit_time()
        self.uses_hits = False
        self.hits_in_having = False
        self.in_having = False
        self.hit_calls = 0
        self.hit_aliases: set[str] = set()  # select aliases of expressions calling last_agg_hit_*
        self.tail_aliases: Optional[dict[str, Expr]] = None  # HAVING and ORDER BY read select aliases
        self.window_filter: Optional[Expr] = None
        self.window_trigger: Optional[Fn] = None
        self.state_conditions: Optional[StateConditions] = None
        self.analytics: list[analytic.Stateful] = []  # in the order they must update
        self.expanding: list[tuple[Token, Expr]] = []  # changed_cols, unnest: whole select items
        self.unnest_key: Optional[str] = None  # the select item unnest() fills
        self.row_numbers: list[Token] = []  # and last_hit_*(): per-record queries only
        self.last_hits: Optional[analytic.Hits] = None

    # -- token helpers --------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def error(self, message: str, token: Token) -> SQLError:
        return self.lexer.error(message, token.pos)

    def unexpected(self, expected: str) -> SQLError:
        token = self.peek()
        self.refuse_clause(token)
        if token.kind == "op" and token.text in ("&", "|", "^"):
            return self.error(f"the bitwise operator {token.text!r} is not supported by ekws rules", token)
        return self.error(f"expected {expected}, got {describe(token)}", token)

    def at(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.text == word

    def at_op(self, op: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text == op

    def accept(self, word: str) -> bool:
        if self.at(word):
            self.take()
            return True
        return False

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.take()
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.accept(word):
            raise self.unexpected(word)

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.unexpected(repr(op))

    def at_name(self, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "quoted" or (token.kind == "name" and token.text not in RESERVED)

    def name(self, what: str) -> str:
        if self.at_name():
            return str(self.take().value)
        raise self.unexpected(what)

    def refuse_clause(self, token: Token) -> None:
        """Name a clause ekws does not run, where a clause may start."""
        if token.kind != "name" or token.text not in CLAUSES:
            return
        raise self.error(f"{CLAUSES[token.text]} is not supported by ekws rules "
                         "(a rule reads one stream)", token)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", self.peek())

    # -- statement ------------------------------------------------------------------

    def prescan_from(self) -> None:
        """Find the stream name and alias first: select items may be prefixed with either."""
        depth = 0
        for n, token in enumerate(self.tokens):
            if token.kind == "op" and token.text in "([":
                depth += 1
            elif token.kind == "op" and token.text in ")]":
                depth -= 1
            elif depth == 0 and token.kind == "name" and token.text == "FROM":
                saved, self.i = self.i, n + 1
                if self.at_name():
                    self.stream = str(self.take().value)
                    if self.accept("AS") and self.at_name() or self.at_name():
                        self.alias = str(self.peek().value)
                self.i = saved
                return
