"""The rule SQL subset: eKuiper's documented results, null semantics, refusals, and fuzzing.

Pure: no sockets. Records go through ``Query.matches``/``Query.project``
exactly as a rule calls them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ekws
from ekws import sqllex
from ekws.rules.sql import EvalError, SQLError, parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)

# The sample record of eKuiper's "JSON expressions" page.
SAMPLE = {
    "name": {"first": "Tom", "last": "Anderson"},
    "age": 37,
    "children": ["Sara", "Alex", "Jack"],
    "fav.movie": "Deer Hunter",
    "friends": [
        {"first": "Dale", "last": "Murphy", "age": 44},
        {"first": "Roger", "last": "Craig", "age": 68},
        {"first": "Jane", "last": "Murphy", "age": 47},
    ],
    "ops": {"functionA": {"numArgs": 2}, "functionB": {"numArgs": 3}, "functionC": {"variadic": True}},
    "x": 0,
    "y": 2,
}


def run(sql: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The record a rule would send for ``data``, or None when WHERE drops it."""
    query = parse_query(sql)
    msg = ekws.Message(data, PEER, 1_700_000_000_000)
    return query.project(msg) if query.matches(msg) else None


def where(condition: str, data: dict[str, Any]) -> bool:
    return run(f"SELECT * FROM demo WHERE {condition}", data) is not None


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT demo.age FROM demo", {"age": 37}),
    ("SELECT demo.name->first FROM demo", {"first": "Tom"}),
    ("SELECT demo.name.first FROM demo", {"first": "Tom"}),
    ("SELECT name.first AS fname FROM demo", {"fname": "Tom"}),
    ("SELECT name->first AS fname FROM demo", {"fname": "Tom"}),
    ("SELECT ops->functionA.numArgs AS num FROM demo", {"num": 2}),
    ("SELECT children FROM demo", {"children": ["Sara", "Alex", "Jack"]}),
    ("SELECT children[0] FROM demo", {"children": "Sara"}),
    ("SELECT children[1] FROM demo", {"children": "Alex"}),
    ("SELECT children[-1] FROM demo", {"children": "Jack"}),
    ("SELECT children[-2] FROM demo", {"children": "Alex"}),
    ("SELECT d.friends[0]->last FROM demo AS d", {"last": "Murphy"}),
])
def test_ekuiper_json_expression_examples(sql: str, expected: dict[str, Any]) -> None:
    assert run(sql, SAMPLE) == expected


def test_select_star_passes_the_record_itself() -> None:
    query = parse_query("SELECT * FROM demo")
    data = {"a": 1}
    assert query.project(ekws.Message(data, PEER, 0)) is data
    assert query.select_all and not query.has_where and query.stream == "demo"


def test_select_star_with_more_fields_adds_to_a_copy() -> None:
    data = {"a": 1}
    assert run("SELECT *, a + 1 AS b FROM demo", data) == {"a": 1, "b": 2}
    assert data == {"a": 1}


def test_output_names() -> None:
    out = run("SELECT abs(x), x + 1, `fav.movie`, -y, 'k', lower(name.last) AS l FROM demo", SAMPLE)
    assert out == {"abs": 0, "kuiper_field_0": 1, "fav.movie": "Deer Hunter", "kuiper_field_1": -2,
                   "kuiper_field_2": "k", "l": "anderson"}


def test_meta_fields() -> None:
    out = run("SELECT meta(stream), meta(peer) AS p, meta(timestamp), meta(connection), meta(nope) "
              "FROM demo", {})
    assert out == {"stream": "demo", "p": "10.0.0.7:5000", "timestamp": 1_700_000_000_000, "connection": 3,
                   "nope": None}
    assert where('meta(datasource) = "/api/data"', {})


def test_keywords_are_case_insensitive_names_are_not() -> None:
    query = parse_query("select A, a from Demo where A is null")
    assert query.stream == "Demo"
    assert run("select A, a from Demo where A is null", {"a": 1}) == {"A": None, "a": 1}
    assert run("sElEcT * FrOm demo WhErE a BeTwEeN 1 AnD 2", {"a": 1}) == {"a": 1}


