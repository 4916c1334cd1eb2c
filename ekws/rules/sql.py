"""The rule SQL subset: parsed once, compiled into Python functions.

Per record one generated function runs (``Query.run``): the WHERE and the
projection as inline Python source made once from fixed templates, with the
SQL's names and literals bound as values, never pasted in as code; the pieces
with no inline form are closures it calls (:mod:`ekws.rules.expr`, which
also holds the value semantics below). Nothing is parsed again.

ekws is not a SQL engine: it runs eKuiper's rule language over one stream,
exactly as eKuiper runs it, and refuses everything else with the
construct's name and 1-based position, never half-run::

    query     := SELECT select FROM stream [[AS] alias] [WHERE condition]
                 [GROUP BY group {',' group}] [HAVING condition]
                 [ORDER BY expr [ASC|DESC] {',' expr [ASC|DESC]}] [LIMIT n] [';']
    select    := '*' [',' item {',' item}] | item {',' item}
    item      := expr [AS name]
    group     := window [FILTER '(' WHERE condition ')'] [OVER '(' WHEN condition ')'] | expr
    window    := TUMBLINGWINDOW(unit, size) | HOPPINGWINDOW(unit, size, hop)
               | SLIDINGWINDOW(unit, size[, delay]) | SESSIONWINDOW(unit, maxDuration, timeout)
               | COUNTWINDOW(count[, interval])          (unit: DD HH MI SS MS)
               | STATEWINDOW(begin[, emit]) [OVER '(' PARTITION BY expr {',' expr} ')']

A query with a window is a :class:`~ekws.rules.grouping.Grouping` (``Query.grouping``):
``run`` is then the WHERE (and the window's FILTER) alone, the windows are
:mod:`ekws.rules.window`, the aggregates :mod:`ekws.rules.aggregates`
(``avg count max min sum collect last_value merge_agg deduplicate median
stddev stddevs var vars percentile percentile_cont percentile_disc``, and
``window_start()``/``window_end()``, ``event_time()``). Aggregates need a window; ``GROUP BY``
fields, ``HAVING``, ``ORDER BY`` and ``LIMIT`` need one too (without, a rule
emits each record alone); ``HAVING`` and ``ORDER BY`` may name select aliases.

Expressions (keywords and function names are case-insensitive; the stream
name and field names are case-sensitive, as in eKuiper):

- literals: ``12``, ``-1.5``, ``2e3``, ``"text"`` or ``'text'`` (backslash
  escapes), ``TRUE``, ``FALSE``, ``NULL``;
- fields: ``a``, nested ``a.b`` or ``a->b``, array index ``a[0]``/``a[-1]``,
  ``demo.a`` (the stream name or its alias as a prefix), `` `odd name` ``;
- ``meta(key)``: the record's metadata: ``stream``, ``datasource``, ``peer``,
  ``connection``, ``timestamp`` (receive time, ms);
- arithmetic ``+ - * / %`` (numbers only; ``/`` of two integers is integer
  division, as in eKuiper), unary ``-``;
- comparisons ``= != <> < > <= >=``, ``[NOT] BETWEEN x AND y``,
  ``[NOT] IN (x, y, ...)`` or ``[NOT] IN array_field``, ``[NOT] LIKE
  pattern`` (``%`` any run, ``_`` one character, ``\\%``/``\\_`` literal),
  ``IS [NOT] NULL``, ``AND``, ``OR``, ``NOT``, parentheses;
- ``CASE [value] WHEN ... THEN ... [ELSE ...] END``;
- functions: eKuiper's scalar function library and Python functions of your
  own, by name in any case (:mod:`ekws.rules.functions`): ``upper(s)``,
  ``round(x, 2)``, ``format_time(ts, "yyyy-MM-dd")``, ``split_value(s, "/", 0)``
  ... The argument count and literal arguments are checked here.
- analytic functions with state (:mod:`ekws.rules.functions.analytic`):
  ``lag latest changed_col had_changed acc_*``, each with an optional
  ``OVER ([PARTITION BY expr, ...] [WHEN condition])``, evaluated on every
  record before the WHERE;
- select items that expand (per-record queries): ``changed_cols(prefix,
  ignoreNull, col, ...)`` gives the changed columns as ``prefix + name``
  (``*``: every field), ``unnest(array)`` (or ``extract(object)``) turns one
  record into a row per element, ``row_number()`` is 1 (each record is its
  own set); ``last_hit_count()``/``last_hit_time()``: the records the rule
  sent before this one, and the event time of the last.

Null semantics (eKuiper's): a missing field is null; a comparison, LIKE,
IN or BETWEEN with a null operand is false; arithmetic of null is null;
most functions of null are null, but each follows eKuiper (``concat`` skips
a null, ``length(null)`` is 0, ``startswith`` of null is false); a WHERE
that is not exactly true drops the record. Equality across kinds (a number and a string) is simply unequal;
ordering across kinds, arithmetic on a non-number or dividing by zero is an
:class:`EvalError` for that record only.

Output keys: an alias, else a field's last name (``a.b`` gives ``b``,
``a[0]`` gives ``a``), else a function's name (``lower``), else
``kuiper_field_<n>`` (the n-th unnamed expression, from 0), as eKuiper names
them. ``SELECT *`` passes the record itself; ``SELECT *, x AS y`` adds to a copy.

``last_agg_hit_count()`` and ``last_agg_hit_time()`` (a window query's
count of emitted rows and the window end of the last, before this row; in
HAVING only a row that passes counts) are :mod:`ekws.rules.grouping`'s.

Refused, each with its position: multi-column
``changed_cols``, analytic functions in a window query, JOIN, ``* EXCEPT``/``*
REPLACE``, array slices, a second stream, select aliases used in later select
items, and an unknown function. Every parse problem is a :class:`SQLError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, cast

from .. import Message, sqllex
from ..errors import SQLError
from . import functions
from .aggregates import AGGREGATES
from .expr import (
    EvalError,
    Expr,
    Fn,
    Record,
    Spread,
    and_expr,
    arithmetic_op,
    between_op,
    comparison_op,
    const_value,
    equal,
    getter,
    is_null_expr,
    kind_of,
    like_op,
    make_literal,
    not_expr,
    or_expr,
    query_fns,
    unnest_rows,
)
from .functions import analytic
from .grouping import (
    AggSpec,
    Grouping,
    HitState,
    agg_spec,
    aggregate_expr,
    event_time_expr,
    hit_expr,
    window_bound_expr,
)
from .window import UNITS, StateConditions, WindowSpec

__all__ = ["EvalError", "FieldRef", "Query", "SQLError", "check_fields", "parse_query"]

MAX_SQL_LENGTH = 64 * 1024
MAX_DEPTH = 64  # nesting of parentheses and operators: bounds the recursion on hostile input



# --------------------------------------------------------------------------- tokens


# One lexer for rule SQL and CREATE STREAM (ekws.sqllex); the rules' dialect of it.
_Token = sqllex.Token


RESERVED = frozenset((
    "SELECT", "FROM", "JOIN", "LEFT", "RIGHT", "FULL", "CROSS", "INNER", "ON", "WHERE", "GROUP", "ORDER",
    "HAVING", "BY", "ASC", "DESC", "AND", "OR", "CASE", "WHEN", "THEN", "ELSE", "END", "IN", "NOT",
    "BETWEEN", "LIKE", "OVER", "PARTITION", "AS", "IS", "NULL", "TRUE", "FALSE", "LIMIT", "EXCEPT", "REPLACE",
))

_CLAUSES = {
    "JOIN": "JOIN", "LEFT": "JOIN", "RIGHT": "JOIN", "FULL": "JOIN", "CROSS": "JOIN",
    "INNER": "JOIN", "OVER": "OVER (analytic functions)", "PARTITION": "PARTITION BY",
}
_WINDOWS = frozenset((
    "TUMBLINGWINDOW", "HOPPINGWINDOW", "SLIDINGWINDOW", "SESSIONWINDOW", "COUNTWINDOW", "STATEWINDOW",
))
_AGGREGATES = frozenset(name.upper() for name in AGGREGATES)
_NOT_RUN = frozenset(("FIRST_VALUE", "ROW_NUMBER"))
_ANALYTIC = frozenset((
    "LAG", "LATEST", "CHANGED_COL", "HAD_CHANGED", "CHANGED_COLS", "ACC_SUM", "ACC_AVG", "ACC_MIN",
    "ACC_MAX", "ACC_COUNT",
))


class _Lexer(sqllex.Lexer[SQLError]):
    def __init__(self, sql: str) -> None:
        super().__init__(sql, sqllex.RULES, SQLError)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the statement"
    if token.kind == "string":
        return f"string {token.value!r}"
    if token.kind == "quoted":
        return f"`{token.value}`"
    return repr(token.value)


# --------------------------------------------------------------------------- the query


class FieldRef(NamedTuple):
    """A field the SQL reads: its path (names, and integer indexes) and 1-based position."""

    path: tuple[Any, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Query:
    """A compiled rule query.

    ``run`` is what a rule calls: it updates the analytic functions (``lag`` ...)
    first, then filters and projects. ``matches`` and ``project`` only read the
    analytic values ``run`` left. They are closures built once; they raise
    :class:`EvalError` (or, for a record of unexpected shape, another
    exception the caller counts) for one record, never for the rule.
    """

    sql: str
    stream: str
    alias: Optional[str]
    select_all: bool
    fields: tuple[str, ...]  # output keys of the select items, in order
    has_where: bool
    condition: Optional[Fn]  # the WHERE closure over (record, message); a record passes on ``is True``
    projector: Optional[Callable[[Message], Record]]  # None for ``SELECT *`` alone
    # The WHERE and the projection as one function: the output record, or None when
    # the WHERE drops the message (``SELECT *``: the message's own record).
    run: Callable[[Message], Optional[Record]]
    references: tuple[FieldRef, ...] = ()  # every field read, in the order written (not meta())
    # lag(), acc_sum() ... and changed_cols(): state, updated by run()
    analytics: tuple[analytic.Stateful, ...] = ()
    # GROUP BY a window: the window, groups, HAVING, ORDER BY and LIMIT (``run`` is then
    # the WHERE alone: the record, or None); None for a per-record query.
    grouping: Optional[Grouping] = None

    def reset(self) -> None:
        """Empty the analytic functions' state (a rule starting again starts from nothing)."""
        for node in self.analytics:
            node.reset()
        if self.grouping is not None and self.grouping.hits is not None:
            self.grouping.hits.reset()  # last_agg_hit_count() starts from 0 again

    def matches(self, msg: Message) -> bool:
        """True when the record passes the WHERE clause (always, without one)."""
        return True if self.condition is None else self.condition(msg.data, msg) is True

    def project(self, msg: Message) -> dict[str, Any]:
        """The output record; ``SELECT *`` alone returns ``msg.data`` itself."""
        return msg.data if self.projector is None else self.projector(msg)


