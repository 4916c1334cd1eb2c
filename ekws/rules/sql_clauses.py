"""Rule SQL's clauses (:class:`Parser`): ``SELECT``, ``FROM``, ``WHERE``, ``GROUP BY`` and the
windows, ``HAVING``, ``ORDER BY``, ``LIMIT``; the result is a :class:`~ekws.rules.sql_query.Query`.

Part of the rule SQL parser; :mod:`ekws.rules.sql` is its entry point and documents the language.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Optional

from ..message import Message
from .analytic_rows import capture
from .expr import Expr, Fn, and_expr, query_fns
from .grouping import Grouping
from .sql_expr import ExprParser
from .sql_query import Query, analytics_first, counting_hits, unnested
from .sql_tokens import WINDOWS, Token
from .window import UNITS, StateConditions, WindowSpec


class Parser(ExprParser):
    """A whole query: ``SELECT ... FROM ... WHERE ... GROUP BY ...`` and the windows."""

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
            # The aggregates read the group's rows: compile the projection only now.
            projector, _ = query_fns(select_all, items, None)
            # What reaches the window: the WHERE and the window's FILTER (WHERE ...).
            taken = where if self.window_filter is None else self.window_filter if where is None else (
                and_expr(where, self.window_filter))
            _, run = query_fns(True, [], taken)
            window, keys, having, order, limit = grouping_parts
            if self.analytics:  # updated on every record before the WHERE, kept with the row
                run = analytics_first(tuple(self.analytics), run)
                window = replace(window, capture=capture(self.analytics))
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
                projector, run = unnested(projector, run, self.unnest_key, srf)
            if self.analytics:
                run = analytics_first(tuple(self.analytics), run)
            if self.last_hits is not None:
                run = counting_hits(self.last_hits, run)
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
                if token.kind == "name" and token.text in WINDOWS and self.peek(1).text == "(":
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
        order_token: Optional[Token] = None
        limit_token: Optional[Token] = None
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
