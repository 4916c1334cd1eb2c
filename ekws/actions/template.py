"""eKuiper's ``dataTemplate``: the subset of Go's ``text/template`` its docs use, compiled once per rule.

eKuiper runs sink data through Go's ``text/template`` with sprig's functions
(``docs/en_US/guide/sinks/data_template.md``). ekws parses the same syntax
when the rule is created and refuses, by name, what it does not run, so a
template never fails on its first record for a reason known in advance.

Supported: text; ``{{.}}``, ``{{.a.b}}``, ``{{$}}``, ``{{$x}}``,
``{{$x.a}}``, ``{{(pipeline).a}}``; pipelines ``a | f b``; ``{{$x := p}}``
and ``{{$x = p}}``; ``{{if}}`` / ``{{else if}}`` / ``{{else}}`` /
``{{end}}``; ``{{range p}}`` (also ``{{range $i, $e := p}}`` and ``{{else}}``)
over lists, maps (sorted keys, as Go) and integers; ``{{with}}``; comments
``{{/* */}}``; trim markers ``{{-`` and ``-}}``; string, raw string, number,
``true``/``false``/``nil`` literals. Functions: :data:`FUNCTIONS`.

Refused when the rule is created: ``define``/``template``/``block``,
``break``/``continue``, and any function not in :data:`FUNCTIONS`.

Where ekws differs from Go, on purpose: numbers compare by value across
int and float (``lt .t 30`` works on a float ``t``: eKuiper's JSON numbers
are all float64, ekws keeps integers as integers, and Go would refuse the
mix); ``json``/``toJson`` writes keys in the record's order (Go sorts them)
and does not escape ``<``, ``>`` and ``&``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Optional

from .jsonout import dumps

__all__ = ["FUNCTIONS", "Template", "TemplateError", "compile_template", "go_format"]

NO_VALUE = "<no value>"


class TemplateError(ValueError):
    """A template that does not parse, names an unsupported feature, or fails on a record."""


class _Missing:
    """A map key that is not there: prints ``<no value>`` as Go does, false in conditions."""

    def __repr__(self) -> str:
        return NO_VALUE


MISSING: Any = _Missing()


# --------------------------------------------------------------------------- formatting as Go's fmt %v


def go_float(value: float) -> str:
    """``fmt.Sprint(float64)``: Go's ``%g``, shortest digits (exponent form below 1e-4 and from 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # where the decimal point goes
    digits = digits.rstrip("0") or "0"
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped
    head = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:  # strconv's 'g' with the shortest precision decides with 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{head}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return head + digits + "0" * (point - len(digits))
    return f"{head}{digits[:point]}.{digits[point:]}"


