"""Rule SQL's expression grammar (:class:`ExprParser`): operators, predicates, fields, function
calls, analytic functions, aggregates, ``meta()`` and ``CASE``, compiled as they are parsed.

The calls are parsed by :class:`~ekws.rules.sql_calls.CallParser`, its base class.
Part of the rule SQL parser; :mod:`ekws.rules.sql` is its entry point and documents the language.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from ..message import Message
from .expr import (
    EvalError,
    Expr,
    Record,
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
)
from .sql_calls import CallParser
from .sql_query import FieldRef
from .sql_tokens import (
    RESERVED,
    Token,
    describe,
)


class ExprParser(CallParser):
    """The expression grammar: ``expr`` down to literals and fields; calls come from :class:`CallParser`."""

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
                raise self.error(f"LIKE needs a string pattern, got {describe(pattern_token)}",
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

    def field(self, token: Token) -> Expr:
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
