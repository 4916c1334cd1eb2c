"""String functions: eKuiper's ``funcs_str.go`` (docs ``string_functions.md``).

Every argument is read as eKuiper's ``cast.ToStringAlways`` reads it (Go's
``%v``: ``true``, ``12345``, ``1.5``), so ``lower(12345)`` is ``"12345"`` and
``concat("x", true)`` is ``"xtrue"``. Regular expressions are Python's
``re`` (eKuiper uses Go's RE2: the common syntax is the same); a literal
pattern is compiled once when the rule is created, and a pattern read from
the record is cached (at most 64).

Python's ``re`` backtracks where RE2 is linear, so what a pattern may cost is
bounded by refusing its expensive shapes: at most 1000 characters, and no
quantified group holding a quantifier (``(a+)+``, ``(\\w|\\d*)*``: nested
quantifiers are the usual cause of exponential backtracking). A literal
pattern is refused when the rule is created, a pattern from the record
fails that record. This is a heuristic, not RE2's guarantee: a quantified
alternation whose branches overlap (``(a|a)*``) still backtracks; the rule's
author owns the pattern.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..expr import EvalError
from .args import INT, NUMBER, STRING, expect, go_str, to_float, to_int
from .registry import NOT_CONST, Arg, register

MAX_PATTERN = 1000
_S = expect(STRING)
_SI = expect(STRING, INT)


@register("concat", 1, None, nulls="pass", validate=_S, family="string")
def concat(*args: Any) -> str:
    return "".join(go_str(a) for a in args)


@register("endswith", 2, nulls="false", validate=_S, family="string")
def endswith(s: Any, suffix: Any) -> bool:
    return go_str(s).endswith(go_str(suffix))


@register("startswith", 2, nulls="false", validate=_S, family="string")
def startswith(s: Any, prefix: Any) -> bool:
    return go_str(s).startswith(go_str(prefix))


@register("indexof", 2, nulls="pass", validate=_S, family="string")
def indexof(s: Any, sub: Any) -> int:
    if s is None or sub is None:
        return -1
    # Go's strings.Index counts bytes; for ASCII the same as characters.
    text, part = go_str(s), go_str(sub)
    found = text.find(part)
    return found if found < 0 else len(text[:found].encode())


@register("length", 1, nulls="zero", family="string")
def length(value: Any) -> int:
    if type(value) is list or type(value) is dict:
        return len(value)
    return len(go_str(value))


@register("lower", 1, validate=_S, family="string")
def lower(s: Any) -> str:
    return s.lower() if type(s) is str else go_str(s).lower()


@register("upper", 1, validate=_S, family="string")
def upper(s: Any) -> str:
    return s.upper() if type(s) is str else go_str(s).upper()


@register("trim", 1, validate=_S, family="string")
def trim(s: Any) -> str:
    return s.strip() if type(s) is str else go_str(s).strip()


@register("ltrim", 1, validate=_S, family="string")
def ltrim(s: Any) -> str:
    return go_str(s).lstrip()


@register("rtrim", 1, validate=_S, family="string")
def rtrim(s: Any) -> str:
    return go_str(s).rstrip()


MAX_PAD = 1_000_000  # lpad, rpad and format refuse to build more


def _pad(n: Any, name: str) -> str:
    count = to_int(n, name)
    if count > MAX_PAD:
        raise EvalError(f"{name}: at most {MAX_PAD} characters of padding")
    return " " * count


@register("lpad", 2, validate=_SI, family="string")
def lpad(s: Any, n: Any) -> str:
    return _pad(n, "lpad") + go_str(s)


@register("rpad", 2, validate=_SI, family="string")
def rpad(s: Any, n: Any) -> str:
    return go_str(s) + _pad(n, "rpad")


@register("numbytes", 1, nulls="zero", validate=_S, family="string")
def numbytes(s: Any) -> int:
    return len(go_str(s).encode())


@register("reverse", 1, validate=_S, family="string")
def reverse(s: Any) -> str:
    return go_str(s)[::-1]


def _substring_check(args: Sequence[Arg]) -> None:
    expect(STRING, INT)(args)
    start = args[1].value
    if type(start) is int:
        if start < 0:
            raise ValueError("The start index should not be a nagtive integer.")
        if len(args) == 3 and type(args[2].value) is int and args[2].value < start:
            raise ValueError("The end index should be larger than start index.")


@register("substring", 2, 3, validate=_substring_check, family="string")
def substring(s: Any, start: Any, end: Any = None) -> str:
    text, begin = go_str(s), to_int(start, "substring")
    if begin < 0:
        raise EvalError("start index must be a positive number")
    if end is None:
        return text[begin:]
    stop = to_int(end, "substring")
    if stop < 0:
        raise EvalError("end index must be a positive number")
    if begin > stop:
        raise EvalError("start index must be smaller than end index")
    return text[begin:stop]


def _split_check(args: Sequence[Arg]) -> None:
    expect(STRING, STRING, INT)(args)
    if type(args[2].value) is int and args[2].value < 0:
        raise ValueError("The index should not be a nagtive integer.")


@register("split_value", 3, validate=_split_check, family="string")
def split_value(s: Any, sep: Any, index: Any) -> str:
    text, by = go_str(s), go_str(sep)
    parts = text.split(by) if by else list(text)
    n = to_int(index, "split_value")
    if n >= len(parts) or n < -len(parts):
        raise EvalError(f"{n} out of index array (size = {len(parts)})")
    return parts[n]


# Locales whose numbers read 12,332.20 (eKuiper knows all of CLDR; ekws only these).
_GROUPED_LOCALES = frozenset(("en_US", "en_GB", "en_AU", "en_CA", "en_IN", "en_NZ", "en_PH", "en_ZW",
                              "zh_CN", "zh_HK", "zh_TW", "ja_JP", "ko_KR", "he_IL", "hi_IN", "ms_MY"))


@register("format", 2, 3, validate=expect(NUMBER, INT, STRING), family="string")
def format_number(x: Any, places: Any, locale: Any = None) -> str:
    value, digits = to_float(x, "format"), to_int(places, "format")
    if digits < 0:
        raise EvalError("the decimal places must greater or equal than 0")
    if digits > 100:
        raise EvalError("format: at most 100 decimal places")
    if locale is None:
        return f"{value:.{digits}f}"
    if go_str(locale).replace("-", "_") not in _GROUPED_LOCALES:
        raise EvalError(f"not support for the specific locale:{go_str(locale)}")
    return f"{value:,.{digits}f}"


# --------------------------------------------------------------------------- regular expressions


def nested_quantifier(pattern: str) -> bool:
    """Whether a quantified group holds a quantifier (``(a+)+``, ``(a|b*)*``): the shape that
    makes a backtracking engine exponential. Escapes and character classes are skipped."""
    stack: list[bool] = []  # per open group: whether it holds a quantifier
    i, end, in_class = 0, len(pattern), False
    while i < end:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith("[]", i) or pattern.startswith("[^]", i):
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif char == "(":
            stack.append(False)
        elif char == ")" and stack:
            held = stack.pop()
            quantified = i + 1 < end and pattern[i + 1] in "*+{"
            if held and quantified:
                return True
            if stack and (held or quantified):
                stack[-1] = True
        elif char in "*+{" and stack:
            stack[-1] = True
        i += 1
    return False


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str]:
    if len(text) > MAX_PATTERN:
        raise EvalError(f"a regular expression longer than {MAX_PATTERN} characters")
    if nested_quantifier(text):
        raise EvalError(f"a regular expression with a quantified group that holds a quantifier "
                        f"(like (a+)+) can take exponential time; rewrite it: {text!r:.60}")
    try:
        return re.compile(text)
    except re.error as exc:
        raise EvalError(f"error parsing regexp: {exc}") from None


def _regex_bind(index: int, make: Callable[[Callable[[str], re.Pattern[str]]], Callable[..., Any]]
                ) -> Callable[[Sequence[Arg], str], Callable[..., Any]]:
    """Compile a literal pattern (argument ``index``) once, at rule creation."""
    def bind(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
        literal = args[index].value
        if literal is not NOT_CONST and literal is not None:
            try:
                compiled = _pattern(go_str(literal))
            except EvalError as exc:
                raise ValueError(str(exc)) from None
            return make(lambda _text: compiled)
        return make(_pattern)
    return bind


def _matches(pattern: Callable[[str], re.Pattern[str]]) -> Callable[..., Any]:
    return lambda s, p: pattern(go_str(p)).search(go_str(s)) is not None


def _substr(pattern: Callable[[str], re.Pattern[str]]) -> Callable[..., Any]:
    def substr(s: Any, p: Any) -> str:
        found = pattern(go_str(p)).search(go_str(s))
        return "" if found is None else found.group(0)
    return substr


def _replace(pattern: Callable[[str], re.Pattern[str]]) -> Callable[..., Any]:
    def replace(s: Any, p: Any, repl: Any) -> str:
        # Go's ReplaceAllString expands $1 / ${1}; Python wants \g<1>.
        template = re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", go_str(repl).replace("\\", "\\\\"))
        try:
            return pattern(go_str(p)).sub(template, go_str(s))
        except (re.error, IndexError) as exc:
            raise EvalError(f"regexp_replace: {exc}") from None
    return replace


register("regexp_matches", 2, nulls="false", validate=_S, bind=_regex_bind(1, _matches),
         family="string")(_matches(_pattern))
register("regexp_substr", 2, validate=_S, bind=_regex_bind(1, _substr), family="string")(_substr(_pattern))
# The reference page calls it regexp_substring; eKuiper's code knows only regexp_substr.
register("regexp_substring", 2, validate=_S, bind=_regex_bind(1, _substr), family="string")(_substr(_pattern))
register("regexp_replace", 3, validate=_S, bind=_regex_bind(1, _replace),
         family="string")(_replace(_pattern))
