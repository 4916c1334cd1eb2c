"""Rule SQL values and compiled expression pieces: the semantics behind :mod:`ekws.rules.sql`.

The parser builds each expression from these pieces once; records then only
run closures (and, for comparisons, arithmetic and the projection, small
functions generated from fixed templates, so the common case is inline code).
See :mod:`ekws.rules.sql` for the language and its null semantics.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

from ..errors import EkwsError
from ..message import Message

__all__ = [
    "EvalError", "Expr", "Fn", "Record", "and_op", "arith", "arithmetic_op",
    "between_op", "compare", "comparison_op", "const_value", "equal", "getter", "kind_of", "like_op",
    "like_regex", "make_literal", "or_op", "query_fns", "and_expr", "or_expr", "not_expr",
    "is_null_expr", "inline", "generated",
    "call_expr", "Rows", "Spread", "unnest_rows",
]

Record = dict[str, Any]
Fn = Callable[[Record, Message], Any]  # (record, message) -> value


class EvalError(EkwsError):
    """An expression failed on one record (a type mismatch, a division by zero)."""


# --------------------------------------------------------------------------- values


def kind_of(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    return "null" if value is None else kind.__name__


def equal(a: Any, b: Any) -> bool:
    return a == b and (type(a) is bool) == (type(b) is bool)


ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}


def compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if op == "=":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    ka, kb = kind_of(a), kind_of(b)
    if ka != kb or ka not in ("number", "string", "boolean"):
        raise EvalError(f"cannot compare {ka} {a!r:.40} {op} {kb} {b!r:.40}")
    return bool(ORDER[op](a, b))


def as_number(value: Any, op: str) -> Any:
    if type(value) is int or type(value) is float:
        return value
    raise EvalError(f"{op} needs numbers, got {kind_of(value)} {value!r:.40}")


def arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    a, b = as_number(a, op), as_number(b, op)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise EvalError(f"division by zero in {a!r} {op} {b!r}")
    if op == "/":
        if type(a) is int and type(b) is int:
            return int(a / b)  # eKuiper (Go) truncates integer division toward zero
        return a / b
    if float in (type(a), type(b)):
        try:
            return math.fmod(a, b)
        except ValueError:  # inf % x: NaN, as Go's math.Mod gives
            return math.nan
    remainder = abs(a) % abs(b)  # Go's integer %: the sign of the dividend, exact for big ints
    return remainder if a >= 0 else -remainder


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE as a regular expression: ``%`` any run, ``_`` one character, ``\\`` escapes."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class Expr(NamedTuple):
    fn: Fn
    name: Optional[str]  # the output key it gets without an alias
    const: bool  # a literal: fn ignores its arguments
    root: Optional[str] = None  # first name of a field reference
    key: Optional[str] = None  # a top-level field read as record.get(key)
    # Inline Python source for ``fn`` over ``d`` and ``m`` (an atom: a name, a call or
    # parenthesized), and the values its names stand for; None: call ``fn``.
    code: Optional[str] = None
    env: tuple[tuple[str, Any], ...] = ()


class Spread(str):
    """A select item's key whose value is a dict of columns spread into the output record
    (``changed_cols``): the projection writes ``**value`` where the item stands."""


class Rows(list):  # type: ignore[type-arg]
    """Several output records from one input record (``unnest``): a rule sends each."""


def unnest_rows(record: Record, key: str, name: str) -> Rows:
    """eKuiper's ProjectSetOperator: one row per element of ``record[key]``, the other columns
    beside it; an element that is an object gives its keys as columns instead of ``key``
    (covering a column of the same name, as eKuiper's do)."""
    values = record[key]
    if type(values) is not list:
        raise EvalError(f"the argument for the {name} function should be array")
    rows = Rows()
    for value in values:
        if type(value) is dict:
            row = {k: v for k, v in record.items() if k != key}
            row.update(value)
        else:
            row = dict(record)
            row[key] = value
        rows.append(row)
    return rows


def make_literal(value: Any) -> Expr:
    return Expr(lambda d, m: value, None, True)


# --------------------------------------------------------------------------- compiled pieces


def getter(path: tuple[Any, ...]) -> Fn:
    if len(path) == 1 and type(path[0]) is str:
        key = path[0]
        return lambda d, m: d.get(key)

    def get(d: Any, m: Message) -> Any:
        value = d
        for step in path:
            if type(step) is str:
                if type(value) is not dict:
                    return None
                value = value.get(step)
            else:
                if type(value) is not list or not -len(value) <= step < len(value):
                    return None
                value = value[step]
        return value
    return get


def or_op(a: Fn, b: Fn) -> Fn:
    return lambda d, m: a(d, m) is True or b(d, m) is True


def and_op(a: Fn, b: Fn) -> Fn:
    return lambda d, m: a(d, m) is True and b(d, m) is True


# --------------------------------------------------------------------------- inline code
#
# A WHERE clause or a projection is compiled into one Python function: each
# piece that has inline source (fields, literals, comparisons, + - *, AND, OR,
# NOT, IS NULL) is pasted into its parent's source; any other piece is called
# as its closure. Only generated names (``_k3``, ``_c4``, ``_f5``, ``_t6``) and
# fixed operators reach the source: the SQL's field names, literals and
# closures are values bound to those names, so nothing the user wrote is code.

_ids = itertools.count()
MAX_INLINE = 2000  # characters of source per expression; beyond that, pieces are called


def inline(expr: Expr) -> tuple[str, dict[str, Any]]:
    """Source for ``expr`` (an atom) and the names it binds."""
    if expr.code is not None:
        return expr.code, dict(expr.env)
    n = next(_ids)
    if expr.const:
        return f"_c{n}", {f"_c{n}": const_value(expr)}
    if expr.key is not None:
        return f"d.get(_k{n})", {f"_k{n}": expr.key}
    return f"_f{n}(d, m)", {f"_f{n}": expr.fn}


def generated(code: str, env: dict[str, Any], fallback: Callable[[], Fn]) -> Expr:
    """An expression whose ``fn`` is ``code`` compiled once; ``fallback()`` builds a closure
    when the source grew too long (a long chain of ANDs, say) or does not compile."""
    if len(code) <= MAX_INLINE:
        namespace = dict(env)
        try:
            exec(f"def _fn(d, m):\n    return {code}\n", namespace)  # noqa: S102 - generated names only
        except (SyntaxError, RecursionError, MemoryError):  # pragma: no cover - bounded by MAX_INLINE
            pass
        else:
            return Expr(namespace["_fn"], None, False, code=code, env=tuple(env.items()))
    return Expr(fallback(), None, False)


def and_expr(left: Expr, right: Expr) -> Expr:
    (a, env), (b, more) = inline(left), inline(right)
    return generated(f"({a} is True and {b} is True)", {**env, **more},
                     lambda: and_op(left.fn, right.fn))


def or_expr(left: Expr, right: Expr) -> Expr:
    (a, env), (b, more) = inline(left), inline(right)
    return generated(f"({a} is True or {b} is True)", {**env, **more},
                     lambda: or_op(left.fn, right.fn))


def not_expr(inner: Expr) -> Expr:
    a, env = inline(inner)
    fn = inner.fn
    return generated(f"({a} is not True)", env, lambda: lambda d, m: fn(d, m) is not True)


def is_null_expr(inner: Expr, negate: bool) -> Expr:
    a, env = inline(inner)
    fn = inner.fn
    if negate:
        return generated(f"({a} is not None)", env, lambda: lambda d, m: fn(d, m) is not None)
    return generated(f"({a} is None)", env, lambda: lambda d, m: fn(d, m) is None)


_FAST = {"number": "(type({v}) is int or type({v}) is float)", "string": "type({v}) is str"}


def _inline_binary(op: str, left: Expr, right: Expr, kind: str, slow: Callable[[Any, Any], Any],
                   fallback: Callable[[], Fn]) -> Expr:
    """``x op y`` inline when both are of ``kind`` (a literal side's kind is known), else ``slow(x, y)``."""
    n = next(_ids)
    (x, env), (y, more) = inline(left), inline(right)
    env.update(more)
    env[f"_s{n}"] = slow
    check = _FAST[kind]
    t, u = f"_t{n}", f"_u{n}"
    if right.const:
        code = f"({t} {op} {y} if {check.format(v=f'({t} := {x})')} else _s{n}({t}, {y}))"
    elif left.const:
        code = f"({x} {op} {u} if {check.format(v=f'({u} := {y})')} else _s{n}({x}, {u}))"
    else:
        # The slow path evaluates y again when x failed its check (y was not
        # bound then): expressions have no side effects.
        code = (f"({t} {op} {u} if {check.format(v=f'({t} := {x})')} and "
                f"{check.format(v=f'({u} := {y})')} else _s{n}({t}, {y}))")
    return generated(code, env, fallback)


def _literal_kind(left: Expr, right: Expr) -> Optional[str]:
    """``number`` or ``string`` when the fast path applies to this pair, else None."""
    literal = const_value(right) if right.const else const_value(left) if left.const else None
    if type(literal) is str:
        return "string"
    if literal is None or type(literal) is int or type(literal) is float:
        return "number"
    return None  # a boolean literal: always the careful path


def const_value(expr: Expr) -> Any:
    """The value of a literal expression (its closure ignores both arguments)."""
    return expr.fn({}, None)  # type: ignore[arg-type]


# Comparisons and arithmetic are the common filter and projection: each is
# generated from a fixed template so the usual case (numbers, or strings, read
# straight from the record) is inline code. Only names reach the source; the
# SQL's values and closures are bound in the namespace.
_BINARY = """
def make(a, b, ka, kb, c, slow):
    def binary(d, m):
        x = {x}
        y = {y}
        if {fast}:
            return x {op} y
        return slow(x, y)
    return binary
"""
_NUMBER = "(type({v}) is int or type({v}) is float)"
_MAKERS: dict[tuple[str, str, str, str], Callable[..., Fn]] = {}


def _operand(expr: Expr, fn: str, key: str) -> str:
    if expr.const:
        return "c"
    if expr.key is not None:
        return f"d.get({key})"
    return f"{fn}(d, m)"


def _binary(op: str, left: Expr, right: Expr, fast: str, slow: Callable[[Any, Any], Any]) -> Fn:
    """Inline ``x op y`` when ``fast`` holds, else ``slow(x, y)``."""
    x, y = _operand(left, "a", "ka"), _operand(right, "b", "kb")
    template = (x, y, fast, op)
    make = _MAKERS.get(template)
    if make is None:
        namespace: dict[str, Any] = {}
        exec(_BINARY.format(x=x, y=y, fast=fast, op=op), namespace)  # noqa: S102 - fixed template
        make = _MAKERS[template] = namespace["make"]
    constant = const_value(right) if right.const else const_value(left) if left.const else None
    return make(left.fn, right.fn, left.key, right.key, constant, slow)


def comparison_op(op: str, left: Expr, right: Expr) -> Expr:
    if (left.const and const_value(left) is None) or (right.const and const_value(right) is None):
        return Expr(lambda d, m: False, None, False)  # nothing compares with null
    if left.const and right.const:
        return make_literal(compare(op, const_value(left), const_value(right)))
    python_op = {"=": "==", "!=": "!="}.get(op, op)
    literal = const_value(right) if right.const else const_value(left) if left.const else None
    if type(literal) is str:
        fast = "type(x) is str and type(y) is str"
    else:
        fast = f"{_NUMBER.format(v='x')} and {_NUMBER.format(v='y')}"
    kind = _literal_kind(left, right)

    def slow(x: Any, y: Any) -> bool:
        return compare(op, x, y)

    def closure() -> Fn:
        return _binary(python_op, left, right, fast, slow)
    if kind is None:
        return Expr(closure(), None, False)
    return _inline_binary(python_op, left, right, kind, slow, closure)


def arithmetic_op(op: str, left: Expr, right: Expr) -> Expr:
    if left.const and right.const:
        try:
            return make_literal(arith(op, const_value(left), const_value(right)))
        except EvalError:
            pass  # e.g. 1/0: an error for every record, raised when it runs
    if op in ("+", "-", "*"):
        fast = f"{_NUMBER.format(v='x')} and {_NUMBER.format(v='y')}"

        def slow(x: Any, y: Any) -> Any:
            return arith(op, x, y)

        def closure() -> Fn:
            return _binary(op, left, right, fast, slow)
        if any(side.const and type(const_value(side)) not in (int, float) for side in (left, right)):
            return Expr(closure(), None, False)  # a null, string or boolean literal: the careful path
        return _inline_binary(op, left, right, "number", slow, closure)
    a, b = left.fn, right.fn
    return Expr(lambda d, m: arith(op, a(d, m), b(d, m)), None, False)


def call_expr(name: str, impl: Callable[..., Any], args: Sequence[Expr], *, message: bool = False,
              null_result: Any = ...) -> Expr:
    """A function call in the rule's generated code: ``_fN(a, b)``, ``impl`` bound once.

    ``null_result`` (when given): the call's value when any argument is null, tested
    inline so the common one-argument call ``upper(x)`` costs one check and one call
    (``message``: ``impl`` takes the record's message first).
    """
    n = next(_ids)
    env: dict[str, Any] = {f"_g{n}": impl}
    codes = []
    for arg in args:
        code, more = inline(arg)
        env.update(more)
        codes.append(code)
    if null_result is not ... and args and any(a.const and const_value(a) is None for a in args):
        code = f"_z{n}"  # a null literal argument: the call is its null answer
        env[code] = null_result
    elif null_result is not ... and any(not a.const for a in args):
        # Only what varies per record is tested for null; a literal is passed as it is.
        env[f"_z{n}"] = null_result
        temps = [c if a.const else f"_a{n}_{i}" for i, (a, c) in enumerate(zip(args, codes))]
        check = " or ".join(f"({t} := {c}) is None" for a, t, c in zip(args, temps, codes) if not a.const)
        call = f"_g{n}({', '.join((['m'] if message else []) + temps)})"
        code = f"(_z{n} if {check} else {call})"
    else:
        code = f"_g{n}({', '.join((['m'] if message else []) + codes)})"
    fns = [a.fn for a in args]

    def fallback() -> Fn:
        def call(d: Record, m: Message) -> Any:
            values = [f(d, m) for f in fns]
            if null_result is not ... and any(v is None for v in values):
                return null_result
            return impl(m, *values) if message else impl(*values)
        return call
    return generated(code, env, fallback)._replace(name=name)


def like_op(left: Expr, pattern: Expr, negate: bool) -> Expr:
    """``[NOT] LIKE``: a null on either side is false both ways (SQL's unknown)."""
    a = left.fn
    if pattern.const:
        text = const_value(pattern)
        if text is None:
            return Expr(lambda d, m: False, None, False)
        match = like_regex(text).fullmatch

        def like_constant(d: Record, m: Message) -> bool:
            value = a(d, m)
            if value is None:
                return False
            if type(value) is not str:
                raise EvalError(f"LIKE needs a string, got {kind_of(value)} {value!r:.40}")
            return (match(value) is not None) is not negate
        return Expr(like_constant, None, False)
    p = pattern.fn

    def like(d: Record, m: Message) -> bool:
        value, text = a(d, m), p(d, m)
        if value is None or text is None:
            return False
        if type(value) is not str or type(text) is not str:
            raise EvalError(f"LIKE needs strings, got {kind_of(value)} LIKE {kind_of(text)}")
        return (like_regex(text).fullmatch(value) is not None) is not negate
    return Expr(like, None, False)


def between_op(value: Expr, low: Expr, high: Expr, negate: bool) -> Expr:
    v, lo, hi = value.fn, low.fn, high.fn

    def between(d: Record, m: Message) -> bool:
        x, a, b = v(d, m), lo(d, m), hi(d, m)
        if x is None or a is None or b is None:
            return False
        return (compare(">=", x, a) and compare("<=", x, b)) is not negate
    return Expr(between, None, False)


def query_fns(select_all: bool, items: Sequence[tuple[str, Expr]], where: Optional[Expr]
              ) -> tuple[Optional[Callable[[Message], Record]], Callable[[Message], Optional[Record]]]:
    """The projection, and the whole query as one function: the output record, or None when
    the WHERE drops the message.

    Both are generated once: a dict display of the items' inline source. Only
    names (``k0``, ``_f3`` ...) reach the source; keys, literals and closures
    are bound in its namespace, so nothing from the SQL is code.
    """
    namespace: dict[str, Any] = {}
    entries = []
    for n, (key, expr) in enumerate(items):
        namespace[f"k{n}"] = key
        code, env = inline(expr)
        if len(code) > MAX_INLINE:
            code, env = f"_f{next(_ids)}", {}
            namespace[code] = expr.fn
            code += "(d, m)"
        namespace.update(env)
        entries.append(f"**{code}" if type(key) is Spread else f"k{n}: {code}")
    star = "**d, " if select_all else ""
    output = f"{{{star}{', '.join(entries)}}}" if items or not select_all else "d"
    condition = ""
    if where is not None:
        code, env = inline(where)
        if len(code) > MAX_INLINE:
            namespace["_where"], code, env = where.fn, "_where(d, m)", {}
        namespace.update(env)
        condition = f"    if {code} is not True:\n        return None\n"
    source = ("def project(m):\n"
              "    d = m.data\n"
              f"    return {output}\n"
              "def run(m):\n"
              "    d = m.data\n"
              f"{condition}"
              f"    return {output}\n")
    exec(source, namespace)  # noqa: S102 - generated from the fixed template above
    project: Callable[[Message], Record] = namespace["project"]
    run: Callable[[Message], Optional[Record]] = namespace["run"]
    return (None if select_all and not items else project), run
