"""JSON path functions: the examples of eKuiper's ``docs/en_US/sqls/json_expr.md`` ("Json Path
functions") over its sample record, and the subset's refusals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import EvalError, SQLError

# json_expr.md's sample record.
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
    "followers": {
        "Group1": [{"first": "John", "last": "Shavor", "age": 22},
                   {"first": "Ken", "last": "Miller", "age": 33}],
        "Group2": [{"first": "Alice", "last": "Murphy", "age": 33}],
        "my.follower": "special",
    },
}


@pytest.mark.parametrize(("fn", "path", "expected"), [
    ("json_path_query", "$.age", 37),
    ("json_path_query", "$.friends[0]", SAMPLE["friends"][0]),  # type: ignore[index]
    ("json_path_query", "$.friends[0][last]", "Murphy"),
    ("json_path_query", "$.friends[? @.age>60].first", ["Roger"]),
    ("json_path_query", "$.friends[? (@.age>60)].first", ["Roger"]),
    ("json_path_query", "$['fav.movie']", "Deer Hunter"),
    ("json_path_query", "$.followers.Group1[*].last", ["Shavor", "Miller"]),
    ("json_path_exists", "$.followers.Group1[? @.age>30]", True),
    ("json_path_query", "$.followers.Group1[? @.age>30].last", ["Miller"]),
    ("json_path_query", '$.followers["my.follower"]', "special"),
    ("json_path_query", "$..age", [37, 44, 68, 47, 22, 33, 33]),
    ("json_path_query", "$.children[-1]", "Jack"),
    ("json_path_query", "$.friends[? @.last == 'Murphy'].first", ["Dale", "Jane"]),
    ("json_path_query", "$.name.*", ["Tom", "Anderson"]),
    ("json_path_query", "$.nope", None),
    ("json_path_exists", "$.nope", False),
    ("json_path_exists", "$.age", True),
    ("json_path_query_first", "$.friends[*].first", "Dale"),
    ("json_path_query_first", "$.friends[? @.age>100]", None),
])
def test_json_path_examples(fn: str, path: str, expected: Any) -> None:
    assert call(fn, SAMPLE, path) == expected


def test_a_null_value_is_null_and_exists_is_false() -> None:
    assert call("json_path_query", None, "$.a") is None
    assert call("json_path_exists", None, "$.a") is False


@pytest.mark.parametrize("path", ["age", "$.a[1:2]", "$.a[?(@.x =~ /y/)]", "$.a[", "$ .a"])
def test_a_path_outside_the_subset_is_refused_at_rule_creation(path: str) -> None:
    with pytest.raises(SQLError, match="json_path_query: "):
        value(f"json_path_query(a, '{path}')")


def test_a_path_from_the_record_that_is_not_valid_fails_the_record() -> None:
    with pytest.raises(EvalError, match=re.escape("invalid jsonpath: a JSONPath starts with $")):
        call("json_path_query", SAMPLE, "age")
