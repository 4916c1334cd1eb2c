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

Refused, each with its position: the expanding and counting functions
in a window query (analytic functions run there, per record), JOIN, ``* EXCEPT``/``*
REPLACE``, array slices, a second stream, select aliases used in later select
items, and an unknown function. Every parse problem is a :class:`SQLError`.

The parser, one module per layer: :mod:`.sql_tokens` (the rules' dialect of the one
lexer, the keyword tables, the token helpers), :mod:`.sql_expr` (expressions) over
:mod:`.sql_calls` (function calls, aggregates, ``meta()``, ``CASE``),
:mod:`.sql_clauses` (the query, its clauses and windows) and :mod:`.sql_query` (the
compiled :class:`Query`); this module is the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from ..errors import SQLError
from .expr import EvalError
from .sql_clauses import Parser
from .sql_query import FieldRef, Query

__all__ = ["EvalError", "FieldRef", "Query", "SQLError", "check_fields", "parse_query"]

MAX_SQL_LENGTH = 64 * 1024


def parse_query(sql: str, *, rule_id: str = "") -> Query:
    """Parse and compile a rule's SQL.

    Raises:
        SQLError: malformed, or a construct ekws does not run (named, with its position).
    """
    if not isinstance(sql, str):
        raise SQLError(f"the rule's sql must be a string, got {type(sql).__name__}")
    if len(sql) > MAX_SQL_LENGTH:
        raise SQLError(f"the rule's sql is longer than {MAX_SQL_LENGTH} characters")
    return Parser(sql, rule_id).query()


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