def parse_query(sql: str, *, rule_id: str = "") -> Query:
    """Parse and compile a rule's SQL.

    Raises:
        SQLError: malformed, or a construct ekws does not run (named, with its position).
    """
    if not isinstance(sql, str):
        raise SQLError(f"the rule's sql must be a string, got {type(sql).__name__}")
    if len(sql) > MAX_SQL_LENGTH:
        raise SQLError(f"the rule's sql is longer than {MAX_SQL_LENGTH} characters")
    return _Parser(sql, rule_id).query()


def _unnested(projector: Optional[Callable[[Message], Record]], run: Callable[[Message], Optional[Record]],
              key: str, name: str
              ) -> tuple[Callable[[Message], Record], Callable[[Message], Optional[Record]]]:
    """The query with its ``unnest`` item expanded: each record gives :class:`~ekws.rules.expr.Rows`
    (typed as a record: a rule tells them apart by ``type(out) is Rows``)."""
    project = projector if projector is not None else (lambda m: m.data)

    def project_rows(m: Message) -> Record:
        return cast(Record, unnest_rows(project(m), key, name))

    def run_rows(m: Message) -> Optional[Record]:
        record = run(m)
        return None if record is None else cast(Record, unnest_rows(record, key, name))
    return project_rows, run_rows