# --------------------------------------------------------------------------- semantics


@pytest.mark.parametrize(("condition", "data", "passes"), [
    ("a > 1", {}, False),  # a missing field is null; comparisons with null are false
    ("a < 1", {}, False),
    ("a = NULL", {"a": None}, False),
    ("a != 1", {}, False),
    ("NOT a > 1", {}, True),  # NOT of false
    ("a IS NULL", {}, True),
    ("a IS NULL", {"a": None}, True),
    ("a IS NOT NULL", {"a": 0}, True),
    ("a IN (1, 2)", {}, False),
    ("a NOT IN (1, 2)", {}, False),
    ("a NOT IN (1, 2)", {"a": 3}, True),
    ("a IN (1, 'x', TRUE)", {"a": "x"}, True),
    ("a IN (1, 2)", {"a": True}, False),  # true is not 1
    ("a IN (1, 2)", {"a": 2.0}, True),
    ("a IN (b, c + 1)", {"a": 3, "b": 1, "c": 2}, True),
    ("a IN arr", {"a": 2, "arr": [1, 2]}, True),
    ("a NOT IN arr", {"a": 2, "arr": [1, 2]}, False),
    ("a LIKE 'ab%'", {"a": "abc"}, True),
    ("a LIKE 'a_c'", {"a": "abc"}, True),
    ("a LIKE 'a_c'", {"a": "abbc"}, False),
    ("a LIKE '%.json'", {"a": "xjson"}, False),  # regex characters are literal
    ("a LIKE '50\\%'", {"a": "50%"}, True),
    ("a LIKE '50\\%'", {"a": "500"}, False),
    ("a NOT LIKE 'x%'", {}, False),
    ("a NOT LIKE 'x%'", {"a": "y"}, True),
    ("a BETWEEN 1 AND 3", {"a": 3}, True),
    ("a NOT BETWEEN 1 AND 3", {"a": 4}, True),
    ("a NOT BETWEEN 1 AND 3", {}, False),
    ("a = 1 OR b = 2 AND c = 3", {"a": 1}, True),  # AND binds tighter
    ("(a = 1 OR b = 2) AND c = 3", {"a": 1}, False),
    ("a = 'x'", {"a": 1}, False),  # equality across kinds: unequal
    ("a <> 'x'", {"a": 1}, True),
    ("a = TRUE", {"a": 1}, False),
    ("a = b", {"a": {"k": [1]}, "b": {"k": [1]}}, True),
    ("a.b.c >= 2", {"a": {"b": {"c": 2}}}, True),
    ("a.b.c >= 2", {"a": {"b": 5}}, False),  # stepping into a non-object is null
    ("a[5] IS NULL", {"a": [1]}, True),
    ("flag", {"flag": True}, True),
    ("flag", {"flag": 1}, False),  # only true passes
    ("CASE WHEN a > 1 THEN TRUE ELSE FALSE END", {"a": 2}, True),
    ("CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END = 'two'", {"a": 2}, True),
])
def test_conditions(condition: str, data: dict[str, Any], passes: bool) -> None:
    assert where(condition, data) is passes


