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

import re
from collections.abc import Callable, Mapping
from typing import Any, Optional

from .template_funcs import FUNCTIONS, MISSING, NO_VALUE, TemplateError, go_float, go_format, truth

# FUNCTIONS, MISSING, NO_VALUE, TemplateError, go_float and go_format live in template_funcs;
# they are re-exported here, where they were first defined.
__all__ = ["FUNCTIONS", "MISSING", "NO_VALUE", "Template", "TemplateError", "compile_template", "go_float",
           "go_format"]


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
        if truth(value):
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