# Compiled by the parser, not looked up in the function table (row_number is in _NOT_RUN for windows).
_EXPANDING_OR_COUNTING = frozenset(("ROW_NUMBER", "LAST_HIT_COUNT", "LAST_HIT_TIME", "UNNEST", "EXTRACT",
                                    "CHANGED_COLS"))


def _counting_hits(hits: analytic.Hits, run: Callable[[Message], Optional[Record]]
                   ) -> Callable[[Message], Optional[Record]]:
    """A record that passed the WHERE moves ``last_hit_count()`` and ``last_hit_time()`` on."""
    def run_counted(m: Message) -> Optional[Record]:
        record = run(m)
        if record is not None:
            hits.hit(m.timestamp)
        return record
    return run_counted


def _analytics_first(stateful: tuple[analytic.Stateful, ...], run: Callable[[Message], Optional[Record]]
                     ) -> Callable[[Message], Optional[Record]]:
    """eKuiper evaluates analytic functions first, on every record, WHERE or not
    (``changed_cols`` is left to the projection)."""
    nodes = tuple(node for node in stateful if node.first)
    if not nodes:
        return run

    def run_analytics(m: Message) -> Optional[Record]:
        d = m.data
        for node in nodes:
            node.update(d, m)
        return run(m)
    return run_analytics