@pytest.mark.parametrize(("expr", "data", "value"), [
    ("a + b * 2", {"a": 1, "b": 3}, 7),
    ("(a + b) * 2", {"a": 1, "b": 3}, 8),
    ("a / 2", {"a": 7}, 3),  # integers divide as integers, as in eKuiper
    ("a / 2", {"a": -7}, -3),  # toward zero
    ("a / 2", {"a": 7.0}, 3.5),
    ("a % 3", {"a": 7}, 1),
    ("a - 1.5", {"a": 1}, -0.5),
    ("a + 1", {}, None),  # null propagates
    ("-a", {"a": 2}, -2),
    ("2e3 + 1", {}, 2001.0),
    ("lower(a)", {"a": "AbC"}, "abc"),
    ("upper(a)", {"a": "AbC"}, "ABC"),
    ("trim(a)", {"a": "  x "}, "x"),
    ("length(a)", {"a": "héllo"}, 5),
    ("length(a)", {"a": [1, 2]}, 2),
    ("concat(a, '-', b)", {"a": "x", "b": 1}, "x-1"),
    ("concat(a, b)", {"a": "x"}, "x"),  # eKuiper skips a null (funcs_str.go)
    ("abs(a)", {"a": -2.5}, 2.5),
    ("round(a)", {"a": 2.5}, 3.0),
    ("round(a)", {"a": -2.5}, -3.0),
    ("round(a, 2)", {"a": 1.005001}, 1.01),
    ("round(a)", {"a": 7}, 7),
    ("floor(a)", {"a": 2.7}, 2),
    ("ceil(a)", {"a": 2.1}, 3),
    ("coalesce(a, b, 3)", {"b": 2}, 2),
    ("coalesce(a, b)", {}, None),
    ("cast(a, 'bigint')", {"a": "42"}, 42),
    ("cast(a, 'float')", {"a": 1}, 1.0),
    ("cast(a, 'string')", {"a": True}, "true"),
    ("cast(a, 'boolean')", {"a": "false"}, False),
    ("lower(a)", {}, None),
    ("CASE WHEN a > 10 THEN 'big' WHEN a > 5 THEN 'mid' ELSE 'small' END", {"a": 7}, "mid"),
    ("CASE WHEN a > 10 THEN 'big' END", {"a": 7}, None),
])
def test_expressions(expr: str, data: dict[str, Any], value: Any) -> None:
    out = run(f"SELECT {expr} AS v FROM demo", data)
    assert out is not None
    assert out["v"] == value and type(out["v"]) is type(value)


@pytest.mark.parametrize(("sql", "data", "match"), [
    ("SELECT * FROM demo WHERE a > 1", {"a": "x"}, "cannot compare string 'x' > number 1"),
    ("SELECT * FROM demo WHERE a < b", {"a": [1], "b": [2]}, "cannot compare list"),
    ("SELECT a + 1 AS v FROM demo", {"a": "x"}, r"\+ needs numbers, got string"),
    ("SELECT a / b AS v FROM demo", {"a": 1, "b": 0}, "division by zero"),
    ("SELECT 1 / 0 AS v FROM demo", {}, "division by zero"),
    ("SELECT abs(a) AS v FROM demo", {"a": "1"}, r"abs: only float64 or int is supported"),
    ("SELECT cast(a, 'bigint') AS v FROM demo", {"a": "x"}, "cannot cast string 'x' to bigint"),
    ("SELECT * FROM demo WHERE a LIKE 'x'", {"a": 1}, "LIKE needs a string"),
    ("SELECT * FROM demo WHERE a IN b", {"a": 1, "b": 2}, "IN needs an array"),
])
def test_evaluation_errors_are_eval_errors(sql: str, data: dict[str, Any], match: str) -> None:
    with pytest.raises(EvalError, match=match):
        run(sql, data)


