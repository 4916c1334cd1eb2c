"""Python functions of your own (``ekws.rules.function``), and how any function's failure is
handled by a running rule: the record skipped and counted, the rule running.

The rule tests are a device script's use: a Runtime, a RuleManager and a rule
over real WebSocket peers on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.functions import value
from helpers.server import Collector, wait_until, ws_connect

import ekws
import ekws.rules
from ekws.rules.functions import REGISTRY, FunctionError
from ekws.rules.manager import RuleManager
from ekws.rules.sql import SQLError

OUT = Collector()


def collect(msg: ekws.Message) -> None:
    OUT(msg)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    before = set(REGISTRY)
    OUT.messages.clear()
    yield
    for name in set(REGISTRY) - before:
        del REGISTRY[name]
    OUT.messages.clear()


def send(runtime: ekws.Runtime, *records: Any) -> None:
    address = runtime.server_address
    assert address is not None
    with ws_connect(f"ws://127.0.0.1:{address[1]}/api/data") as ws:
        for record in records:
            ws.send(json.dumps(record))


def test_a_decorated_function_is_callable_from_rule_sql_in_any_case() -> None:
    @ekws.rules.function("c_to_f")
    def c_to_f(celsius: Any) -> Any:
        return None if celsius is None else celsius * 9 / 5 + 32

    assert value("c_to_f(t)", {"t": 100}) == 212.0
    assert value("C_TO_F(t)", {}) is None  # the function decides what a null means
    assert value("round(c_to_f(t), 1)", {"t": 21.3}) == 70.3


def test_arity_comes_from_the_signature_and_is_checked_at_rule_creation() -> None:
    @ekws.rules.function("clamp")
    def clamp(x: Any, low: Any = 0, high: Any = 100) -> Any:
        return max(low, min(high, x))

    @ekws.rules.function("joined")
    def joined(sep: Any, *parts: Any) -> str:
        return sep.join(str(p) for p in parts)

    assert value("clamp(a)", {"a": 150}) == 100
    assert value("clamp(a, 10, 20)", {"a": 5}) == 10
    assert value("joined('-', 1, 2, 3)") == "1-2-3"
    with pytest.raises(SQLError, match=r"clamp: Expect 1 to 3 arguments but found 4\. at line 1"):
        value("clamp(1, 2, 3, 4)")
    with pytest.raises(SQLError, match=r"joined: At least has 1 argument but found 0\."):
        value("joined()")


def test_a_taken_or_built_in_name_is_refused() -> None:
    with pytest.raises(FunctionError, match="function upper is already registered"):
        ekws.rules.function("upper")(lambda s: s)

    @ekws.rules.function("twice")
    def twice(x: Any) -> Any:
        return x * 2
    ekws.rules.function("twice")(twice)  # the same function again (a module reloaded): fine
    with pytest.raises(FunctionError, match="already registered"):
        ekws.rules.function("twice")(lambda x: x)
    with pytest.raises(FunctionError, match="must be an identifier"):
        ekws.rules.function("not a name")


def test_a_device_script_rule_calls_a_custom_function(rules: RuleManager, runtime: ekws.Runtime) -> None:
    @ekws.rules.function("c_to_f")
    def c_to_f(celsius: Any) -> Any:
        return celsius * 9 / 5 + 32

    rules.create({"id": "temps", "sql": "SELECT c_to_f(t) AS f, upper(room) AS room, rule_id() AS r "
                                         "FROM demo WHERE c_to_f(t) > 50",
                  "actions": [{"python": {"callable": "test_functions_custom:collect"}}]})
    send(runtime, {"t": 0, "room": "a"}, {"t": 100, "room": "b"}, {"t": 20, "room": None})
    assert OUT.wait_for(2)
    # sendNilField false (eKuiper's default): the null room is left out.
    assert OUT.data == [{"f": 212.0, "room": "B", "r": "temps"}, {"f": 68.0, "r": "temps"}]


def test_a_function_raising_skips_the_record_counts_it_and_the_rule_runs_on(
        rules: RuleManager, runtime: ekws.Runtime) -> None:
    @ekws.rules.function("checked")
    def checked(x: Any) -> Any:
        if x < 0:
            raise ValueError(f"negative: {x}")
        return x

    rules.create({"id": "fails", "sql": "SELECT checked(a) AS a, split_value(p, '/', 1) AS s FROM demo",
                  "actions": [{"python": {"callable": "test_functions_custom:collect"}}]})
    send(runtime, {"a": 1, "p": "x/y"}, {"a": -1, "p": "x/y"}, {"a": 2, "p": "x"}, {"a": 3, "p": "u/v"})
    assert OUT.wait_for(2)
    assert wait_until(lambda: rules.status("fails")["source_demo_0_records_in_total"] == 4)
    assert OUT.data == [{"a": 1, "s": "y"}, {"a": 3, "s": "v"}]
    status = rules.status("fails")
    assert status["status"] == "running"
    assert status["op_2_project_0_exceptions_total"] == 2
    assert "1 out of index array (size = 1)" in status["op_2_project_0_last_exception"]


def test_an_unknown_function_is_refused_when_the_rule_is_created(rules: RuleManager) -> None:
    with pytest.raises(SQLError, match="sql: function nope not found at line 1, column 8"):
        rules.create({"id": "bad", "sql": "SELECT nope(a) FROM demo", "actions": [{"log": {}}]})
