"""The one SQL lexer (ekws.sqllex) that CREATE STREAM and rule SQL share, and ParseError.

Token cases follow eKuiper's internal/xsql/lexical_test.go where the dialects agree
(numbers, quoted names, both quotes, positions).
"""

from __future__ import annotations

import pytest

import ekws
from ekws import ddl, sqllex
from ekws.errors import DDLError, ParseError, SQLError
from ekws.rules import sql as rule_sql


def kinds(sql: str, dialect: sqllex.Dialect = sqllex.RULES) -> list[tuple[str, object]]:
    return [(t.kind, t.value) for t in sqllex.Lexer(sql, dialect, SQLError).tokens()]


def test_tokens_of_a_rule() -> None:
    assert kinds("SELECT `odd name`, a->b FROM demo WHERE x >= .5e1 /* note */ AND y <> 'it\\'s'") == [
        ("name", "SELECT"), ("quoted", "odd name"), ("op", ","), ("name", "a"), ("op", "->"),
        ("name", "b"), ("name", "FROM"), ("name", "demo"), ("name", "WHERE"), ("name", "x"), ("op", ">="),
        ("number", 5.0), ("name", "AND"), ("name", "y"), ("op", "<>"), ("string", "it's"), ("end", None)]


def test_names_keep_their_case_and_text_is_upper_cased_for_keywords() -> None:
    token = sqllex.Lexer("sElEcT", sqllex.RULES, SQLError).tokens()[0]
    assert (token.text, token.value) == ("SELECT", "sElEcT")


def test_line_and_column_are_one_based() -> None:
    lexer = sqllex.Lexer("a\n  b\n\nc", sqllex.DDL, DDLError)
    assert [lexer.position(t.pos) for t in lexer.tokens()] == [(1, 1), (2, 3), (4, 1), (4, 2)]


@pytest.mark.parametrize("dialect", [sqllex.DDL, sqllex.RULES])
@pytest.mark.parametrize(("sql", "message"), [
    ("a 'x", "unterminated string: expected a closing ' at line 1, column 3"),
    ('a "x\\', 'unterminated string: expected a closing " at line 1, column 3'),
    ("a `x", "unterminated quoted identifier: expected a closing '`' at line 1, column 3"),
    ("a ``", "empty quoted identifier at line 1, column 3"),
    ("a /* x", "unterminated /* comment at line 1, column 3"),
    ("a 12ab", "invalid number '12a' at line 1, column 3"),
    ("a " + "9" * 5000, "number literal too long at line 1, column 3"),
    ("a\n  #", "unexpected character '#' at line 2, column 3"),
])
def test_both_dialects_word_a_mistake_alike(dialect: sqllex.Dialect, sql: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        sqllex.Lexer(sql, dialect, ParseError).tokens()
    assert str(info.value) == message


def test_what_the_dialects_differ_in() -> None:
    # operators: CREATE STREAM needs only ( ) , ; =
    assert kinds("a-1", sqllex.RULES) == [("name", "a"), ("op", "-"), ("number", 1), ("end", None)]
    with pytest.raises(DDLError, match="unexpected character '/'"):
        sqllex.Lexer("x=/a", sqllex.DDL, DDLError).tokens()
    # signed numbers: DEFAULT -1 is one token in a CREATE STREAM
    assert kinds("-1.5", sqllex.DDL) == [("number", -1.5), ("end", None)]
    # escapes: LIKE keeps \% and \_ ; a CREATE STREAM refuses an unknown escape and knows \/
    assert kinds(r"'a\%\_'", sqllex.RULES)[0] == ("string", r"a\%\_")
    assert kinds(r"'a\/b'", sqllex.DDL)[0] == ("string", "a/b")
    with pytest.raises(DDLError, match=r"invalid escape sequence \\q in string at line 1, column 3"):
        sqllex.Lexer(r"'a\q'", sqllex.DDL, DDLError).tokens()


def test_scan_stops_at_end() -> None:
    lexer = sqllex.Lexer("a b c", sqllex.DDL, DDLError)
    token, pos = lexer.scan(0, 3)
    assert (token.value, pos) == ("a", 1)
    token, pos = lexer.scan(pos, 3)
    assert token.value == "b"
    assert lexer.scan(pos, 3)[0].kind == "end"


def test_one_parse_error_for_both_front_ends() -> None:
    assert issubclass(DDLError, ParseError) and issubclass(SQLError, ParseError)
    assert issubclass(ParseError, ValueError) and issubclass(ParseError, ekws.EkwsError)
    assert rule_sql.SQLError is SQLError and ekws.DDLError is DDLError  # the old names still work
    with pytest.raises(ParseError) as bad_ddl:
        ddl.parse_stream("CREATE STREAM demo(a BIGINT,\n  b NOPE)")
    assert (bad_ddl.value.line, bad_ddl.value.column, type(bad_ddl.value)) == (2, 5, DDLError)
    assert str(bad_ddl.value).endswith("at line 2, column 5")
    with pytest.raises(ParseError) as rule:
        rule_sql.parse_query("SELECT a\nFROM demo WHERE a = 'x")
    assert (rule.value.line, rule.value.column, type(rule.value)) == (2, 21, SQLError)
    assert rule.value.reason == "unterminated string: expected a closing '"


def test_comments_are_skipped_as_ekuipers_scanner_skips_them() -> None:
    # eKuiper internal/xsql/lexical.go: "--" to the end of the line and "/* ... */", in both statements
    assert kinds("a -- to the end\n, b /* and\n this */ c--") == [
        ("name", "a"), ("op", ","), ("name", "b"), ("name", "c"), ("end", None)]
    stream = ddl.parse_stream("-- the demo stream\nCREATE STREAM demo /* schemaless */ () "
                              'WITH (DATASOURCE="/a") -- done')
    assert (stream.name, stream.datasource) == ("demo", "/a")
    query = rule_sql.parse_query("SELECT a -- the field\nFROM demo /* WHERE a > 1 */")
    assert query.stream == "demo" and not query.has_where
