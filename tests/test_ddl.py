"""CREATE STREAM parsing: seed statements, types, options, errors and fuzzing."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekws.ddl import StreamDef, parse_stream
from ekws.errors import DDLError, EkwsError
from ekws.schema import NO_DEFAULT, Field, FieldType

SEED = pathlib.Path("/work/shared/seed/ekuiper-websocket-source.txt")


def _seed_statements() -> list[str]:
    """Every statement in the seed page, as written (text from CREATE STREAM on)."""
    if not SEED.exists():  # pragma: no cover - the seed ships with the workspace
        return []
    lines = SEED.read_text(encoding="utf-8").splitlines()
    return [line[line.index("CREATE STREAM") :] for line in lines if "CREATE STREAM" in line]


def test_seed_has_its_five_statements() -> None:
    if not SEED.exists():
        pytest.skip("seed file not present")
    assert len(_seed_statements()) == 5


@pytest.mark.parametrize("sql", _seed_statements())
def test_every_seed_statement_parses(sql: str) -> None:
    stream = parse_stream(sql)
    assert stream.type == "websocket"
    assert stream.schemaless
    assert stream.sql == sql
    assert stream.format == "json"


SEED_EXPECTED = [
    (
        """CREATE STREAM demo'() with(CONF_KEY="default", datasource="/api/data", type="websocket")'""",
        StreamDef(name="demo", datasource="/api/data", conf_key="default"),
    ),
    (
        'CREATE STREAM websocketDemo() WITH (FORMAT="json", TYPE="websocket")',
        StreamDef(name="websocketDemo"),
    ),
    (
        'CREATE STREAM websocketDemo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")',
        StreamDef(name="websocketDemo", datasource="/api/data"),
    ),
    (
        """CREATE STREAM demo'() with(format="json", datasource="/api/data", type="websocket")'""",
        StreamDef(name="demo", datasource="/api/data"),
    ),
    # DESIGN.md
    (
        'CREATE STREAM demo() with(CONF_KEY="default", datasource="/api/data", type="websocket")',
        StreamDef(name="demo", datasource="/api/data", conf_key="default"),
    ),
    (
        'CREATE STREAM demo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")',
        StreamDef(name="demo", datasource="/api/data"),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SEED_EXPECTED)
def test_seed_and_design_statements_parse_to(sql: str, expected: StreamDef) -> None:
    stream = parse_stream(sql)
    assert stream == StreamDef(**{**expected.__dict__, "sql": sql})


def test_cli_quote_form_equals_shell_unquoted_form() -> None:
    quoted = parse_stream("""CREATE STREAM demo'() with(CONF_KEY="default", datasource="/api/data")'""")
    plain = parse_stream("""CREATE STREAM demo() with(CONF_KEY="default", datasource="/api/data")""")
    assert quoted.sql != plain.sql
    assert {**quoted.__dict__, "sql": ""} == {**plain.__dict__, "sql": ""}


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE STREAM demo '() WITH (DATASOURCE=\"/a\")'",
        "CREATE STREAM demo'() WITH (DATASOURCE=\"/a\")' ;",
        "CREATE STREAM demo'() WITH (DATASOURCE=\"/a\");'",
        "CREATE STREAM demo'() WITH (DATASOURCE='/a')'",  # inner single quotes still lex
        "CREATE STREAM demo'(a BIGINT) WITH (DATASOURCE=\"/a\")'\n",
    ],
)
def test_quote_form_variants(sql: str) -> None:
    stream = parse_stream(sql)
    assert (stream.name, stream.datasource) == ("demo", "/a")


def test_quote_form_without_closing_quote_is_an_error() -> None:
    with pytest.raises(DDLError, match=r"expected a closing ' at line 1, column 19"):
        parse_stream('CREATE STREAM demo\'() with(datasource="/a")')


def test_keywords_and_options_are_case_insensitive() -> None:
    stream = parse_stream(
        'cReAtE sTrEaM s (a bigint) wItH (dAtAsOuRcE="/x", FoRmAt="JSON", tYpE="WebSocket", '
        'shared="TRUE", Strict_Validation="True", conf_key="Remote", timestamp="a", '
        'timestamp_format="YYYY")'
    )
    assert stream.format == "json"
    assert stream.type == "websocket"
    assert stream.shared and stream.strict_validation
    assert stream.conf_key == "Remote"
    assert (stream.timestamp, stream.timestamp_format) == ("a", "YYYY")


def test_defaults_without_with_clause() -> None:
    stream = parse_stream("CREATE STREAM s ()")
    assert stream == StreamDef(name="s", sql="CREATE STREAM s ()")
    assert stream.schemaless
    assert parse_stream("CREATE STREAM s () WITH ();").datasource == "/"


def test_all_field_types_nested() -> None:
    sql = """CREATE STREAM s (
        id BIGINT, t FLOAT, name STRING, at DATETIME, ok BOOLEAN, raw BYTEA,
        tags ARRAY(STRING),
        pos STRUCT(x FLOAT, y FLOAT, meta STRUCT(grid ARRAY(ARRAY(BIGINT)))),
        `weird name` string, "quoted" BIGINT
    ) WITH (DATASOURCE="/s")"""
    stream = parse_stream(sql)
    assert not stream.schemaless
    by_name = {f.name: f.type for f in stream.fields}
    assert list(by_name) == ["id", "t", "name", "at", "ok", "raw", "tags", "pos", "weird name", "quoted"]
    assert by_name["tags"] == FieldType("array", element=FieldType("string"))
    assert str(by_name["pos"]) == "STRUCT(x FLOAT, y FLOAT, meta STRUCT(grid ARRAY(ARRAY(BIGINT))))"
    assert all(f.default is NO_DEFAULT and not f.has_default for f in stream.fields)


@pytest.mark.parametrize(
    ("decl", "default"),
    [
        ("a BIGINT DEFAULT 5", 5),
        ("a BIGINT DEFAULT -5", -5),
        ("a BIGINT DEFAULT '7'", 7),
        ("a FLOAT DEFAULT 1.5e2", 150.0),
        ("a FLOAT DEFAULT 2", 2.0),
        ('a STRING DEFAULT "x\\ty"', "x\ty"),
        ("a STRING DEFAULT 'it\\'s'", "it's"),
        ("a BOOLEAN DEFAULT TRUE", True),
        ("a BOOLEAN DEFAULT false", False),
        ("a BYTEA DEFAULT 'aGk='", b"hi"),
        ("a DATETIME DEFAULT '2024-01-02T03:04:05Z'", "2024-01-02T03:04:05Z"),
        ("a DATETIME DEFAULT 1700000000000", 1700000000000),
    ],
)
def test_default_literals(decl: str, default: object) -> None:
    field = parse_stream(f"CREATE STREAM s ({decl})").fields[0]
    assert field.has_default
    assert field.default == default
    assert type(field.default) is type(default)


def test_nested_struct_field_default() -> None:
    field = parse_stream("CREATE STREAM s (p STRUCT(x FLOAT DEFAULT 0))").fields[0]
    assert field.type.fields == (Field("x", FieldType("float"), 0.0),)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE STREAM demo( with(a='b')", "unexpected '(': expected a field type"),
        (
            "CREATE STREAM demo(a BIGINT",
            "unexpected end of statement: expected ',' or ')' at line 1, column 28",
        ),
        ("CREATE STREAM demo(a BIGINT DEFAULT 'x')", "invalid DEFAULT: field 'a': expected BIGINT"),
        ("CREATE STREAM demo(a BIGINT DEFAULT 1.5)", "expected BIGINT, got number 1.5"),
        ("CREATE STREAM demo(a ARRAY(BIGINT) DEFAULT 1)", "expected ARRAY(BIGINT)"),
        ("CREATE STREAM demo(a BIGINT DEFAULT x)", "expected a literal"),
        ("CREATE STREAM demo(a BIGINT, a FLOAT)", "duplicate field 'a' at line 1, column 30"),
        ("CREATE STREAM demo(p STRUCT())", "expected a field name"),
        ("CREATE STREAM demo(a INT)", "unexpected 'INT': expected a field type"),
        ("CREATE STREAM demo(a BIGINT,,)", "unexpected ',': expected a field name"),
        ("CREATE TABLE demo()", "unexpected 'TABLE': expected 'STREAM' at line 1, column 8"),
        ("DROP STREAM demo", "expected 'CREATE' at line 1, column 1"),
        ("", "unexpected end of statement: expected 'CREATE' at line 1, column 1"),
        ("CREATE STREAM () WITH ()", "expected a stream name"),
        ('CREATE STREAM demo() WITH (FOO="x")', "unknown option 'FOO'"),
        ('CREATE STREAM demo() WITH (KIND="x")', "unknown option 'KIND': expected one of DATASOURCE"),
        ('CREATE STREAM demo() WITH (TYPE="mqtt")', 'invalid TYPE "mqtt"'),
        (
            'CREATE STREAM demo() WITH (FORMAT="xml")',
            "expected json, binary or delimited at line 1, column 35",
        ),
        ('CREATE STREAM demo() WITH (DATASOURCE="api")', "expected a path starting with '/'"),
        ('CREATE STREAM demo() WITH (SHARED="yes")', 'expected "true" or "false"'),
        ('CREATE STREAM demo() WITH (STRICT_VALIDATION="1")', 'expected "true" or "false"'),
        ('CREATE STREAM demo() WITH (DELIMITER="")', "expected a non-empty string"),
        ('CREATE STREAM demo() WITH (DATASOURCE="/a", datasource="/b")', "duplicate option 'datasource'"),
        ("CREATE STREAM demo() WITH (DATASOURCE=/a)", "unexpected character '/'"),
        ("CREATE STREAM demo() WITH (SHARED=true)", "expected a quoted string for SHARED"),
        ('CREATE STREAM demo() WITH (DATASOURCE="/a" FORMAT="json")', "expected ',' or ')'"),
        ('CREATE STREAM demo() WITH (DATASOURCE "/a")', "unexpected string \"/a\": expected '='"),
        ('CREATE STREAM demo() WITH (DATASOURCE="/a") extra', "expected end of statement"),
        ('CREATE STREAM demo() WITH (DATASOURCE="/a);', 'unterminated string: expected a closing "'),
        ('CREATE STREAM demo() WITH (DATASOURCE="/a\\q")', "invalid escape sequence \\q"),
        ("CREATE STREAM `demo() ", "unterminated quoted identifier"),
        ("CREATE STREAM `` ()", "empty quoted identifier"),
        ("CREATE STREAM demo(a BIGINT DEFAULT 12ab)", "invalid number '12a'"),
        ("CREATE STREAM demo(a STRING) WITH (FORMAT='binary')", "exactly one BYTEA field"),
        ("CREATE STREAM demo(a BYTEA, b BYTEA) WITH (FORMAT='binary')", "exactly one BYTEA field"),
        ("CREATE STREAM demo(a BIGINT) WITH (TIMESTAMP='b')", "TIMESTAMP names no declared field: 'b'"),
        (
            "CREATE STREAM demo(a BOOLEAN) WITH (TIMESTAMP='a')",
            "TIMESTAMP field 'a' is BOOLEAN: expected BIGINT, FLOAT, DATETIME or STRING at line 1, column 47",
        ),
        (
            "CREATE STREAM demo() WITH (TIMESTAMP='t', TIMESTAMP_FORMAT='YYY-MM-dd')",
            "invalid TIMESTAMP_FORMAT 'YYY-MM-dd': 'YYY' is not a valid field: use YY or YYYY "
            "at line 1, column 60",
        ),
        (
            "CREATE STREAM demo() WITH (TIMESTAMP='t', TIMESTAMP_FORMAT='YYYY-MM-dd HH:mm z')",
            "zone names (z) are ambiguous",
        ),
        (
            "CREATE STREAM demo() WITH (TIMESTAMP_FORMAT='YYYY-MM-dd', FORMAT='json')",
            "TIMESTAMP_FORMAT without TIMESTAMP",
        ),
        ("CREATE STREAM demo(a BIGINT DEFAULT " + "9" * 5000 + ")", "number literal too long"),
    ],
)
def test_errors_name_what_was_expected_and_where(sql: str, message: str) -> None:
    with pytest.raises(DDLError, match=r"at line \d+, column \d+$") as info:
        parse_stream(sql)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.line >= 1 and info.value.column >= 1


def test_error_position_is_one_based_line_and_column() -> None:
    sql = 'CREATE STREAM demo (\n  id BIGINT,\n  name STRNG\n) WITH (DATASOURCE="/a")'
    with pytest.raises(DDLError) as info:
        parse_stream(sql)
    assert (info.value.line, info.value.column) == (3, 8)
    assert str(info.value).endswith("at line 3, column 8")
    assert "'STRNG'" in str(info.value)


def test_expected_paren_example_from_the_contract() -> None:
    with pytest.raises(DDLError) as info:
        parse_stream('CREATE STREAM demo() WITH (A="b"')
    # the unknown option is reported first, at its name
    assert (info.value.line, info.value.column) == (1, 28)
    with pytest.raises(DDLError, match=r"expected ',' or '\)' at line 1, column 46$"):
        parse_stream('CREATE STREAM demo() WITH (DATASOURCE="/a"   ')
    with pytest.raises(DDLError, match=r"^unexpected ',': expected '\)' at line 1, column 31$"):
        parse_stream("CREATE STREAM d(a ARRAY(BIGINT,x))")


def test_nesting_is_bounded() -> None:
    deep = "ARRAY(" * 40 + "BIGINT" + ")" * 40
    with pytest.raises(DDLError, match="nested deeper"):
        parse_stream(f"CREATE STREAM s (a {deep})")
    ok = "ARRAY(" * 10 + "BIGINT" + ")" * 10
    assert parse_stream(f"CREATE STREAM s (a {ok})").fields[0].type.kind == "array"


def test_option_values_take_both_quotes_and_escapes() -> None:
    stream = parse_stream(
        "CREATE STREAM s () WITH (DATASOURCE='/api/data?x=1&y=\\'2\\'', "
        "FORMAT=\"delimited\", DELIMITER='\\t')"
    )
    assert stream.datasource == "/api/data?x=1&y='2'"
    assert (stream.format, stream.delimiter) == ("delimited", "\t")


def test_binary_with_one_bytea_field() -> None:
    stream = parse_stream("CREATE STREAM s (img BYTEA) WITH (FORMAT='BINARY')")
    assert stream.format == "binary"
    assert stream.fields[0].name == "img"


def test_describe_is_ekuiper_like_and_json_serialisable() -> None:
    sql = (
        'CREATE STREAM s (id BIGINT, raw BYTEA DEFAULT "aGk=", tags ARRAY(STRING), p STRUCT(x FLOAT)) '
        'WITH (DATASOURCE="/d", CONF_KEY="remote", SHARED="true", FORMAT="delimited", DELIMITER=";")'
    )
    description = parse_stream(sql).describe()
    json.dumps(description)
    assert description == {
        "Name": "s",
        "StreamFields": [
            {"Name": "id", "FieldType": "bigint"},
            {"Name": "raw", "FieldType": "bytea", "Default": "aGk="},
            {"Name": "tags", "FieldType": {"Type": "array", "ElementType": "string"}},
            {"Name": "p", "FieldType": {"Type": "struct", "Fields": [{"Name": "x", "FieldType": "float"}]}},
        ],
        "Options": {
            "datasource": "/d",
            "format": "delimited",
            "type": "websocket",
            "delimiter": ";",
            "confKey": "remote",
            "shared": True,
        },
        "Statement": sql,
    }
    assert parse_stream("CREATE STREAM s ()").describe()["StreamFields"] is None


def test_streamdef_is_frozen_and_hashable() -> None:
    stream = parse_stream("CREATE STREAM s (a BIGINT DEFAULT 1)")
    with pytest.raises(AttributeError):
        stream.name = "t"  # type: ignore[misc]
    assert hash(stream) == hash(parse_stream("CREATE STREAM s (a BIGINT DEFAULT 1)"))


# -- fuzzing: parse_stream raises DDLError or nothing, whatever the input ----

VALID = [sql for sql, _ in SEED_EXPECTED] + [
    "CREATE STREAM s (id BIGINT DEFAULT 1, p STRUCT(x FLOAT, t ARRAY(STRING)), `b` BYTEA) "
    'WITH (DATASOURCE=\'/a?b=1\', FORMAT="json", SHARED="true", TIMESTAMP="id");',
]


def _parse_or_ddl_error(sql: str) -> None:
    try:
        stream = parse_stream(sql)
    except DDLError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert isinstance(exc, EkwsError)
    else:
        assert isinstance(stream, StreamDef)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_ddl_error(sql: str) -> None:
    _parse_or_ddl_error(sql)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("CREATE STREAM ()`'\",;=-.0123456789eE\\ \nWITH")), max_size=99))
def test_grammar_alphabet_raises_only_ddl_error(sql: str) -> None:
    _parse_or_ddl_error("CREATE STREAM " + sql)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    sql = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(sql)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.one_of(st.sampled_from(list("()'\"`,;=\\ \n-.0e")), st.characters()))
        if op == "insert":
            sql = sql[:pos] + char + sql[pos:]
        elif op == "delete":
            sql = sql[:pos] + sql[pos + 1 :]
        else:
            sql = sql[:pos] + char + sql[pos + 1 :]
    return sql


@settings(max_examples=1000, deadline=None)
@given(_mutated())
def test_mutated_statements_raise_only_ddl_error(sql: str) -> None:
    _parse_or_ddl_error(sql)


def test_timestamp_options_in_any_order() -> None:
    stream = parse_stream(
        "CREATE STREAM s (t STRING) WITH (TIMESTAMP_FORMAT='YYYY-MM-dd HH:mm:ss', TIMESTAMP='t')"
    )
    assert (stream.timestamp, stream.timestamp_format) == ("t", "YYYY-MM-dd HH:mm:ss")
    assert parse_stream("CREATE STREAM s () WITH (TIMESTAMP='t', TIMESTAMP_FORMAT='')").timestamp_format == ""


def test_shared_false_is_accepted_with_a_logged_note(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.ddl")
    assert not parse_stream('CREATE STREAM s () WITH (SHARED="false")').shared
    notes = [r for r in caplog.records if "SHARED" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert "stream s" in notes[0].getMessage() and "shares one source" in notes[0].getMessage()
    caplog.clear()
    parse_stream('CREATE STREAM s () WITH (SHARED="true")')
    parse_stream("CREATE STREAM s ()")
    assert not [r for r in caplog.records if "SHARED" in r.getMessage()]


def test_ekuipers_key_version_schemaid_and_trailing_commas_are_accepted():
    # eKuiper internal/processor/stream_test.go: KEY and a trailing comma before ')'.
    stream = parse_stream('CREATE STREAM t (a BIGINT, b STRING,) WITH (DATASOURCE="/t", KEY="a", '
                          'VERSION="2", SCHEMAID="s.t",)')
    assert (stream.key, stream.version, stream.schemaid) == ("a", "2", "s.t")
    assert stream.describe()["Options"] == {"datasource": "/t", "format": "json", "type": "websocket",
                                            "key": "a", "version": "2", "schemaid": "s.t"}


def test_stream_names_follow_ekuipers_id_rule():
    # eKuiper internal/processor/stream_test.go: `invalid.topic` is refused (pkg/validate.ValidateID).
    with pytest.raises(DDLError, match="id 'invalid.topic' contains invalid characters"):
        parse_stream("CREATE STREAM `invalid.topic` ()")
    assert parse_stream("CREATE STREAM `a-b_1` ()").name == "a-b_1"