def test_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    query = parse_query("SELECT a * 2 AS b, lower(s) FROM demo WHERE a IN (1, 2) AND s LIKE 'x%'")

    def no_lexing(self: Any) -> Any:
        raise AssertionError("re-parsed while running")
    monkeypatch.setattr(sqllex.Lexer, "tokens", no_lexing)  # the one lexer, rules and DDL
    msg = ekws.Message({"a": 2, "s": "XY".lower()}, PEER, 0)
    assert query.matches(msg) and query.project(msg) == {"b": 4, "lower": "xy"}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("sql", "match"), [
    ("SELECT count(*) FROM demo", "aggregate function COUNT needs a window.* line 1, column 8"),
    ("SELECT avg(t) AS a FROM demo", "aggregate function AVG needs a window"),
    ("SELECT * FROM demo WHERE count(*) > 1 GROUP BY COUNTWINDOW(2)", "not allowed in WHERE"),
    ("SELECT sum(avg(a)) FROM demo GROUP BY COUNTWINDOW(2)", "AVG is nested"),
    ("SELECT * FROM demo GROUP BY a", "GROUP BY without a window .* line 1, column 20"),
    ("SELECT * FROM demo GROUP BY STATEWINDOW(a > 1) OVER (WHEN a)", "expected PARTITION.* column 54"),
    ("SELECT *\nFROM demo\n  GROUP BY TUMBLINGWINDOW(xx, 5)", "needs a time unit .* line 3, column 27"),
    ("SELECT * FROM demo GROUP BY HOPPINGWINDOW(ss, 10)", "HOPPINGWINDOW takes 2 sizes, got 1"),
    ("SELECT * FROM demo GROUP BY COUNTWINDOW(5, 6)", "interval must not exceed"),
    ("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, 5) OVER (WHEN a > 1)",
     "OVER .WHEN .... is for SLIDINGWINDOW"),
    ("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, 5) FILTER (a > 1)", "expected WHERE"),
    ("SELECT TUMBLINGWINDOW(ss, 5) FROM demo", "belongs in GROUP BY"),
    ("SELECT a FROM demo GROUP BY COUNTWINDOW(2) LIMIT x", "LIMIT needs an integer"),
    ("SELECT * FROM s1 LEFT JOIN s2 ON s1.a = s2.a", "JOIN .* column 18"),
    ("SELECT * FROM s1 INNER JOIN s2 ON s1.a = s2.a", "JOIN"),
    ("SELECT * FROM s1, s2", "a second stream"),
    ("SELECT * FROM demo ORDER BY a", "ORDER BY needs a GROUP BY window .* column 20"),
    ("SELECT * FROM demo WHERE a > 1 HAVING a > 2", "HAVING needs a GROUP BY window"),
    ("SELECT * FROM demo LIMIT 1", "LIMIT needs a GROUP BY window"),
    ("SELECT * EXCEPT(a) FROM demo", r"\* EXCEPT"),
    ("SELECT * REPLACE(a + 1 AS a) FROM demo", r"\* REPLACE"),
    ("SELECT children[0:1] FROM demo", "array slices .* column 16"),
    ("SELECT a FROM demo WHERE changed_cols('', true, a)", "select clause .* column 26"),
    ("SELECT no_such(a) FROM demo", "function no_such not found"),
    ("SELECT a & 1 FROM demo", "bitwise operator '&'"),
    ("SELECT a + 1 AS b, b * 2 AS c FROM demo", "'b' is an earlier select alias.* column 20"),
    ("SELECT a FROM demo WHERE", "expected an expression, got the end"),
    ("SELECT FROM demo", "expected an expression, got 'FROM'"),
    ("SELECT a demo", "expected FROM"),
    ("SELECT a FROM demo WHERE a = 'x", "unterminated string: expected a closing ' at line 1, column 30"),
    ("SELECT `a FROM demo", "unterminated quoted identifier: expected a closing '`' at line 1, column 8"),
    ("SELECT a FROM demo /* no end", "unterminated /\\* comment"),
    ("SELECT a FROM demo WHERE a = 1 b", "expected an operator or the end"),
    ("SELECT lower(a, b) FROM demo", r"lower: Expect 1 arguments but found 2\."),
    ("SELECT cast(a, 'date') FROM demo", r"cast: Expect one of following value for the 2nd parameter"),
    ("SELECT a[b] FROM demo", "an array index must be an integer literal"),
    ("SELECT * FROM demo WHERE a LIKE 1", "LIKE needs a string pattern"),
    ("DELETE FROM demo", "expected SELECT"),
    ("SELECT * FROM select", "expected a stream name"),
    ("SELECT a FROM demo WHERE ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a"
     + ")" * 70, "nested deeper than 64"),
])
def test_refused_constructs_are_named_with_their_position(sql: str, match: str) -> None:
    with pytest.raises(SQLError, match=match) as info:
        parse_query(sql)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ekws.EkwsError)


