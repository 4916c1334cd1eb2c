"""Array and object functions, ported from eKuiper's ``internal/binder/function/funcs_array_test.go``
(TestArrayCommonFunctions, TestArraySort, TestArrayFuncNil), ``funcs_obj_test.go``
(TestObjectFunctions, TestObjectPick) and the examples of ``array_functions.md``/``object_functions.md``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers.functions import call, value

from ekws.rules.sql import EvalError, SQLError


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("array_create", (1, "2", 3), [1, "2", 3]),
    ("array_create", (None, None), None),
    ("array_position", ([3, 2, 1], 1), 2), ("array_position", ([3, 2, 1], 4), -1),
    ("array_position", (None, 1), -1),
    ("length", ([1, 2, 3],), 3),
    ("element_at", ([1, 2, 3], 1), 2), ("element_at", ([1, 2, 3], -1), 3),
    ("element_at", ({"a": 1}, "a"), 1),
    ("array_contains", ([1, 2], 2), True), ("array_contains", ([1, 2], 3), False),
    ("array_contains", ([1, 2], True), False), ("array_contains", (None, 1), False),
    ("array_remove", ([3, 1, 2], 1), [3, 2]), ("array_remove", (["a", "b", "c"], "c"), ["a", "b"]),
    ("array_remove", ([1, 2, 3, 4, 3], 3), [1, 2, 4]), ("array_remove", ([3, 3, 3], 3), []),
    ("array_last_position", ([5, 2, 5], 5), 2), ("array_last_position", ([1], 5), -1),
    ("array_contains_any", ([1, 2], [3, 2]), True), ("array_contains_any", ([1, 2], [3]), False),
    ("array_intersect", ([1, 1, 2, 3], [1, 3, 4]), [1, 3]),
    ("array_union", ([1, 1, 2, 3], [1, 3, 4]), [1, 2, 3, 4]), ("array_union", (None, [1]), [1]),
    ("array_max", ([1, 4, None, 3],), 4), ("array_min", ([1, 4, None, 3],), 1),
    ("array_max", (["a", "c"],), "c"),
    ("array_except", ([1, 2, 3], [3, 4]), [1, 2]), ("array_except", ([1, 1, 2], None), [1, 2]),
    ("repeat", ("a", 3), ["a", "a", "a"]),
    ("sequence", (1, 5), [1, 2, 3, 4, 5]), ("sequence", (5, 1), [5, 4, 3, 2, 1]),
    ("sequence", (1, 10, 3), [1, 4, 7, 10]),
    ("array_cardinality", ([1, 2, 3],), 3), ("array_cardinality", (None,), 0),
    ("cardinality", ([1, 2],), 2), ("cardinality", ("ab",), 0),
    ("array_flatten", ([[1, 2], [3], 4],), [1, 2, 3, 4]),
    ("array_distinct", ([1, 2, 1, "1", True],), [1, 2, "1", True]),
    ("array_join", (["a", None, "b"], ","), "a,b"), ("array_join", (["a", None, "b"], ",", "x"), "a,x,b"),
    ("array_join", ([1, 2.5, True], "-"), "1-2.5-true"),
    ("array_sort", ([3, 2, "b", "a"],), [2, 3, "a", "b"]),  # array_functions.md
    ("array_concat", ([1], None, [2, 3]), [1, 2, 3]),
    ("kvpair_array_to_obj", ([{"key": "a", "value": 1}, {"key": "b", "value": 2}],), {"a": 1, "b": 2}),
    # objects (funcs_obj_test.go)
    ("keys", ({"a": 1, "b": 2},), ["a", "b"]), ("values", ({"a": 1, "b": 2},), [1, 2]),
    ("object", (["a", "b"], [1, 2]), {"a": 1, "b": 2}),
    ("zip", ([["a", 1], ["b", 2]],), {"a": 1, "b": 2}),
    ("items", ({"a": 1},), [["a", 1]]),
    ("object_concat", ({"a": 1}, {"b": 2}, None), {"a": 1, "b": 2}),
    ("erase", ({"a": 1, "b": 2, "c": 3}, "a"), {"b": 2, "c": 3}),
    ("erase", ({"a": 1, "b": 2, "c": 3}, ["a", "b"]), {"c": 3}),
    ("object_size", ({"a": 1, "b": 2},), 2),
    ("object_pick", ({"a": 1, "b": 2, "c": 3}, "a", "c"), {"a": 1, "c": 3}),
    ("object_pick", ({"a": 1, "b": 2}, ["a", "x"]), {"a": 1}),
    ("obj_to_kvpair_array", ({"b": 2, "a": 1},), [{"key": "a", "value": 1}, {"key": "b", "value": 2}]),
    # a null value is kept, as eKuiper's code does (funcs_obj_test.go TestToMap);
    # its reference page says the pair is left out
    ("object_construct", ("a", 1, "b", None), {"a": 1, "b": None}),
])
def test_array_and_object_functions(name: str, args: tuple[Any, ...], expected: Any) -> None:
    assert call(name, *args) == expected


def test_a_function_never_changes_its_argument() -> None:
    data = {"a0": [3, 1, 2], "a1": 1}
    assert value("array_remove(a0, a1)", data) == [3, 2]
    assert data["a0"] == [3, 1, 2]


def test_shuffle_keeps_the_elements() -> None:
    assert sorted(call("array_shuffle", list(range(20)))) == list(range(20))


@pytest.mark.parametrize(("name", "args", "error"), [
    ("array_position", (1, 2), "first argument should be array of interface{}"),
    ("element_at", (1, 2), "first argument should be []interface{} or map[string]interface{}"),
    ("element_at", ([1, 2, 3], 4), "index out of range"),
    ("element_at", ([1, 2, 3], -4), "index out of range"),
    ("array_contains", (1, 2), "first argument should be array of interface{}"),
    ("array_contains_any", ([1], 2), "second argument should be array of interface{}"),
    ("sequence", (1, 5, 0), "invalid step: should not be zero"),
    ("repeat", ("a", "3"), "second argument should be int"),
    ("repeat", ("a", 10 ** 9), "at most"),
    ("object", (["a"], [1, 2]), "the length of the arguments should be same"),
    ("kvpair_array_to_obj", ([{"k": 1}],), "array item should be key-value pair"),
])
def test_errors_fail_the_record(name: str, args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(EvalError, match=re.escape(error)):
        call(name, *args)


def test_a_null_array_is_null_where_eKuiper_checks_nulls() -> None:
    """TestArrayFuncNil: the functions with returnNilIfHasAnyNil answer null."""
    for name in ("element_at", "array_intersect", "array_max", "array_min", "array_flatten", "array_distinct",
                 "array_sort", "keys", "values"):
        args = (None, None) if name in ("element_at", "array_intersect") else (None,)
        assert call(name, *args) is None, name
    assert call("object_size", None) == 0  # no null check in funcs_obj.go: its exec answers 0


def test_refused_at_rule_creation() -> None:
    with pytest.raises(SQLError, match=re.escape("sequence: At least has 2 argument but found 1.")):
        value("sequence(1)")
    with pytest.raises(SQLError, match="object_construct: the args must be key value pairs"):
        value("object_construct('a')")