def go_format(value: Any) -> str:
    """A value as ``{{.}}`` prints it (Go's ``fmt`` ``%v``)."""
    if value is None or value is MISSING:
        return NO_VALUE
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_inner(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else go_format(value)


# --------------------------------------------------------------------------- functions


def _truth(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if isinstance(value, (int, float, str, bytes, list, tuple, dict)):
        return bool(value)
    return True


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TemplateError(f"{name}: expected a number, got {go_format(value)!r}")
    return value


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, (int, float)) \
                and not isinstance(b, bool):
            return op(a, b)
        if isinstance(a, str) and isinstance(b, str):
            return op(a, b)
        raise TemplateError(f"{name}: incompatible types for comparison: {go_format(a)!r}, {go_format(b)!r}")
    return compare


def _eq(a: Any, *others: Any) -> bool:
    for b in others:
        if a is MISSING or b is MISSING or a is None or b is None:
            if (a in (None, MISSING)) == (b in (None, MISSING)):
                return True
            continue
        if isinstance(a, bool) != isinstance(b, bool):
            raise TemplateError(f"eq: incompatible types for comparison: {go_format(a)!r}, {go_format(b)!r}")
        if a == b:
            return True
    return False


def _int64(value: Any) -> int:
    """sprig's ``toInt64``: numbers truncate, numeric strings parse, the rest is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def _float64(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING) if isinstance(key, str) else MISSING
        elif isinstance(value, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise TemplateError(f"index: cannot index a list with {go_format(key)!r}")
            if not 0 <= key < len(value):
                raise TemplateError(f"index: index out of range: {key}")
            value = value[key]
        elif value is None or value is MISSING:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError(f"index: cannot index {go_format(value)!r}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict, bytes)):
        return len(value)
    raise TemplateError(f"len of {go_format(value)!r}")


def _json(value: Any) -> str:
    return dumps(None if value is MISSING else value).decode("utf-8")


def _b64(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raw = dumps(value)
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = go_format(value).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _div(a: Any, b: Any) -> int:
    x, y = _int64(a), _int64(b)
    if y == 0:
        raise TemplateError("div: integer divide by zero")
    return int(x / y)  # Go truncates toward zero


def _mod(a: Any, b: Any) -> int:
    x, y = _int64(a), _int64(b)
    if y == 0:
        raise TemplateError("mod: integer divide by zero")
    return int(math.fmod(x, y))


_GO_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([vdsfgqtxXe%])")


def _printf(fmt: str, *args: Any) -> str:
    """Go's ``printf`` for the common verbs (%v %d %s %f %g %e %q %t %x %%)."""
    values = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if not values:
            return f"%!{kind}(MISSING)"
        value = values.pop(0)
        if kind in "vst":
            text = go_format(value)
        elif kind == "q":
            text = _json(go_format(value))
        elif kind == "d":
            text = str(_int64(value))
        elif kind in "xX":
            text = format(_int64(value), kind)
        else:
            spec = f"{precision or 6}"
            text = format(_float64(value), f".{spec}{kind}")
        if not width:
            return text
        if "-" in flags:
            return text.ljust(int(width))
        if "0" in flags and kind in "dfgexX" and text[:1] in "-+":
            return text[0] + text[1:].rjust(int(width) - 1, "0")
        return text.rjust(int(width), "0" if "0" in flags and kind in "dfgexX" else " ")

    return _GO_VERB.sub(verb, fmt)


def _default(default: Any, *given: Any) -> Any:
    value = given[0] if given else None
    return value if _truth(value) else default


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's built-ins
    "and": lambda *a: next((v for v in a if not _truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if _truth(v)), a[-1]),
    "not": lambda a: not _truth(a),
    "len": _len, "index": _index,
    "print": lambda *a: "".join(go_format(v) for v in a),
    "println": lambda *a: " ".join(go_format(v) for v in a) + "\n",
    "printf": _printf,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b),
    "lt": _compare("lt", lambda a, b: a < b), "le": _compare("le", lambda a, b: a <= b),
    "gt": _compare("gt", lambda a, b: a > b), "ge": _compare("ge", lambda a, b: a >= b),
    # eKuiper's own
    "json": _json, "base64": _b64,
    # sprig's, the common ones
    "toJson": _json, "b64enc": _b64,
    "b64dec": lambda s: base64.b64decode(go_format(s)).decode("utf-8", "replace"),
    "add": lambda *a: sum(_int64(v) for v in a), "add1": lambda a: _int64(a) + 1,
    "sub": lambda a, b: _int64(a) - _int64(b), "mul": lambda *a: math.prod(_int64(v) for v in a),
    "div": _div, "mod": _mod,
    "max": lambda *a: max(_int64(v) for v in a), "min": lambda *a: min(_int64(v) for v in a),
    "addf": lambda *a: sum(_float64(v) for v in a), "subf": lambda a, b: _float64(a) - _float64(b),
    "mulf": lambda *a: math.prod(_float64(v) for v in a),
    "divf": lambda a, b: _float64(a) / _float64(b) if _float64(b) else math.inf,
    "round": lambda a, p=0: round(_float64(a), _int64(p)),
    "int": _int64, "int64": _int64, "float64": _float64, "toString": go_format,
    "upper": lambda s: go_format(s).upper(), "lower": lambda s: go_format(s).lower(),
    "trim": lambda s: go_format(s).strip(), "title": lambda s: go_format(s).title(),
    "quote": lambda *a: " ".join(_json(go_format(v)) for v in a),
    "squote": lambda *a: " ".join(f"'{go_format(v)}'" for v in a),
    "contains": lambda sub, s: go_format(sub) in go_format(s),
    "hasPrefix": lambda p, s: go_format(s).startswith(go_format(p)),
    "hasSuffix": lambda p, s: go_format(s).endswith(go_format(p)),
    "replace": lambda old, new, s: go_format(s).replace(go_format(old), go_format(new)),
    "join": lambda sep, items: go_format(sep).join(go_format(v) for v in (items or [])),
    "default": _default, "empty": lambda a: not _truth(a),
    "list": lambda *a: list(a),
}