class _Parser:
    def __init__(self, sql: str, rule_id: str = "") -> None:
        self.sql = sql
        self.rule_id = rule_id  # for rule_id()
        self.lexer = _Lexer(sql)
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
        self.aggregate_tokens: list[_Token] = []
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
        self.expanding: list[tuple[_Token, Expr]] = []  # changed_cols, unnest: whole select items
        self.unnest_key: Optional[str] = None  # the select item unnest() fills
        self.row_numbers: list[_Token] = []  # and last_hit_*(): per-record queries only
        self.last_hits: Optional[analytic.Hits] = None

    # -- token helpers --------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def error(self, message: str, token: _Token) -> SQLError:
        return self.lexer.error(message, token.pos)

    def unexpected(self, expected: str) -> SQLError:
        token = self.peek()
        self.refuse_clause(token)
        if token.kind == "op" and token.text in ("&", "|", "^"):
            return self.error(f"the bitwise operator {token.text!r} is not supported by ekws rules", token)
        return self.error(f"expected {expected}, got {_describe(token)}", token)

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

    def refuse_clause(self, token: _Token) -> None:
        """Name a clause ekws does not run, where a clause may start."""
        if token.kind != "name" or token.text not in _CLAUSES:
            return
        raise self.error(f"{_CLAUSES[token.text]} is not supported by ekws rules "
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

    def query(self) -> Query:
        self.prescan_from()
        self.expect("SELECT")
        select_all, items = self.select_list()
        self.expect("FROM")
        self.name("a stream name")
        if self.accept("AS") or self.at_name():
            self.name("a stream alias")
        if self.at_op(","):
            raise self.error("a second stream is not supported by ekws rules (nor is JOIN)", self.peek())
        where: Optional[Expr] = None
        if self.accept("WHERE"):
            self.in_where = True
            where = self.expr()
            self.in_where = False
        grouping_parts = self.group_by(items)
        self.refuse_clause(self.peek())
        self.accept_op(";")
        if self.peek().kind != "end":
            raise self.unexpected("WHERE or the end of the statement" if where is None
                                  else "an operator or the end of the statement")
        grouping = None
        if grouping_parts is not None and (self.expanding or self.row_numbers):
            token = (self.expanding[0][0] if self.expanding else self.row_numbers[0])
            raise self.error(f"{token.text.lower()}() in a window query is not supported by ekws rules",
                             token)
        if grouping_parts is not None:
            if self.analytics:
                raise SQLError("analytic functions (lag, acc_sum ...) in a window query are not "
                               "supported by ekws rules")
            # The aggregates read the group's rows: compile the projection only now.
            projector, _ = query_fns(select_all, items, None)
            # What reaches the window: the WHERE and the window's FILTER (WHERE ...).
            taken = where if self.window_filter is None else self.window_filter if where is None else (
                and_expr(where, self.window_filter))
            _, run = query_fns(True, [], taken)
            window, keys, having, order, limit = grouping_parts
            aggregated = bool(self.aggregate_tokens or keys)
            grouping = Grouping(window, keys, aggregated, having, order, limit,
                                projector if projector is not None else lambda m: dict(m.data),
                                self.window_trigger, self.state_conditions, tuple(self.agg_specs),
                                not aggregated or not all(a.incremental for a in self.agg_specs),
                                tuple(self.group_keys), self.hits if self.uses_hits else None,
                                self.hits_in_having)
        elif self.aggregate_tokens:
            token = self.aggregate_tokens[0]
            raise self.error(f"the aggregate function {token.text} needs a window: add GROUP BY "
                             "TUMBLINGWINDOW(ss, 10) or another window", token)
        else:
            projector, run = query_fns(select_all, items, where)
            if self.unnest_key is not None:
                srf = self.expanding[0][0].text.lower()
                projector, run = _unnested(projector, run, self.unnest_key, srf)
            if self.analytics:
                run = _analytics_first(tuple(self.analytics), run)
            if self.last_hits is not None:
                run = _counting_hits(self.last_hits, run)
        return Query(self.sql, self.stream, self.alias, select_all, tuple(item[0] for item in items),
                     where is not None, where.fn if where is not None else None, projector, run,
                     tuple(self.references), tuple(self.analytics), grouping)

    def group_by(self, items: list[tuple[str, Expr]]) -> Optional[tuple[
            WindowSpec, tuple[Fn, ...], Optional[Fn], tuple[tuple[Fn, bool], ...], Optional[int]]]:
        """``GROUP BY`` (one window, fields), ``HAVING``, ``ORDER BY``, ``LIMIT``; None without a window."""
        window: Optional[WindowSpec] = None
        keys: list[Fn] = []
        start = self.peek()
        if self.accept("GROUP"):
            self.expect("BY")
            while True:
                token = self.peek()
                if token.kind == "name" and token.text in _WINDOWS and self.peek(1).text == "(":
                    if window is not None:
                        raise self.error("GROUP BY takes one window", token)
                    window = self.window()
                else:
                    key_expr = self.expr()
                    keys.append(key_expr.fn)
                    self.group_keys.append(key_expr)
                if not self.accept_op(","):
                    break
        self.tail_aliases = {name: expr for name, expr in items}
        having: Optional[Fn] = None
        order_token: Optional[_Token] = None
        limit_token: Optional[_Token] = None
        limit: Optional[int] = None
        if self.at("HAVING"):
            having_token = self.take()
            self.in_having = True
            having = self.expr().fn
            self.in_having = False
            if window is None:
                raise self.error("HAVING needs a GROUP BY window", having_token)
        order: list[tuple[Fn, bool]] = []
        if self.at("ORDER"):
            order_token = self.take()
            self.expect("BY")
            while True:
                key = self.expr().fn
                descending = self.accept("DESC")
                if not descending:
                    self.accept("ASC")
                order.append((key, descending))
                if not self.accept_op(","):
                    break
        if self.at("LIMIT"):
            limit_token = self.take()
            count = self.take()
            if count.kind != "number" or type(count.value) is not int:
                raise self.error("LIMIT needs an integer", count)
            limit = count.value
        self.tail_aliases = None
        if window is None:
            if keys:
                raise self.error("GROUP BY without a window is not supported by ekws rules: add "
                                 "TUMBLINGWINDOW(ss, 10) or another window", start)
            if order_token is not None:
                raise self.error("ORDER BY needs a GROUP BY window (a rule without one emits "
                                 "each record alone)", order_token)
            if limit_token is not None:
                raise self.error("LIMIT needs a GROUP BY window", limit_token)
            return None
        return window, tuple(keys), having, tuple(order), limit

    def window(self) -> WindowSpec:
        token = self.take()
        kind = token.text
        self.expect_op("(")
        if kind == "STATEWINDOW":
            return self.state_window()
        unit = "SS"
        if kind != "COUNTWINDOW":
            unit_token = self.peek()
            if unit_token.kind != "name" or unit_token.text not in UNITS:
                raise self.error(f"{kind} needs a time unit first: {', '.join(UNITS)}", unit_token)
            unit = self.take().text
        sizes: list[int] = []
        while (kind == "COUNTWINDOW" and not sizes) or self.accept_op(","):
            size = self.take()
            if size.kind != "number" or type(size.value) is not int or size.value <= 0:
                raise self.error(f"{kind} needs positive integer sizes", size)
            sizes.append(size.value)
        self.expect_op(")")
        least, most = {"TUMBLINGWINDOW": (1, 1), "HOPPINGWINDOW": (2, 2), "SLIDINGWINDOW": (1, 2),
                       "SESSIONWINDOW": (2, 2), "COUNTWINDOW": (1, 2)}[kind]
        if not least <= len(sizes) <= most:
            raise self.error(f"{kind} takes {least if least == most else f'{least} or {most}'} "
                             f"size{'s' if most > 1 else ''}, got {len(sizes)}", token)
        if self.accept("FILTER"):  # FILTER (WHERE cond): the rows the window takes
            self.expect_op("(")
            self.expect("WHERE")
            self.in_where = True
            self.window_filter = self.expr()
            self.in_where = False
            self.expect_op(")")
        if self.at("OVER"):  # OVER (WHEN cond): which rows trigger a sliding window
            over = self.take()
            if kind != "SLIDINGWINDOW":
                raise self.error(f"OVER (WHEN ...) is for SLIDINGWINDOW, not {kind}", over)
            self.expect_op("(")
            self.expect("WHEN")
            self.in_where = True
            self.window_trigger = self.expr().fn
            self.in_where = False
            self.expect_op(")")
        if self.at("FILTER"):
            raise self.error("FILTER comes before OVER", self.peek())
        scale = UNITS[unit]
        if kind == "TUMBLINGWINDOW":
            return WindowSpec("tumbling", unit, sizes[0], sizes[0] * scale)
        if kind == "HOPPINGWINDOW":
            # Aligned on the hop, as eKuiper's planner does (RawInterval).
            return WindowSpec("hopping", unit, sizes[1], sizes[0] * scale, sizes[1] * scale)
        if kind == "SLIDINGWINDOW":
            delay = sizes[1] * scale if len(sizes) > 1 else 0
            return WindowSpec("sliding", unit, sizes[0], sizes[0] * scale, delay=delay)
        if kind == "SESSIONWINDOW":
            # As eKuiper's window op reads it: the first size is the window's Length (the
            # maximum duration, its ticks aligned on it), the second its Interval (the timeout).
            return WindowSpec("session", unit, sizes[0], sizes[0] * scale, sizes[1] * scale)
        count = sizes[0]
        interval = sizes[1] if len(sizes) > 1 else count
        if interval > count:
            raise self.error("COUNTWINDOW's interval must not exceed its count", token)
        return WindowSpec("count", count=count, count_interval=interval)

    def select_list(self) -> tuple[bool, list[tuple[str, Expr]]]:
        select_all = False
        items: list[tuple[str, Expr]] = []
        if self.at_op("*"):
            self.take()
            select_all = True
            if self.at("EXCEPT") or self.at("REPLACE"):
                raise self.error(f"* {self.peek().text} is not supported by ekws rules", self.peek())
            if not self.accept_op(","):
                return select_all, items
        unnamed = 0
        while True:
            if self.at_op("*"):
                raise self.error("'*' must come first in the select list", self.peek())
            expanding = len(self.expanding)
            self.in_select = True
            calls = self.hit_calls
            expr = self.expr()
            self.in_select = False
            name = expr.name
            if self.hit_calls > calls and self.at("AS"):
                self.hit_aliases.add(str(self.peek(1).value))
            if self.accept("AS"):
                name = self.name("a field alias")
                self.aliases.add(name)
            elif name is None:
                name = f"kuiper_field_{unnamed}"
                unnamed += 1
            if len(self.expanding) > expanding:  # changed_cols, unnest: whole items
                name = self.expanding_item(expanding, expr, name)
            items.append((name, expr))
            if not self.accept_op(","):
                return select_all, items

    # -- expressions -----------------------------------------------------------------

    def expr(self) -> Expr:
        self.enter()
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.accept("OR"):
            right = self.and_expr()
            left = or_expr(left, right)
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.accept("AND"):
            right = self.not_expr()
            left = and_expr(left, right)
        return left

    def not_expr(self) -> Expr:
        if self.accept("NOT"):
            self.enter()
            try:
                inner = self.not_expr()
            finally:
                self.depth -= 1
            return not_expr(inner)
        return self.predicate()

    def predicate(self) -> Expr:
        left = self.additive()
        token = self.peek()
        if token.kind == "op" and token.text in ("=", "!=", "<>", "<", ">", "<=", ">="):
            self.take()
            op = "!=" if token.text == "<>" else token.text
            return comparison_op(op, left, self.additive())
        if self.accept("IS"):
            negate = self.accept("NOT")
            self.expect("NULL")
            return is_null_expr(left, negate)
        negate = False
        if self.at("NOT") and self.peek(1).kind == "name" and self.peek(1).text in ("IN", "LIKE", "BETWEEN"):
            self.take()
            negate = True
        if self.accept("IN"):
            return self.in_list(left, negate)
        if self.accept("LIKE"):
            pattern_token = self.peek()
            pattern = self.additive()
            if pattern.const and not isinstance(const_value(pattern), (str, type(None))):
                raise self.error(f"LIKE needs a string pattern, got {_describe(pattern_token)}",
                                 pattern_token)
            return like_op(left, pattern, negate)
        if self.accept("BETWEEN"):
            low = self.additive()
            self.expect("AND")
            return between_op(left, low, self.additive(), negate)
        return left

    def in_list(self, left: Expr, negate: bool) -> Expr:
        a = left.fn
        if not self.at_op("("):
            array = self.additive().fn

            def in_array(d: Record, m: Message) -> bool:
                value, items = a(d, m), array(d, m)
                if value is None or items is None:
                    return False
                if not isinstance(items, list):
                    raise EvalError(f"IN needs an array on its right, got {kind_of(items)} {items!r:.40}")
                return any(equal(value, x) for x in items) is not negate
            return Expr(in_array, None, False)
        self.take()
        options = [self.expr()]
        while self.accept_op(","):
            options.append(self.expr())
        self.expect_op(")")
        if all(o.const for o in options):
            values = [const_value(o) for o in options]
            strings = frozenset(v for v in values if type(v) is str)
            others = [v for v in values if type(v) is not str and v is not None]

            def in_constants(d: Record, m: Message) -> bool:
                value = a(d, m)
                if value is None:
                    return False
                if type(value) is str:
                    return (value in strings) is not negate
                return any(equal(value, x) for x in others) is not negate
            return Expr(in_constants, None, False)
        fns = [o.fn for o in options]

        def in_expressions(d: Record, m: Message) -> bool:
            value = a(d, m)
            return value is not None and any(equal(value, f(d, m)) for f in fns) is not negate
        return Expr(in_expressions, None, False)

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.at_op("+") or self.at_op("-"):
            op = self.take().text
            left = arithmetic_op(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while self.at_op("*") or self.at_op("/") or self.at_op("%"):
            op = self.take().text
            left = arithmetic_op(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.at_op("-") or self.at_op("+"):
            op = self.take().text
            self.enter()
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if op == "+":
                return operand
            return arithmetic_op("-", make_literal(0), operand)
        return self.primary()

    def primary(self) -> Expr:
        token = self.peek()
        if token.kind in ("number", "string"):
            self.take()
            return make_literal(token.value)
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.expr()
            self.expect_op(")")
            return self.steps(inner._replace(name=None, root=None, key=None))
        if token.kind == "quoted":
            self.take()
            return self.field(token)
        if token.kind != "name":
            raise self.unexpected("an expression")
        if token.text in ("TRUE", "FALSE"):
            self.take()
            return make_literal(token.text == "TRUE")
        if token.text == "NULL":
            self.take()
            return make_literal(None)
        if token.text == "CASE":
            self.take()
            return self.case()
        if self.peek(1).kind == "op" and self.peek(1).text == "(" and token.text not in RESERVED:
            return self.steps(self.call())
        if token.text in RESERVED:
            raise self.unexpected("an expression")
        self.take()
        return self.field(token)

    def field(self, token: _Token) -> Expr:
        """A field reference: a name, then ``.name``, ``->name`` or ``[index]`` steps."""
        first = str(token.value)
        if self.tail_aliases is not None and first in self.tail_aliases and not (
                self.at_op(".") or self.at_op("->") or self.at_op("[")):
            if self.in_having and first in self.hit_aliases:  # HAVING lc < 4, lc a hit count
                self.hits_in_having = True
            return self.tail_aliases[first]
        if self.in_select and first in self.aliases:
            raise self.error(f"{first!r} is an earlier select alias; referring to select aliases "
                             "is not supported by ekws rules", token)
        path: list[Any] = [first]
        while self.at_op("."):
            self.take()
            if self.at_op("*"):
                raise self.error("'.*' projections are not supported by ekws rules", self.peek())
            path.append(self.name("a field name"))
        if len(path) > 1 and first in (self.stream, self.alias):
            path = path[1:]
        key = path[0] if len(path) == 1 else None
        line, column = self.lexer.position(token.pos)
        self.references.append(FieldRef(tuple(path), line, column))
        return self.steps(Expr(getter(tuple(path)), path[-1], False, path[0], key), path,
                          len(self.references) - 1)

    def steps(self, expr: Expr, path: Optional[list[Any]] = None, ref: int = -1) -> Expr:
        """``->name``, ``.name`` and ``[index]`` steps into a value (``ref``: the field's reference)."""
        steps: list[Any] = []
        name = expr.name
        while self.at_op("->") or self.at_op("[") or (self.at_op(".") and path is not None):
            bracket = self.take()
            if bracket.text == "[":
                index = self.expr()
                if self.at_op(":"):
                    raise self.error("array slices are not supported by ekws rules", bracket)
                self.expect_op("]")
                if not index.const or type(const_value(index)) is not int:
                    raise self.error("an array index must be an integer literal", bracket)
                steps.append(const_value(index))
            else:
                if self.at_op("*"):
                    raise self.error("'->*' projections are not supported by ekws rules", self.peek())
                steps.append(self.name("a field name"))
                name = steps[-1]
        if not steps:
            return expr
        if path is not None:
            self.references[ref] = self.references[ref]._replace(path=tuple(path + steps))
            return Expr(getter(tuple(path + steps)), name, False, expr.root)  # no longer a plain key
        base, get = expr.fn, getter(tuple(steps))

        def step_into(d: Record, m: Message) -> Any:
            value = base(d, m)
            return get(cast(Record, value), m) if isinstance(value, (dict, list)) else None
        return Expr(step_into, name, False)

    def call(self) -> Expr:
        token = self.take()
        upper = token.text
        if upper in _EXPANDING_OR_COUNTING:  # row_number, last_hit_*, unnest, extract, changed_cols
            return self.special_call(token)
        if upper in _WINDOWS:
            raise self.error(f"the window {upper} belongs in GROUP BY", token)
        if upper in _AGGREGATES:
            return self.aggregate(token)
        if upper in ("WINDOW_START", "WINDOW_END"):
            self.expect_op("(")
            self.expect_op(")")
            return window_bound_expr(upper.lower())
        if upper == "EVENT_TIME":
            self.expect_op("(")
            self.expect_op(")")
            return event_time_expr()
        if upper in ("LAST_AGG_HIT_COUNT", "LAST_AGG_HIT_TIME"):
            if self.in_where:
                raise self.error(f"the aggregate function {upper} is not allowed in WHERE (use HAVING)",
                                 token)
            self.expect_op("(")
            self.expect_op(")")
            self.aggregate_tokens.append(token)
            self.uses_hits = True
            self.hit_calls += 1
            self.hits_in_having = self.hits_in_having or self.in_having
            return hit_expr(upper.lower(), self.hits)
        if upper in _NOT_RUN:
            raise self.error(f"the function {upper} is not supported by ekws rules", token)
        if upper in _ANALYTIC and upper.lower() not in analytic.ANALYTIC:
            raise self.error(f"the analytic function {upper} is not supported by ekws rules", token)
        self.expect_op("(")
        if upper.lower() in analytic.ANALYTIC:
            return self.analytic(token)
        if upper == "META":
            return self.meta()
        try:
            fn = functions.lookup(token.value)
        except functions.FunctionError as exc:
            raise self.error(str(exc), token) from None
        args: list[Expr] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.accept_op(","):
                args.append(self.expr())
        self.expect_op(")")
        literals = [functions.Arg(const_value(a) if a.const else functions.NOT_CONST) for a in args]
        try:
            functions.check(fn, literals)
            impl = functions.bind(fn, literals, self.rule_id)
        except functions.FunctionError as exc:
            raise self.error(str(exc), token) from None
        except ValueError as exc:  # a literal the function refuses: a regular expression, a format
            raise self.error(f"{fn.name}: {exc}", token) from None
        return cast(Expr, functions.compile_call(fn, impl, args))

    def analytic(self, token: _Token) -> Expr:
        """``lag(x) OVER (PARTITION BY k WHEN c)``: a state of its own, updated before the WHERE."""
        args: list[Expr] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.accept_op(","):
                args.append(self.expr())
        self.expect_op(")")
        partition: list[Expr] = []
        when: Optional[Expr] = None
        if self.accept("OVER"):
            self.expect_op("(")
            if self.accept("PARTITION"):
                self.expect("BY")
                partition.append(self.expr())
                while self.accept_op(","):
                    partition.append(self.expr())
            if self.accept("WHEN"):
                when = self.expr()
            self.expect_op(")")
        literals = [functions.Arg(const_value(a) if a.const else functions.NOT_CONST) for a in args]
        try:
            node = analytic.make(token.text.lower(), [a.fn for a in args], literals,
                                 [p.fn for p in partition], when.fn if when is not None else None)
        except functions.FunctionError as exc:
            raise self.error(str(exc), token) from None
        self.analytics.append(node)
        return Expr(lambda d, m: node.value, node.name, False)

    def row_number(self, token: _Token) -> Expr:
        """``row_number()``: the row's number in its set; a per-record query's set is one record."""
        if not self.in_select:
            raise self.error("window functions can only be in select fields", token)
        self.expect_op("(")
        if not self.at_op(")"):
            raise self.error("row_number: Expect 0 arguments but found 1.", self.peek())
        self.expect_op(")")
        self.row_numbers.append(token)
        return make_literal(1)._replace(name="row_number")

    def special_call(self, token: _Token) -> Expr:
        if token.text == "ROW_NUMBER":
            return self.row_number(token)
        if token.text in ("LAST_HIT_COUNT", "LAST_HIT_TIME"):
            return self.last_hit(token)
        return self.expanding_call(token)

    def last_hit(self, token: _Token) -> Expr:
        """``last_hit_count()`` / ``last_hit_time()``: the records sent before this one, the last's time."""
        self.expect_op("(")
        if not self.at_op(")"):
            raise self.error(f"{token.text.lower()}: Expect 0 arguments but found 1.", self.peek())
        self.expect_op(")")
        self.row_numbers.append(token)
        if self.last_hits is None:
            self.last_hits = analytic.Hits()
            self.analytics.append(self.last_hits)
        hits = self.last_hits
        if token.text == "LAST_HIT_COUNT":
            return Expr(lambda d, m: hits.count, "last_hit_count", False)
        return Expr(lambda d, m: hits.time, "last_hit_time", False)

    def expanding_call(self, token: _Token) -> Expr:
        """``unnest(array)``, ``extract(object)`` (rows) and ``changed_cols(...)`` (columns):
        whole select items (checked by :meth:`expanding_item`), as eKuiper allows them."""
        name = token.text.lower()
        if not self.in_select:
            if name == "changed_cols":
                raise self.error(f"function {token.value} can only be used inside the select clause", token)
            raise self.error("select statement shouldn't has srf except fields", token)
        self.expect_op("(")
        args: list[Expr] = []
        columns: list[tuple[str, Optional[Fn]]] = []
        while not self.at_op(")"):
            if name == "changed_cols" and len(args) >= 2 and self.at_op("*"):
                self.take()
                columns.append(("*", None))
            else:
                start = self.peek().pos
                arg = self.expr()
                args.append(arg)
                if len(args) > 2:
                    columns.append((arg.name or self.sql[start:self.peek().pos].strip(), arg.fn))
            if not self.accept_op(","):
                break
        self.expect_op(")")
        if name == "changed_cols":
            return self.changed_cols(token, args, columns)
        if len(args) != 1:
            raise self.error(f"{name}: Expect 1 arguments but found {len(args)}.", token)
        inner = args[0].fn
        if name == "unnest":
            fn = inner
        else:
            def fn(d: Record, m: Message) -> Any:
                value = inner(d, m)
                if value is None:
                    raise EvalError("the argument for the extract function should be array")
                if type(value) is not dict:
                    raise EvalError("extract should use map")
                return [value]
        expr = Expr(fn, name, False)
        self.expanding.append((token, expr))
        return expr

    def changed_cols(self, token: _Token, args: list[Expr], columns: list[tuple[str, Optional[Fn]]]) -> Expr:
        count = len(args) + sum(1 for _, fn in columns if fn is None)
        if count <= 2:
            raise self.error(f"changed_cols: expect more than two args but got {count}", token)
        prefix, ignore_null = args[0], args[1]
        if prefix.const and type(const_value(prefix)) in (int, float, bool):
            raise self.error("changed_cols: Expect string type for parameter 1", token)
        if ignore_null.const and type(const_value(ignore_null)) in (int, float, str):
            raise self.error("changed_cols: Expect bool type for parameter 2", token)
        node = analytic.ChangedCols(prefix.fn, ignore_null.fn, columns)
        self.analytics.append(node)
        expr = Expr(node, None, False)
        self.expanding.append((token, expr))
        return expr

    def expanding_item(self, before: int, expr: Expr, name: str) -> str:
        """The key of a select item that holds ``unnest``/``changed_cols`` (``name``: its alias or
        given name): it must be the whole item, and a query has one ``unnest`` at most (eKuiper's
        parser rules)."""
        token, inner = self.expanding[before]
        if inner is not expr or len(self.expanding) > before + 1:
            if token.text != "CHANGED_COLS":
                raise self.error("select clause shouldn't has nested set-returning-functions", token)
            raise self.error("changed_cols must be a select item of its own", token)
        if token.text == "CHANGED_COLS":
            alias = self.tokens[self.i - 2]
            if alias.text == "AS":  # the alias was just read
                raise self.error("changed_cols: name its columns with its prefix, not AS", alias)
            return Spread(f"changed_cols_{before}")
        if self.unnest_key is not None:
            raise self.error("select clause shouldn't has multi set-returning-functions", token)
        self.unnest_key = name
        return name

    def state_window(self) -> WindowSpec:
        """``STATEWINDOW(begin[, emit]) [OVER (PARTITION BY expr, ...)]`` (the ``(`` taken)."""
        self.in_where = True
        conditions = [self.expr().fn]
        if self.accept_op(","):
            conditions.append(self.expr().fn)
        self.expect_op(")")
        partition: Optional[Callable[[Message], Any]] = None
        if self.at("OVER"):
            self.take()
            self.expect_op("(")
            self.expect("PARTITION")
            self.expect("BY")
            keys = [self.expr().fn]
            while self.accept_op(","):
                keys.append(self.expr().fn)
            self.expect_op(")")

            def partition(m: Message) -> Any:
                return tuple(repr(k(m.data, m)) for k in keys)
        self.in_where = False

        def holds(fn: Fn) -> Callable[[Message], bool]:
            return lambda m: fn(m.data, m) is True
        self.state_conditions = StateConditions(
            holds(conditions[0]), holds(conditions[1]) if len(conditions) > 1 else None, partition)
        return WindowSpec("state")

    def aggregate(self, token: _Token) -> Expr:
        name = token.text.lower()
        if self.in_where:
            raise self.error(f"the aggregate function {token.text} is not allowed in WHERE "
                             "(use HAVING)", token)
        if self.in_aggregate:
            raise self.error(f"the aggregate function {token.text} is nested in another", token)
        self.expect_op("(")
        self.aggregate_tokens.append(token)
        self.in_aggregate = True
        try:
            star = self.accept_op("*")
            args: list[Expr] = [] if star else [self.expr()]
            while self.accept_op(","):
                args.append(self.expr())
        finally:
            self.in_aggregate = False
        self.expect_op(")")
        _, least, most = AGGREGATES[name]
        given = len(args) + star
        if not least <= given <= most:
            count = str(least) if least == most else f"{least} to {most}"
            raise self.error(f"{name}() takes {count} argument{'' if count == '1' else 's'}, "
                             f"got {given}", token)
        if star and name not in ("count", "collect", "merge_agg", "deduplicate", "last_value"):
            raise self.error(f"{name}(*) is not supported: name a field", token)
        self.agg_specs.append(agg_spec(name, args, star))
        return aggregate_expr(name, args, star, len(self.agg_specs) - 1)

    def meta(self) -> Expr:
        if self.peek().kind == "string":
            key = str(self.take().value)
        elif self.accept_op("*"):
            key = "*"
        else:
            key = self.name("a metadata key")
        self.expect_op(")")
        if key == "*":
            return Expr(lambda d, m: m.meta, "meta", False)
        if key == "timestamp":
            return Expr(lambda d, m: m.timestamp, key, False)
        return Expr(lambda d, m: m.meta.get(key), key, False)

    def case(self) -> Expr:
        subject = None if self.at("WHEN") else self.expr()
        branches: list[tuple[Fn, Fn]] = []
        while self.accept("WHEN"):
            when = self.expr()
            self.expect("THEN")
            branches.append((when.fn, self.expr().fn))
        if not branches:
            raise self.unexpected("WHEN")
        default: Fn = self.expr().fn if self.accept("ELSE") else (lambda d, m: None)
        self.expect("END")
        if subject is not None:
            value = subject.fn

            def simple_case(d: Record, m: Message) -> Any:
                v = value(d, m)
                for when, then in branches:
                    if v is not None and equal(v, when(d, m)):
                        return then(d, m)
                return default(d, m)
            return Expr(simple_case, None, False)

        def searched_case(d: Record, m: Message) -> Any:
            for when, then in branches:
                if when(d, m) is True:
                    return then(d, m)
            return default(d, m)
        return Expr(searched_case, None, False)


# --------------------------------------------------------------------------- schema


def check_fields(query: Query, fields: Sequence[Any]) -> None:
    """Every field the query reads must be declared by its typed stream (``fields``:
    the stream's :class:`ekws.schema.Field` tuple; empty, schemaless: anything goes).

    A typed stream keeps only its declared fields, so any other name would
    always be null: a mistake, refused with the name and its position. The
    first name is checked, and the names below it while the declared type
    is a STRUCT (an ARRAY index steps to the element type).

    Raises:
        SQLError: ``unknown field 'x'``, at its line and column.
    """
    if not fields:
        return
    for ref in query.references:
        declared: Optional[Sequence[Any]] = fields  # what the next name is checked against
        owner = f"stream {query.stream!r}"
        ftype: Any = None
        for depth, step in enumerate(ref.path):
            dotted = "".join(f"[{part}]" if type(part) is int else f".{part}"
                             for part in ref.path[:depth + 1])[1:]
            if type(step) is str:
                if declared is None:
                    break
                found = next((f for f in declared if f.name == step), None)
                if found is None:
                    names = ", ".join(f.name for f in declared)
                    raise SQLError(f"sql: unknown field {dotted!r}: {owner} declares {names}",
                                   line=ref.line, column=ref.column)
                ftype = found.type
            elif ftype is not None and ftype.kind == "array":
                ftype = ftype.element
            else:
                break
            declared = (ftype.fields or None) if ftype.kind == "struct" else None
            owner = f"the STRUCT {dotted!r}"