def test_reserved_words_as_names_need_backquotes() -> None:
    data = {"select": 1, "from": 2, "and": 1}
    assert run("SELECT `select`, `from` FROM `where` WHERE `and` = 1", data) == {"select": 1, "from": 2}
    assert run("SELECT `a-b`, `hello world`, `中文Chinese` FROM demo", {"a-b": 1}) == \
        {"a-b": 1, "hello world": None, "中文Chinese": None}


def test_comments_and_strings() -> None:
    assert run("SELECT /* the id */ a FROM demo /* multi\nline */", {"a": 1}) == {"a": 1}
    assert run('SELECT "it\'s" AS q, \'say "hi"\' AS r, "tab\\there" AS t FROM demo', {}) == \
        {"q": "it's", "r": 'say "hi"', "t": "tab\there"}


def test_non_string_sql_is_an_sql_error() -> None:
    with pytest.raises(SQLError, match="must be a string"):
        parse_query(42)  # type: ignore[arg-type]
    with pytest.raises(SQLError, match="longer than"):
        parse_query("SELECT a FROM demo WHERE " + "a = 1 OR " * 10000 + "a = 2")


# --------------------------------------------------------------------------- fuzzing

_VALID = [
    "SELECT * FROM demo",
    "SELECT temperature, humidity FROM demo WHERE temperature > 30",
    "SELECT a.b AS x, c->d, e[1], lower(s) FROM demo AS t WHERE t.a.b IN (1, 2) AND s LIKE 'x%' OR n IS NULL",
    "SELECT CASE WHEN a BETWEEN 1 AND 2 THEN 'in' ELSE concat(a, 'x') END AS c, meta(peer) FROM demo",
    "select `a b`, round(x, 2) from demo where not (x % 2 = 0) and y <> -1.5e2",
]
_TOKENS = ["SELECT", "FROM", "WHERE", "*", ",", "(", ")", "[", "]", "'", '"', "`", "AND", "OR", "NOT", "IN",
           "LIKE", "IS", "NULL", "CASE", "WHEN", "END", "GROUP BY", "->", ".", "1", "-", "/*", "count(",
           "meta(", "a", "demo", ":", "%", "=", "<>", "BETWEEN", ";", "\n", "\\", "é", "\x00"]

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abcsxyen"), children,
                                                                        max_size=3),
    max_leaves=8)
_RECORDS = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "n", "s", "x", "y", "t", "arr"]), _JSON,
                           max_size=6)


def _evaluate(text: str, record: dict[str, Any]) -> None:
    """Parse; on success run on a record: only SQLError, then only EvalError may escape."""
    try:
        query = parse_query(text)
    except SQLError:
        return
    msg = ekws.Message(record, PEER, 0)
    try:
        if query.matches(msg):
            query.project(msg)
    except EvalError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80), _RECORDS)
def test_random_text_only_raises_sql_error(text: str, record: dict[str, Any]) -> None:
    _evaluate(text, record)
    _evaluate("SELECT " + text, record)
    _evaluate("SELECT * FROM demo WHERE " + text, record)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_VALID),
       st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["insert", "delete", "token"]),
                          st.sampled_from(_TOKENS)), min_size=1, max_size=4),
       _RECORDS)
def test_mutated_sql_only_raises_sql_error(base: str, edits: list[tuple[int, str, str]],
                                           record: dict[str, Any]) -> None:
    text = base
    for position, kind, token in edits:
        at = position % (len(text) + 1)
        if kind == "delete":
            text = text[:at] + text[at + 1:]
        elif kind == "insert":
            text = text[:at] + token[0] + text[at:]
        else:
            text = text[:at] + f" {token} " + text[at:]
    _evaluate(text, record)


@settings(max_examples=200, deadline=None)
@given(_RECORDS)
def test_valid_queries_run_on_any_record(record: dict[str, Any]) -> None:
    for text in _VALID:
        _evaluate(text, record)
