"""eKuiper's analytic function tests, call by call: ``internal/binder/function/funcs_analytic_test.go``
(each sequence names its Go test) and ``funcs_acc_test.go``.

eKuiper's planner appends two arguments to every analytic call: whether its ``WHEN`` holds
and the partition key. The sequences keep that shape (``(*args, when, key)``), and each row
is one record through the same :class:`~ekws.rules.functions.analytic.Analytic` a rule builds
(partitioned by the key, ``WHEN`` the flag). eKuiper's tests vary the argument count
between calls; a rule's is fixed, so the driver sets the call's arguments per row.
One text differs on purpose: eKuiper's lag says "The fourth arg is not a bool but got"
followed by the *first* argument; ekws shows the fourth.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import pytest

from ekws.rules.expr import EvalError
from ekws.rules.functions import analytic


class Error(NamedTuple):
    text: Optional[str]


SEQUENCES: list[tuple[str, str, list[tuple[tuple[Any, ...], Any]]]] = [
    ('TestChangedColExec', 'changed_col', [
        ((True, 'bar', True, 'self'), 'bar'),
        ((True, 'bar', True, 'self'), None),
        ((True, 'baz', True, 'self'), 'baz'),
        ((False, None, True, 'self'), None),
        ((False, 'baz', True, 'self'), 'baz'),
        ((True, 'foo', True, 'self'), 'foo'),
    ]),
    ('TestChangedColPartition', 'changed_col', [
        ((True, 'bar', True, '2'), 'bar'),
        ((True, 'bar', True, '1'), 'bar'),
        ((True, 'baz', True, '2'), 'baz'),
        ((False, None, True, '1'), None),
        ((False, 'baz', True, '2'), None),
        ((True, 'foo', True, '1'), 'foo'),
    ]),
    ('TestChangedColPartitionWithWhen', 'changed_col', [
        ((True, 'bar', True, '2'), 'bar'),
        ((True, 'bar', True, '1'), 'bar'),
        ((True, 'baz', True, '2'), 'baz'),
        ((True, 'bar', False, '2'), None),
        ((False, None, True, '1'), None),
        ((False, 'baz', True, '2'), None),
        ((True, 'foo', True, '1'), 'foo'),
        ((True, 'bar', False, '1'), None),
    ]),
    ('TestHadChangedExec', 'had_changed', [
        (('foo', 'bar', 'baz', True, 'self'), Error('first arg is not a bool but got foo')),
        (('foo', 'bar', True, 'self'), Error('first arg is not a bool but got foo')),
        ((True, 'bar', 20, True, 'self'), True),
        ((True, 'baz', 44, True, 'self'), True),
        ((True, 'baz', 44, True, 'self'), False),
        ((True, 'foo', 44, True, 'self'), True),
        ((True, 'foo', None, True, 'self'), False),
        ((True, 'foo', 44, True, 'self'), False),
        ((True, 'baz', 44, True, 'self'), True),
    ]),
    ('TestHadChangedExecAllowNull', 'had_changed', [
        (('foo', 'bar', 'baz', True, 'self'), Error('first arg is not a bool but got foo')),
        (('foo', 'bar', True, 'self'), Error('first arg is not a bool but got foo')),
        ((False, 'bar', 20, True, 'self'), True),
        ((False, 'baz', None, True, 'self'), True),
        ((False, 'baz', 44, True, 'self'), True),
        ((False, None, 44, True, 'self'), True),
        ((False, 'baz', 44, True, 'self'), True),
        ((False, 'baz', 44, True, 'self'), False),
        ((False, None, None, True, 'self'), True),
        ((False, 'baz', 44, True, 'self'), True),
    ]),
    ('TestHadChangedPartition', 'had_changed', [
        (('foo', 'bar', 'baz', True, '1'), Error('first arg is not a bool but got foo')),
        (('foo', 'bar', True, '1'), Error('first arg is not a bool but got foo')),
        ((True, 'bar', 20, True, '3'), True),
        ((True, 'baz', 44, True, '2'), True),
        ((True, 'baz', 44, True, '2'), False),
        ((True, 'foo', 44, True, '3'), True),
        ((True, 'foo', None, True, '1'), True),
        ((True, 'foo', 44, True, '2'), True),
        ((True, 'baz', 44, True, '3'), True),
    ]),
    ('TestHadChangedPartitionWithWhen', 'had_changed', [
        (('foo', 'bar', 'baz', True, '1'), Error('first arg is not a bool but got foo')),
        (('foo', 'bar', True, '1'), Error('first arg is not a bool but got foo')),
        ((True, 'bar', 20, True, '3'), True),
        ((True, 'baz', 44, True, '2'), True),
        ((True, 'baz', 44, True, '2'), False),
        ((True, 'baz', 44, True, '2'), False),
        ((True, 'foo', 45, False, '2'), False),
        ((True, 'foo', None, True, '1'), True),
        ((True, 'foo', 44, True, '2'), True),
        ((True, 'baz', 44, False, '3'), False),
    ]),
    ('TestLagExec', 'lag', [
        (('foo', 1, 'default', True, True, 'self'), 'default'),
        ((None, 1, 'default', True, True, 'self'), 'foo'),
        (('bar', 1, 'default', True, True, 'self'), 'foo'),
        (('foo', 1, 'default', True, True, 'self'), 'bar'),
        (('foo', 1, 'default', True, True, 'self'), 'foo'),
        (('foo', 1, 'default', 23, True, 'self'), Error('The fourth arg is not a bool but got 23')),
    ]),
    ('TestLagPartition', 'lag', [
        (('foo', True, '1'), None),
        (('bar', True, '1'), 'foo'),
        (('bar', True, '2'), None),
        (('foo', True, '1'), 'bar'),
        (('foo', True, '2'), 'bar'),
    ]),
    ('TestLagExecWithWhen', 'lag', [
        (('foo', True, 'self'), None),
        (('bar', False, 'self'), 'foo'),
        (('bar', True, 'self'), 'foo'),
        (('foo', False, 'self'), 'bar'),
        (('foo', True, 'self'), 'bar'),
    ]),
    ('TestLagPartitionWithWhen', 'lag', [
        (('foo', True, '1'), None),
        (('bar', False, '1'), 'foo'),
        (('bar', True, '2'), None),
        (('foo', True, '1'), 'foo'),
        (('foo', True, '2'), 'bar'),
    ]),
    ('TestLagExecIndexWithDefaultValue', 'lag', [
        (('bar', 2, 'no result', True, 'self'), 'no result'),
        (('bar', 2, 'no result', True, 'self'), 'no result'),
        (('foo', 2, 'no result', True, 'self'), 'bar'),
        (('foo', 2, 'no result', True, 'self'), 'bar'),
        (('foo', 2, 'no result', True, 'self'), 'foo'),
    ]),
    ('TestLagExecIndex', 'lag', [
        (('bar', 2, True, 'self'), None),
        (('bar', 2, True, 'self'), None),
        (('foo', 2, True, 'self'), 'bar'),
        (('foo', 2, True, 'self'), 'bar'),
        (('foo', 2, True, 'self'), 'foo'),
    ]),
    ('TestLatestExec', 'latest', [
        ((None, True, 'self'), None),
        (('foo', True, 'self'), 'foo'),
        ((None, True, 'self'), 'foo'),
        (('bar', True, 'self'), 'bar'),
        ((None, True, 'self'), 'bar'),
        (('foo', True, 'self'), 'foo'),
    ]),
    ('TestLatestExecWithWhen', 'latest', [
        (('foo', True, 'self'), 'foo'),
        ((None, True, 'self'), 'foo'),
        (('bar', False, 'self'), 'foo'),
        ((None, True, 'self'), 'foo'),
        (('foo', True, 'self'), 'foo'),
    ]),
    ('TestLatestPartition', 'latest', [
        (('foo', True, '2'), 'foo'),
        ((None, 'dd', True, '1'), 'dd'),
        (('bar', True, '1'), 'bar'),
        ((None, True, '2'), 'foo'),
        (('foo', True, '1'), 'foo'),
    ]),
]


@pytest.mark.parametrize(("test", "name", "calls"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_funcs_analytic_test_go(test: str, name: str, calls: list[tuple[tuple[Any, ...], Any]]) -> None:
    node = analytic.Analytic(name, [], [lambda d, m: d["key"]], lambda d, m: d["when"])
    for args, expected in calls:
        *values, when, key = args
        node._args = tuple((lambda d, m, i=i: d["args"][i]) for i in range(len(values)))
        record = {"args": values, "when": when, "key": key}
        if isinstance(expected, Error):
            with pytest.raises(EvalError, match=expected.text):
                node.update(record, None)
            continue
        node.update(record, None)
        assert node.value == expected and type(node.value) is type(expected), args


# funcs_acc_test.go TestAccumulateAggCond: (value, onBegin, onReset) per record.
COND = [(1, False, False), (1, True, False), (1, False, False), (1, False, True), (1, False, False)]


@pytest.mark.parametrize(("name", "values", "results"), [
    ("acc_avg", [1, 1, 1, 1, 1], [0.0, 1.0, 1.0, 1.0, 0.0]),
    ("acc_min", [1, 5, 4, 3, 2], [0.0, 5.0, 4.0, 3.0, 0.0]),
    ("acc_sum", [1, 1, 1, 1, 1], [0.0, 1.0, 2.0, 3.0, 0.0]),
    ("acc_count", [1, 1, 1, 1, 1], [0, 1, 2, 3, 0]),
])
def test_acc_with_begin_and_reset_conditions(name: str, values: list[Any], results: list[Any]) -> None:
    node = analytic.make(name, [lambda d, m: d["v"], lambda d, m: d["b"], lambda d, m: d["r"]],
                         [analytic.Arg(analytic.NOT_CONST)] * 3, [], None)
    got = []
    for value, (_, begin, reset) in zip(values, COND):
        node.update({"v": value, "b": begin, "r": reset}, None)
        got.append(node.value)
    assert got == results and [type(g) for g in got] == [type(r) for r in results]


@pytest.mark.parametrize(("name", "values", "results"), [
    # TestAccumulateAgg: a string fails the call (acc_count counts it), numbers accumulate
    ("acc_count", ["1", 1.0, 1, 1], [1, 2, 3, 4]),
    ("acc_avg", ["1", 1.0, 1.0, 1], [Error("the value should be number"), 1.0, 1.0, 1.0]),
    ("acc_max", ["1", 1.0, 2.0, 5], [Error("the value should be number"), 1.0, 2.0, 5.0]),
    ("acc_min", ["1", 5.0, 4.0, 1], [Error("the value should be number"), 5.0, 4.0, 1.0]),
    ("acc_sum", ["1", 1.0, 1.0, 1], [Error("the value should be number"), 1.0, 2.0, 3.0]),
    # a null: passed over by acc_sum and acc_count, an error for the others (no nil case in Go)
    ("acc_sum", [None, 2], [0.0, 2.0]),
    ("acc_count", [None, 2], [0, 1]),
    ("acc_max", [None, 2], [Error("the value should be number"), 2.0]),
])
def test_acc_values(name: str, values: list[Any], results: list[Any]) -> None:
    node = analytic.make(name, [lambda d, m: d["v"]], [analytic.Arg(analytic.NOT_CONST)], [], None)
    for value, expected in zip(values, results):
        if isinstance(expected, Error):
            with pytest.raises(EvalError, match=expected.text):
                node.update({"v": value}, None)
            continue
        node.update({"v": value}, None)
        assert node.value == expected and type(node.value) is type(expected)


@pytest.mark.parametrize("name", ["acc_sum", "acc_max", "acc_min", "acc_avg", "acc_count"])
def test_acc_before_any_valid_record(name: str) -> None:
    """TestAccumulateAgg's tests2: a record the WHEN rejects leaves the empty answer, 0."""
    node = analytic.make(name, [lambda d, m: d["v"]], [analytic.Arg(analytic.NOT_CONST)], [],
                         lambda d, m: False)
    node.update({"v": 1}, None)
    assert node.value == 0 and type(node.value) is (int if name == "acc_count" else float)