# --------------------------------------------------------------------------- lexing

_ACTION_RE = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()|,])
""", re.VERBOSE | re.DOTALL)

_REFUSED = {"define", "template", "block", "break", "continue", "call", "slice"}


class _Tok:
    __slots__ = ("kind", "text", "glued")

    def __init__(self, kind: str, text: str, glued: bool) -> None:
        self.kind, self.text, self.glued = kind, text, glued


def _lex(text: str, where: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos, glued = 0, False
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise TemplateError(f"{where}: unexpected {text[pos:pos + 10]!r}")
        kind = match.lastgroup or ""
        pos = match.end()
        if kind in ("space", "comment"):
            glued = False
            continue
        tokens.append(_Tok(kind, match.group(), glued))
        glued = True
    return tokens


# --------------------------------------------------------------------------- parse tree

Node = Callable[["_Scope", list[str]], None]  # writes to the output list
Expr = Callable[["_Scope"], Any]


class _Scope:
    __slots__ = ("dot", "vars")

    def __init__(self, dot: Any, variables: list[dict[str, Any]]) -> None:
        self.dot = dot
        self.vars = variables

    def lookup(self, name: str) -> Any:
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")

    def child(self, dot: Any) -> _Scope:
        return _Scope(dot, [*self.vars, {}])


def _field(value: Any, path: list[str]) -> Any:
    for name in path:
        if isinstance(value, Mapping):
            value = value.get(name, MISSING)
        elif value is None or value is MISSING:
            return MISSING  # Go: nil pointer evaluating ... ; a missing record field prints <no value>
        else:
            raise TemplateError(f"can't evaluate field {name} in {go_format(value)!r}")
    return value


class _Parser:
    """A recursive-descent parser over the template's actions, producing closures."""

    def __init__(self, source: str, where: str) -> None:
        self.where = where
        self.items: list[tuple[str, Any]] = []  # ("text", str) | ("action", tokens)
        pos = 0
        pending_trim = False
        for match in _ACTION_RE.finditer(source):
            text = source[pos:match.start()]
            if pending_trim:
                text = text.lstrip()
            if match.group(1):
                text = text.rstrip()
            if text:
                self.items.append(("text", text))
            body = match.group(2)
            pending_trim = bool(match.group(3))
            stripped = body.strip()
            if stripped.startswith("/*"):
                if not stripped.endswith("*/"):
                    raise TemplateError(f"{where}: unclosed comment")
                pos = match.end()
                continue
            self.items.append(("action", _lex(body, where)))
            pos = match.end()
        rest = source[pos:]
        if pending_trim:
            rest = rest.lstrip()
        if "{{" in rest:
            raise TemplateError(f"{where}: unclosed action (a '{{{{' without '}}}}')")
        if rest:
            self.items.append(("text", rest))
        self.i = 0

    def parse(self) -> list[Node]:
        nodes, end = self.block(())
        if end is not None:
            raise TemplateError(f"{self.where}: unexpected {{{{{end}}}}}")
        return nodes

    def block(self, enders: tuple[str, ...]) -> tuple[list[Node], Optional[str]]:
        """Nodes until one of ``enders`` (``end``, ``else``); returns the ender and leaves its tokens."""
        nodes: list[Node] = []
        while self.i < len(self.items):
            kind, value = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(_text_node(value))
                continue
            tokens: list[_Tok] = value
            if not tokens:
                raise TemplateError(f"{self.where}: missing value for command")
            head = tokens[0].text if tokens[0].kind == "ident" else ""
            if head in _REFUSED:
                raise TemplateError(f"{self.where}: {{{{{head}}}}} is not supported by ekws's templates")
            if head in ("end", "else"):
                if head not in enders:
                    raise TemplateError(f"{self.where}: unexpected {{{{{head}}}}}")
                self.rest = tokens[1:]
                return nodes, head
            if head in ("if", "range", "with"):
                nodes.append(self.control(head, tokens[1:]))
                continue
            nodes.append(self.output(tokens))
        if enders:
            raise TemplateError(f"{self.where}: unexpected end of template: a {{{{end}}}} is missing")
        return nodes, None

    def control(self, head: str, tokens: list[_Tok]) -> Node:
        declared: list[str] = []
        if head == "range" and len(tokens) >= 4 and tokens[0].kind == "var" and tokens[1].text == "," \
                and tokens[2].kind == "var" and tokens[3].kind == "declare":
            declared, tokens = [tokens[0].text, tokens[2].text], tokens[4:]
        elif len(tokens) >= 2 and tokens[0].kind == "var" and tokens[1].kind == "declare":
            declared, tokens = [tokens[0].text], tokens[2:]
        pipe = self.pipeline(tokens)
        body, ender = self.block(("end", "else"))
        otherwise: list[Node] = []
        if ender == "else":
            rest = self.rest
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with") and head != "range":
                otherwise = [self.control(rest[0].text, rest[1:])]  # else if: its {{end}} closes both
            else:
                if rest:
                    raise TemplateError(f"{self.where}: unexpected tokens after {{{{else}}}}")
                otherwise, ender = self.block(("end",))
        elif self.rest:
            raise TemplateError(f"{self.where}: unexpected tokens after {{{{end}}}}")
        if head == "range":
            return _range(pipe, declared, body, otherwise)
        return _if(pipe, declared, body, otherwise, head == "with")

    def output(self, tokens: list[_Tok]) -> Node:
        if len(tokens) >= 2 and tokens[0].kind == "var" and tokens[1].kind in ("declare", "assign"):
            name, declare, pipe = tokens[0].text, tokens[1].kind == "declare", self.pipeline(tokens[2:])

            def setvar(scope: _Scope, out: list[str]) -> None:
                value = pipe(scope)
                if declare:
                    scope.vars[-1][name] = value
                else:
                    scope.assign(name, value)
            return setvar
        pipe = self.pipeline(tokens)
        return lambda scope, out: out.append(go_format(pipe(scope)))

    # -- pipelines ---------------------------------------------------------------------------

    def pipeline(self, tokens: list[_Tok]) -> Expr:
        if not tokens:
            raise TemplateError(f"{self.where}: missing value for command")
        commands: list[list[_Tok]] = [[]]
        depth = 0
        for tok in tokens:
            if tok.text == "(" and tok.kind == "punct":
                depth += 1
            elif tok.text == ")" and tok.kind == "punct":
                depth -= 1
            if tok.kind == "punct" and tok.text == "|" and depth == 0:
                commands.append([])
                continue
            commands[-1].append(tok)
        stages = [self.command(c, piped=n > 0) for n, c in enumerate(commands)]
        first, rest = stages[0], stages[1:]

        def run(scope: _Scope) -> Any:
            value = first(scope, ())
            for stage in rest:
                value = stage(scope, (value,))
            return value
        return run

    def command(self, tokens: list[_Tok], *, piped: bool) -> Callable[[_Scope, tuple[Any, ...]], Any]:
        if not tokens:
            raise TemplateError(f"{self.where}: missing command in pipeline")
        head = tokens[0]
        if head.kind == "ident" and head.text not in ("true", "false", "nil"):
            name = head.text
            fn = FUNCTIONS.get(name)
            if fn is None:
                if name in _REFUSED:
                    raise TemplateError(f"{self.where}: {name} is not supported by ekws's template subset")
                raise TemplateError(f"{self.where}: function {name!r} is not supported by ekws's template "
                                    f"subset (it has {', '.join(sorted(FUNCTIONS))})")
            args = self.operands(tokens[1:])

            def call(scope: _Scope, extra: tuple[Any, ...]) -> Any:
                values = [a(scope) for a in args] + list(extra)
                try:
                    return fn(*values)
                except TemplateError:
                    raise
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise TemplateError(f"error calling {name}: {exc}") from None
            return call
        operands = self.operands(tokens)
        if len(operands) != 1 or piped:
            raise TemplateError(f"{self.where}: can't give argument to non-function {head.text}")
        only = operands[0]
        return lambda scope, extra: only(scope)

    def operands(self, tokens: list[_Tok]) -> list[Expr]:
        out: list[Expr] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.kind == "punct" and tok.text == "(":
                depth, j = 1, i + 1
                while j < len(tokens) and depth:
                    if tokens[j].kind == "punct":
                        depth += {"(": 1, ")": -1}.get(tokens[j].text, 0)
                    j += 1
                if depth:
                    raise TemplateError(f"{self.where}: unclosed left paren")
                expr = self.pipeline(tokens[i + 1:j - 1])
                i = j
            else:
                expr = self.term(tok)
                i += 1
            while i < len(tokens) and tokens[i].kind == "field" and tokens[i].glued and tokens[i].text != ".":
                expr = _chain(expr, tokens[i].text[1:].split("."))
                i += 1
            out.append(expr)
        return out

    def term(self, tok: _Tok) -> Expr:
        kind, text = tok.kind, tok.text
        if kind == "field":
            if text == ".":
                return lambda scope: scope.dot
            path = text[1:].split(".")
            return lambda scope: _field(scope.dot, path)
        if kind == "var":
            name, _, rest = text.partition(".")
            if name == "$":
                return lambda scope: scope.lookup("$")
            return lambda scope: scope.lookup(name)
        if kind == "string":
            value: Any = _unquote(text[1:-1])
        elif kind == "raw":
            value = text[1:-1]
        elif kind == "char":
            value = ord(_unquote(text[1:-1]))
        elif kind == "number":
            value = _number_literal(text, self.where)
        elif kind == "ident" and text in ("true", "false", "nil"):
            value = {"true": True, "false": False, "nil": None}[text]
        elif kind == "ident":
            raise TemplateError(f"{self.where}: function {text!r} used as a value; wrap the call in ( )")
        else:
            raise TemplateError(f"{self.where}: unexpected {text!r} in command")
        return lambda scope: value


