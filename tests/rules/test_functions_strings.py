"""String functions, ported from eKuiper's ``internal/binder/function/funcs_str_test.go`` and the
examples of ``docs/en_US/sqls/functions/string_functions.md`` (each row names its source)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import EvalError, SQLError

STR_TEST = "funcs_str_test.go"
DOCS = "string_functions.md"
ISSUE = "issue 17 (eKuiper's behaviour)"


@pytest.mark.parametrize(("source", "name", "args", "expected"), [
    # TestStrFuncNil: a null argument, function by function
    (STR_TEST, "concat", ("1", None, "2"), "12"),
    (STR_TEST, "endswith", (None, "a"), False),
    (STR_TEST, "startswith", (None, "a"), False),
    (STR_TEST, "regexp_matches", (None, "a"), False),
    (STR_TEST, "indexof", (None, "a"), -1),
    (STR_TEST, "length", (None,), 0),
    (STR_TEST, "numbytes", (None,), 0),
    (STR_TEST, "lower", (None,), None),
    (STR_TEST, "upper", (None,), None),
    (STR_TEST, "trim", (None,), None),
    (STR_TEST, "ltrim", (None,), None),
    (STR_TEST, "rtrim", (None,), None),
    (STR_TEST, "reverse", (None,), None),
    (STR_TEST, "lpad", (None, 2), None),
    (STR_TEST, "rpad", (None, 2), None),
    (STR_TEST, "substring", (None, 1), None),
    (STR_TEST, "split_value", (None, "/", 0), None),
    (STR_TEST, "regexp_replace", (None, "a", "b"), None),
    (STR_TEST, "regexp_substr", (None, "a"), None),
    # TestSplitValueFunctions
    (STR_TEST, "split_value", ("a/b/c", "/", 0), "a"),
    (STR_TEST, "split_value", ("a/b/c", "/", -1), "c"),
    # testFormat / testFormatLocale
    (STR_TEST, "format", (12332.123456, 4), "12332.1235"),
    (STR_TEST, "format", (12332.1, 4), "12332.1000"),
    (STR_TEST, "format", (12332.2, 0), "12332"),
    (STR_TEST, "format", (12332.2, 2), "12332.20"),
    (STR_TEST, "format", (12332.123456, 4, "en_US"), "12,332.1235"),
    (STR_TEST, "format", (12332.2, 0, "en_US"), "12,332"),
    (STR_TEST, "format", (12332.2, 2, "zh_CN"), "12,332.20"),
    # the issue's cases: Go's %v of every kind
    (ISSUE, "concat", ("a", None, "b"), "ab"),
    (ISSUE, "concat", ("x", True), "xtrue"),
    (ISSUE, "concat", ("x", 1.5, 2), "x1.52"),
    (ISSUE, "lower", (12345,), "12345"),
    (ISSUE, "upper", (False,), "FALSE"),
    (ISSUE, "length", ("héllo",), 5),
    (ISSUE, "length", ([1, 2, 3],), 3),
    (ISSUE, "length", ({"a": 1},), 1),
    (ISSUE, "numbytes", ("héllo",), 6),
    # the reference's functions, one example each
    (DOCS, "endswith", ("abc", "bc"), True),
    (DOCS, "startswith", ("abc", "ab"), True),
    (DOCS, "indexof", ("abcabc", "ca"), 2),
    (DOCS, "indexof", ("abc", "x"), -1),
    (DOCS, "lower", ("ABC",), "abc"),
    (DOCS, "upper", ("abc",), "ABC"),
    (DOCS, "lpad", ("ab", 2), "  ab"),
    (DOCS, "rpad", ("ab", 2), "ab  "),
    (DOCS, "ltrim", ("  a b ",), "a b "),
    (DOCS, "rtrim", ("  a b ",), "  a b"),
    (DOCS, "trim", ("\t a b \n",), "a b"),
    (DOCS, "reverse", ("abc",), "cba"),
    (DOCS, "regexp_matches", ("abc123", "[0-9]+"), True),
    (DOCS, "regexp_matches", ("abc", "[0-9]+"), False),
    (DOCS, "regexp_replace", ("abc123", "[0-9]+", "#"), "abc#"),
    (DOCS, "regexp_replace", ("a1b2", "([a-z])([0-9])", "$2$1"), "1a2b"),
    (DOCS, "regexp_substr", ("abc123def", "[0-9]+"), "123"),
    (DOCS, "regexp_substr", ("abc", "[0-9]+"), ""),
    (DOCS, "substring", ("abcdef", 2), "cdef"),
    (DOCS, "substring", ("abcdef", 2, 4), "cd"),
    (DOCS, "substring", ("abc", 5), ""),
    (DOCS, "substring", ("abc", 1, 10), "bc"),
    (DOCS, "split_value", ("/test/device001/message", "/", 2), "device001"),
])
def test_string_functions(source: str, name: str, args: tuple[Any, ...], expected: Any) -> None:
    got = call(name, *args)
    assert got == expected and type(got) is type(expected), source


@pytest.mark.parametrize(("name", "args", "error"), [
    ("split_value", ("a/b/c", "/", 3), r"3 out of index array \(size = 3\)"),  # funcs_str_test.go
    ("split_value", ("a/b/c", "/", -4), r"-4 out of index array \(size = 3\)"),  # funcs_str_test.go
    ("format", (12332.2, -1), "the decimal places must greater or equal than 0"),  # funcs_str_test.go
    ("format", (98765.4321, 2, "not_exist_locale"),
     "not support for the specific locale:not_exist_locale"),  # funcs_str_test.go
    ("substring", ("abc", 2, 1), "start index must be smaller than end index"),
    ("lpad", ("a", "x"), "expect an int"),
    ("regexp_matches", ("a", "("), "error parsing regexp"),
])
def test_string_function_errors_fail_the_record(name: str, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(EvalError, match=error):
        call(name, *args)


@pytest.mark.parametrize(("expr", "error"), [
    ("lower(1)", "lower: Expect string type for parameter 1"),
    ("concat('x', true)", "concat: Expect string type for parameter 2"),
    ("upper(a, b)", r"upper: Expect 1 arguments but found 2\."),
    ("concat()", r"concat: At least has 1 argument but found 0\."),
    ("substring(a, -1)", "The start index should not be a nagtive integer."),
    ("substring(a, 3, 1)", "The end index should be larger than start index."),
    ("split_value(a, '/', -1)", "The index should not be a nagtive integer."),
    ("lpad(a, 'x')", "lpad: Expect int type for parameter 2"),
    ("regexp_matches(a, '(')", "regexp_matches: error parsing regexp"),
    ("LOWERR(a)", "function LOWERR not found"),
])
def test_string_function_mistakes_are_refused_at_rule_creation(expr: str, error: str) -> None:
    with pytest.raises(SQLError, match=error):
        value(expr)


def test_function_names_are_case_insensitive_and_key_their_output() -> None:
    from ekws.rules.sql import parse_query
    query = parse_query("SELECT UPPER(a), Concat(a, b) FROM demo")
    from helpers.functions import PEER

    import ekws
    assert query.run(ekws.Message({"a": "x", "b": 1}, PEER, 0)) == {"upper": "X", "concat": "x1"}


def test_a_literal_regular_expression_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from ekws.rules.sql import parse_query
    compiled: list[str] = []
    real = re.compile

    def counting(pattern: Any, flags: int = 0) -> Any:
        compiled.append(pattern)
        return real(pattern, flags)
    query = parse_query("SELECT regexp_replace(a, 'x[0-9]{3}y', '-') AS v FROM demo")
    monkeypatch.setattr(re, "compile", counting)
    from helpers.functions import PEER

    import ekws
    for n in range(5):
        assert query.run(ekws.Message({"a": f"ax{n}00yb"}, PEER, 0)) == {"v": "a-b"}
    assert not [p for p in compiled if "[0-9]{3}" in str(p)]


@pytest.mark.parametrize(("pattern", "nested"), [
    ("(a+)+b", True), ("(a*)*", True), ("(x|y*)+", True), ("((ab)*c)*", True), ("(a{1,3})+", True),
    ("(a+)", False), ("a+b*", False), ("([a+]*)", False), (r"(\(+)", False), ("(ab)+c*", False),
    ("[(]+(a)", False), ("(?:ab)+", False),
])
def test_nested_quantifiers_are_found(pattern: str, nested: bool) -> None:
    from ekws.rules.functions.strings import nested_quantifier
    assert nested_quantifier(pattern) is nested


def test_an_exponential_pattern_is_refused_at_creation_or_per_record() -> None:
    with pytest.raises(SQLError, match="exponential time"):
        value("regexp_matches(a, '(a+)+$')")
    with pytest.raises(EvalError, match="exponential time"):
        call("regexp_matches", "a" * 40 + "!", "(a+)+$")
