"""JSON functions: ``json_path_exists``, ``json_path_query``, ``json_path_query_first``
(eKuiper's ``funcs_misc.go``, docs ``json_functions.md`` and ``json_expr.md``).

eKuiper evaluates Goessner JSONPath with PaesslerAG/jsonpath. No well-kept
Python library matches its results closely enough (definite paths answer a
value, wildcard paths a list) without pulling a grammar engine into a device
script, so ekws reads a small documented subset, compiled once when the path
is a literal:

- ``$`` the value; ``.name``, ``['name']``, ``["name"]`` or ``[name]`` a key;
- ``[n]`` an index (negative from the end), ``[*]`` or ``.*`` every element or value;
- ``..name`` every ``name`` at any depth;
- ``[? @.path op literal]`` (parentheses optional) the elements whose ``@.path``
  compares with a number, string, ``true``, ``false`` or ``null`` by
  ``== != < <= > >=``; ``[? @.path]`` the elements having it.

A definite path (keys and indexes only) gives the value itself, or null when it
is missing (``json_path_exists`` false); any other path gives the list of what
it found. Anything else in a path is refused with its position.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..expr import EvalError, compare, equal
from .args import STRING, expect, go_str
from .registry import NOT_CONST, Arg, register

Step = Callable[[Any], Iterator[Any]]
_MISSING: Any = object()
_NAME = re.compile(r"[^\W\d][\w-]*|\d+[\w-]*", re.UNICODE)
_LITERAL = re.compile(r"""\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"""
                      r"""|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|true|false|null)\s*""")
_FILTER = re.compile(r"\s*@((?:\.[\w-]+|\[\d+\])*)\s*(?:(==|!=|<=|>=|<|>)(.*?))?\s*$", re.DOTALL)


def _key(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if type(value) is dict and name in value:
            yield value[name]
    return step


def _index(n: int) -> Step:
    def step(value: Any) -> Iterator[Any]:
        if type(value) is list and -len(value) <= n < len(value):
            yield value[n]
    return step


def _every(value: Any) -> Iterator[Any]:
    if type(value) is list:
        yield from value
    elif type(value) is dict:
        yield from value.values()


def _descend(name: str) -> Step:
    def step(value: Any) -> Iterator[Any]:
        stack = [value]
        while stack:
            item = stack.pop(0)
            if type(item) is dict:
                if name in item:
                    yield item[name]
                stack.extend(item.values())
            elif type(item) is list:
                stack.extend(item)
    return step


def _literal(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text]
    if text[:1] in "\"'":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _filter(text: str, where: int) -> Step:
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1]
    match = _FILTER.match(inner)
    if match is None or (match.group(2) and not _LITERAL.fullmatch(match.group(3) or "")):
        raise ValueError(f"unsupported JSONPath filter {text.strip()!r} at {where}")
    path = [int(p[1:-1]) if p.startswith("[") else p[1:]
            for p in re.findall(r"\.[\w-]+|\[\d+\]", match.group(1))]
    op, literal = match.group(2), _literal(match.group(3)) if match.group(2) else None

    def picked(item: Any) -> Any:
        for part in path:
            if type(part) is int:
                item = item[part] if type(item) is list and part < len(item) else _MISSING
            else:
                item = item.get(part, _MISSING) if type(item) is dict else _MISSING
            if item is _MISSING:
                return _MISSING
        return item

    def keep(item: Any) -> bool:
        value = picked(item)
        if value is _MISSING:
            return False
        if op is None:
            return True
        if op in ("==", "!="):
            return equal(value, literal) is (op == "==")
        try:
            return compare(op, value, literal)
        except EvalError:
            return False

    def step(value: Any) -> Iterator[Any]:
        for item in _every(value):
            if keep(item):
                yield item
    return step


@functools.lru_cache(maxsize=64)
def compile_path(path: str) -> tuple[tuple[Step, ...], bool]:
    """The steps of ``path`` and whether it is definite.

    Raises:
        ValueError: outside the subset, with the position.
    """
    text = path.strip()
    if not text.startswith("$"):
        raise ValueError(f"a JSONPath starts with $: {path!r}")
    steps: list[Step] = []
    definite, i = True, 1
    while i < len(text):
        if text.startswith("..", i):
            match = _NAME.match(text, i + 2)
            if match is None:
                raise ValueError(f"expected a name after '..' at {i + 2}")
            steps.append(_descend(match.group(0)))
            definite, i = False, match.end()
        elif text.startswith(".*", i):
            steps.append(_every)
            definite, i = False, i + 2
        elif text[i] == ".":
            match = _NAME.match(text, i + 1)
            if match is None:
                raise ValueError(f"expected a name after '.' at {i + 1}")
            steps.append(_key(match.group(0)))
            i = match.end()
        elif text[i] == "[":
            close = _closing(text, i)
            inner = text[i + 1:close].strip()
            if inner == "*":
                steps.append(_every)
                definite = False
            elif inner.startswith("?"):
                steps.append(_filter(inner[1:], i))
                definite = False
            elif re.fullmatch(r"-?\d+", inner):
                steps.append(_index(int(inner)))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                steps.append(_key(re.sub(r"\\(.)", r"\1", inner[1:-1])))
            elif _NAME.fullmatch(inner):
                steps.append(_key(inner))
            else:
                raise ValueError(f"unsupported JSONPath selector [{inner}] at {i}")
            i = close + 1
        else:
            raise ValueError(f"unexpected {text[i]!r} in JSONPath at {i}")
    return tuple(steps), definite


def _closing(text: str, start: int) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        char = text[j]
        if quote:
            if char == quote and text[j - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"an unclosed [ in JSONPath at {start}")


def _run(value: Any, path: Any) -> tuple[list[Any], bool]:
    try:
        steps, definite = compile_path(go_str(path))
    except ValueError as exc:
        raise EvalError(f"invalid jsonpath: {exc}") from None
    found = [value]
    for step in steps:
        found = [out for item in found for out in step(item)]
    return found, definite


def _bind(kind: str) -> Callable[[Sequence[Arg], str], Callable[..., Any]]:
    def bind(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
        if args[1].value is not NOT_CONST and args[1].value is not None:
            compile_path(go_str(args[1].value))  # a ValueError here is the rule's SQLError
        return _IMPLS[kind]
    return bind


def json_path_exists(value: Any, path: Any) -> bool:
    return bool(_run(value, path)[0])


def json_path_query(value: Any, path: Any) -> Any:
    found, definite = _run(value, path)
    return (found[0] if found else None) if definite else found


def json_path_query_first(value: Any, path: Any) -> Any:
    found, _ = _run(value, path)
    return found[0] if found else None


_IMPLS = {"exists": json_path_exists, "query": json_path_query, "first": json_path_query_first}
_VALIDATE = expect("any", STRING)
register("json_path_exists", 2, nulls="false", validate=_VALIDATE, bind=_bind("exists"),
         family="json")(json_path_exists)
register("json_path_query", 2, validate=_VALIDATE, bind=_bind("query"), family="json")(json_path_query)
register("json_path_query_first", 2, validate=_VALIDATE, bind=_bind("first"),
         family="json")(json_path_query_first)