def _text_node(text: str) -> Node:
    return lambda scope, out: out.append(text)


def _chain(expr: Expr, path: list[str]) -> Expr:
    return lambda scope: _field(expr(scope), path)


def _unquote(text: str) -> str:
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"bad escape in string literal: {exc}") from None


def _number_literal(text: str, where: str) -> Any:
    try:
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"[-+]?\d+", text):
            return int(text)
        return float(text)
    except ValueError:
        raise TemplateError(f"{where}: bad number syntax: {text!r}") from None


def _if(pipe: Expr, declared: list[str], body: list[Node], otherwise: list[Node], with_: bool) -> Node:
    def run(scope: _Scope, out: list[str]) -> None:
        inner = scope.child(scope.dot)
        value = pipe(inner)
        if declared:
            inner.vars[-1][declared[0]] = value
        if _truth(value):
            if with_:
                inner.dot = value
            _run(body, inner, out)
        else:
            _run(otherwise, scope.child(scope.dot), out)
    return run


def _range(pipe: Expr, declared: list[str], body: list[Node], otherwise: list[Node]) -> Node:
    def run(scope: _Scope, out: list[str]) -> None:
        value = pipe(scope)
        pairs: list[tuple[Any, Any]]
        if value is None or value is MISSING:
            pairs = []
        elif isinstance(value, Mapping):
            pairs = sorted(value.items())
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(n, n) for n in range(value)]
        else:
            raise TemplateError(f"range can't iterate over {go_format(value)}")
        if not pairs:
            _run(otherwise, scope.child(scope.dot), out)
            return
        for key, item in pairs:
            inner = scope.child(item)
            if len(declared) == 2:
                inner.vars[-1][declared[0]], inner.vars[-1][declared[1]] = key, item
            elif declared:
                inner.vars[-1][declared[0]] = item
            _run(body, inner, out)
    return run


def _run(nodes: list[Node], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        node(scope, out)


class Template:
    """A compiled ``dataTemplate``: :meth:`render` applies it to a record or a list of records."""

    def __init__(self, source: str, where: str = "dataTemplate") -> None:
        self.source = source
        self._nodes = _Parser(source, where).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        _run(self._nodes, _Scope(data, [{"$": data}]), out)
        return "".join(out)


def compile_template(source: str, where: str = "dataTemplate") -> Template:
    """Parse ``source``; raises :class:`TemplateError` naming what ekws does not support."""
    return Template(source, where)
