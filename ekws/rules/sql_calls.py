"""Rule SQL's calls (:class:`CallParser`): functions, analytic functions, the expanding and
counting functions, aggregates, ``meta()`` and ``CASE``, compiled as they are parsed.

Split from :mod:`ekws.rules.sql_expr`, whose :class:`~ekws.rules.sql_expr.ExprParser` (the
operators down to fields) derives from this class and supplies :meth:`expr`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, cast

from ..message import Message
from . import functions
from .aggregates import AGGREGATES
from .analytic_rows import reader
from .expr import (
    EvalError,
    Expr,
    Fn,
    Record,
    Spread,
    const_value,
    equal,
    make_literal,
)
from .functions import analytic
from .grouping import agg_spec, aggregate_expr, event_time_expr, hit_expr, window_bound_expr
from .sql_tokens import (
    AGGREGATE_NAMES,
    ANALYTIC_NAMES,
    EXPANDING_OR_COUNTING,
    NOT_RUN,
    WINDOWS,
    Token,
    TokenParser,
)


class CallParser(TokenParser):
    """The calls of the expression grammar; :class:`~ekws.rules.sql_expr.ExprParser` adds the rest."""

    if TYPE_CHECKING:
        def expr(self) -> Expr: ...  # ExprParser's: a call's arguments are expressions

    # -- calls -----------------------------------------------------------------------

    def call(self) -> Expr:
        token = self.take()
        upper = token.text
        if upper in EXPANDING_OR_COUNTING:  # row_number, last_hit_*, unnest, extract, changed_cols
            return self.special_call(token)
        if upper in WINDOWS:
            raise self.error(f"the window {upper} belongs in GROUP BY", token)
        if upper in AGGREGATE_NAMES:
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
        if upper in NOT_RUN:
            raise self.error(f"the function {upper} is not supported by ekws rules", token)
        if upper in ANALYTIC_NAMES and upper.lower() not in analytic.ANALYTIC:
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

    def analytic(self, token: Token) -> Expr:
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
        return Expr(reader(node), node.name, False)  # in a window: the row's own value

    def row_number(self, token: Token) -> Expr:
        """``row_number()``: the row's number in its set; a per-record query's set is one record."""
        if not self.in_select:
            raise self.error("window functions can only be in select fields", token)
        self.expect_op("(")
        if not self.at_op(")"):
            raise self.error("row_number: Expect 0 arguments but found 1.", self.peek())
        self.expect_op(")")
        self.row_numbers.append(token)
        return make_literal(1)._replace(name="row_number")

    def special_call(self, token: Token) -> Expr:
        if token.text == "ROW_NUMBER":
            return self.row_number(token)
        if token.text in ("LAST_HIT_COUNT", "LAST_HIT_TIME"):
            return self.last_hit(token)
        return self.expanding_call(token)

    def last_hit(self, token: Token) -> Expr:
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

    def expanding_call(self, token: Token) -> Expr:
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

    def changed_cols(self, token: Token, args: list[Expr], columns: list[tuple[str, Optional[Fn]]]) -> Expr:
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

    def aggregate(self, token: Token) -> Expr:
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
