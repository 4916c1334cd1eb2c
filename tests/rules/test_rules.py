"""Rules over a real runtime: a server-mode stream on port 0 fed by a `websockets` client.

eKuiper's documented rule bodies run unchanged; what ekws refuses is named
with its position; a failing action never stops the rule or the others;
sendError, restartStrategy and the lifecycle (the last rule stopping stops
the shared server) behave as documented.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.common import refused_port
from helpers.server import Collector, create_sql, refuses, wait_until, write_etc, ws_connect

import ekws
from ekws.actions import ActionError
from ekws.rules.manager import InvalidRule, RuleExists, RuleManager, RuleNotFound
from ekws.rules.sql import SQLError

OUT = Collector()  # the target of the "python" actions below ("test_rules:collect")
COLLECT = "test_rules:collect"


def collect(msg: ekws.Message) -> None:
    OUT(msg)


def explode(msg: ekws.Message) -> None:
    raise RuntimeError(f"action failed on {msg.data}")


@pytest.fixture(autouse=True)
def _fresh_out() -> Iterator[None]:
    OUT.messages.clear()
    yield
    OUT.messages.clear()


def url(runtime: ekws.Runtime, path: str = "/api/data") -> str:
    address = runtime.server_address
    assert address is not None, "the shared server is not running"
    return f"ws://127.0.0.1:{address[1]}{path}"


def send(runtime: ekws.Runtime, *records: Any) -> None:
    with ws_connect(url(runtime)) as ws:
        for record in records:
            ws.send(record if isinstance(record, str) else json.dumps(record))


def log_records(caplog: pytest.LogCaptureFixture, rule_id: str) -> list[dict[str, Any]]:
    """The rows eKuiper's log sink logged: one JSON array an emission (sendSingle false, its default)."""
    prefix = f"sink result for rule {rule_id}: "
    return [row for r in caplog.records if r.name == "ekws.actions.log" and r.getMessage().startswith(prefix)
            for row in json.loads(r.getMessage()[len(prefix):])]


# --------------------------------------------------------------------------- eKuiper's bodies


def test_ekuiper_select_star_rule_body_runs_unchanged(rules: RuleManager, runtime: ekws.Runtime,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    # eKuiper's REST docs, "create a rule", verbatim.
    rules.create(json.loads('{"id": "rule1", "sql": "SELECT * FROM demo", "actions": [{"log":  {}}]}'))
    assert rules.list() == [{"id": "rule1", "status": "running"}]
    send(runtime, {"temperature": 20, "humidity": 50}, [{"temperature": 31}, {"temperature": 40}])
    assert wait_until(lambda: len(log_records(caplog, "rule1")) == 3)
    assert log_records(caplog, "rule1") == [{"temperature": 20, "humidity": 50}, {"temperature": 31},
                                            {"temperature": 40}]
    status = rules.status("rule1")
    assert status["status"] == "running" and status["message"] == ""
    assert status["lastStartTimestamp"] > 0
    assert status["source_demo_0_records_in_total"] == 3
    assert status["op_2_project_0_records_out_total"] == 3
    assert status["sink_log_0_0_records_in_total"] == 3
    assert status["sink_log_0_0_records_out_total"] == 3
    assert status["sink_log_0_0_exceptions_total"] == 0
    assert status["source_demo_0_connection_status"] == 1


def test_ekuiper_projection_and_where_rule_body_runs_unchanged(
        rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    # eKuiper's docs (manager tutorial and REST examples): a projection and a filter.
    body = {"id": "rule_temp_alert", "sql": "SELECT temperature, humidity FROM demo WHERE temperature > 30",
            "actions": [{"log": {}}]}
    rules.create(body)
    send(runtime, {"temperature": 34.5, "humidity": 60.2, "device": "a"},
         {"temperature": 20, "humidity": 10, "device": "b"}, {"temperature": 31, "device": "c"})
    assert wait_until(lambda: rules.status("rule_temp_alert")["op_2_filter_0_records_in_total"] == 3)
    assert wait_until(lambda: len(log_records(caplog, "rule_temp_alert")) == 2)
    assert log_records(caplog, "rule_temp_alert") == [{"temperature": 34.5, "humidity": 60.2},
                                                      {"temperature": 31}]  # sendNilField false
    status = rules.status("rule_temp_alert")
    assert status["op_2_filter_0_records_out_total"] == 2
    assert status["op_3_project_0_records_out_total"] == 2
    assert status["sink_log_0_0_records_out_total"] == 2
    assert rules.describe("rule_temp_alert") == body


def test_ekuiper_getting_started_window_rule_runs_one_record_per_window(
        rules: RuleManager, runtime: ekws.Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    # eKuiper's getting-started rule, verbatim: a 5 s tumbling window, aggregates, HAVING on an alias.
    sql = ("SELECT count(*), avg(temperature) as avg_temp, max(humidity) as max_hum from demo "
           "group by TUMBLINGWINDOW(ss, 5) HAVING avg_temp > 30;")
    rules.create({"id": "myRule", "sql": sql, "actions": [{"log": {}}]})
    if time.time() % 5 > 3.5:  # send early in a window (they end at multiples of 5 s), so both land in one
        time.sleep(5.05 - time.time() % 5)
    send(runtime, {"temperature": 31, "humidity": 50}, {"temperature": 34, "humidity": 70})
    assert wait_until(lambda: log_records(caplog, "myRule"), timeout=8)
    assert log_records(caplog, "myRule") == [{"count": 2, "avg_temp": 32.5, "max_hum": 70}]
    status = rules.status("myRule")
    assert status["op_2_window_0_records_in_total"] == 2 and status["sink_log_0_0_records_out_total"] == 1


# --------------------------------------------------------------------------- actions and errors


def test_short_form_and_python_action_get_each_message(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "short", "stream": "demo", "actions": [{"python": {"callable": COLLECT}}]})
    send(runtime, {"a": 1}, {"a": 2})
    assert OUT.wait_for(2)
    assert OUT.data == [{"a": 1}, {"a": 2}]
    assert all(m.meta["stream"] == "demo" and m.meta["peer"].startswith("127.0.0.1:") for m in OUT.messages)


def test_failing_action_is_counted_and_never_stops_the_rule(rules: RuleManager, runtime: ekws.Runtime,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rules.create({"id": "r", "sql": "SELECT a FROM demo", "actions": [
        {"python": {"callable": "test_rules:explode"}},
        {"file": {"path": str(out)}},
        {"python": {"callable": "test_rules:collect"}},
    ]})
    send(runtime, *({"a": n} for n in range(20)))
    assert OUT.wait_for(20)
    status = rules.status("r")
    assert status["status"] == "running"
    assert status["sink_python_0_0_records_in_total"] == 20
    assert status["sink_python_0_0_exceptions_total"] == 20
    assert status["sink_python_0_0_records_out_total"] == 0
    assert "RuntimeError: action failed on {'a': 19}" in status["sink_python_0_0_last_exception"]
    assert status["sink_file_1_0_records_out_total"] == 20
    assert status["sink_python_2_0_records_out_total"] == 20
    assert wait_until(lambda: len(out.read_text().splitlines()) == 20)
    # eKuiper's default (sendSingle false): one line a message, the JSON array of its rows.
    assert [json.loads(line) for line in out.read_text().splitlines()] == [[{"a": n}] for n in range(20)]


def test_expression_errors_are_per_record_and_sent_with_send_error(rules: RuleManager,
                                                                   runtime: ekws.Runtime) -> None:
    rules.create({"id": "e", "sql": "SELECT a * 2 AS b FROM demo WHERE a > 1",
                  "actions": [{"python": {"callable": "test_rules:collect"}}],
                  "options": {"sendError": True}})
    send(runtime, {"a": "text"}, "not json", {"a": 5}, {"a": 0})
    assert OUT.wait_for(3)
    data = OUT.data
    assert len(data) == 3
    # A decode error is reported when its socket read is decoded, ahead of the
    # records of that read: only the order of records is guaranteed.
    errors = sorted(d["error"] for d in data if "error" in d)
    assert errors[0].startswith("filter: cannot compare string 'text' > number 1")
    assert "invalid JSON" in errors[1]
    assert [d for d in data if "error" not in d] == [{"b": 10}]
    status = rules.status("e")
    assert status["op_2_filter_0_exceptions_total"] == 1
    assert status["source_demo_0_exceptions_total"] == 1
    assert status["status"] == "running"


def test_errors_stay_out_of_actions_without_send_error(rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "q", "sql": "SELECT * FROM demo WHERE a > 1",
                  "actions": [{"python": {"callable": "test_rules:collect"}}]})
    send(runtime, {"a": "text"}, "[1, 2]", {"a": 5})
    assert OUT.wait_for(1)
    assert wait_until(lambda: rules.status("q")["source_demo_0_exceptions_total"] == 1)
    assert OUT.data == [{"a": 5}]


# --------------------------------------------------------------------------- lifecycle


def test_last_rule_stopping_stops_the_shared_server(rules: RuleManager, runtime: ekws.Runtime,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    rules.create({"id": "one", "stream": "demo", "actions": [{"log": {}}]})
    rules.create({"id": "two", "stream": "demo", "actions": [{"log": {}}]})
    port = url(runtime).split(":")[2].split("/")[0]
    assert rules.on_stream("demo") == ["one", "two"] and rules.on_stream("other") == []
    rules.stop("one")
    assert runtime.server_address is not None
    assert rules.list() == [{"id": "one", "status": "stopped"}, {"id": "two", "status": "running"}]
    rules.stop("two")
    assert runtime.server_address is None
    assert refuses(int(port))
    assert rules.status("two")["message"] == "canceled manually"
    rules.start("two")
    send(runtime, {"x": 1})
    assert wait_until(lambda: rules.status("two")["sink_log_0_0_records_out_total"] == 1)
    # The count can lead the log line by a moment: wait for the line, not to log after teardown.
    assert wait_until(lambda: 'sink result for rule two: [{"x":1}]' in caplog.text)


def test_create_update_restart_delete(rules: RuleManager, runtime: ekws.Runtime) -> None:
    body = {"id": "r1", "sql": "SELECT a FROM demo", "actions": [{"python": {"callable": COLLECT}}]}
    rules.create(body)
    with pytest.raises(RuleExists):
        rules.create(body)
    rules.update("r1", {"sql": "SELECT a + 1 AS b FROM demo",
                        "actions": [{"python": {"callable": "test_rules:collect"}}]})
    assert rules.is_running("r1")
    send(runtime, {"a": 1})
    assert OUT.wait_for(1)
    assert OUT.data == [{"b": 2}]
    rules.restart("r1")
    assert rules.is_running("r1")
    assert rules.status("r1")["sink_python_0_0_records_in_total"] == 0  # a restart starts counting anew
    rules.delete("r1")
    with pytest.raises(RuleNotFound):
        rules.status("r1")
    assert runtime.server_address is None
    with pytest.raises(InvalidRule, match="differs from the rule id"):
        rules.create({"id": "a", "stream": "demo", "actions": [{"log": {}}]}, rule_id="b")
    created = rules.create({"stream": "demo", "actions": [{"log": {}}], "triggered": False}, rule_id="later")
    assert created.triggered is False and rules.list() == [{"id": "later", "status": "stopped"}]
    assert rules.describe("later")["id"] == "later"  # what a store keeps is complete


def test_restart_strategy_retries_a_failed_start(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    etc = write_etc(tmp_path, source={"httpServerPort": port})
    with ekws.Runtime(config_dir=etc) as rt:
        rt.create_stream(create_sql("demo", "/api/data"))
        manager = RuleManager(rt)
        try:
            manager.create({"id": "r", "stream": "demo", "actions": [{"log": {}}],
                            "options": {"restartStrategy": {"attempts": 1000, "delay": 20, "multiplier": 1}}})
            status = manager.status("r")
            assert status["status"] == "stopped"
            assert "failed to start" in status["message"] and str(port) in status["message"]
            blocker.close()
            assert wait_until(lambda: manager.is_running("r"), timeout=10)
            assert rt.server_address == ("127.0.0.1", port)
        finally:
            manager.close()
            blocker.close()


def test_a_source_that_gives_up_stops_the_rule_and_restart_strategy_retries(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.rules.rule")
    with refused_port() as port:  # bound, never listening: every dial is refused
        etc = write_etc(tmp_path, extra_keys={"remote": {
            "addr": f"127.0.0.1:{port}", "reconnect": {"initialDelay": "10ms", "maxRetries": 2}}})
        with ekws.Runtime(config_dir=etc) as rt:
            rt.create_stream(create_sql("far", "/feed", conf_key="remote"))
            manager = RuleManager(rt)
            try:
                manager.create({"id": "r", "stream": "far", "actions": [{"log": {}}],
                                "options": {"restartStrategy": {"attempts": 1, "delay": 50}}})
                # Gave up, restarted once (a new subscription dials again), gave up for good.
                def settled() -> bool:
                    restarted = any("restart attempt 1" in r.getMessage() for r in caplog.records)
                    status = manager.status("r")
                    return (restarted and status["status"] == "stopped" and status["nextStartTimestamp"] == 0
                            and status["source_far_0_exceptions_total"] == 2)  # this run's two refused dials
                assert wait_until(settled, timeout=15)
                status = manager.status("r")
                assert status["message"].startswith("source stopped")
                assert status["status"] == "stopped"
            finally:
                manager.close()


# --------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize(("body", "error", "match"), [
    ("SELECT * FROM demo", InvalidRule, "JSON object"),
    ({"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}, InvalidRule, "needs an id"),
    ({"id": "x", "actions": [{"log": {}}]}, InvalidRule, "either sql"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": []}, InvalidRule, "actions"),
    ({"id": "x", "sql": "SELECT * FROM nope", "actions": [{"log": {}}]}, InvalidRule, "'nope' does not"),
    ({"id": "x", "sql": "SELECT * FROM Demo", "actions": [{"log": {}}]}, InvalidRule, "'Demo' does not"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"rest": {}}]}, ActionError, "unknown action kind"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"file": {}}]}, ActionError, "file #0: path"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"log": {"colour": 1}}]}, ActionError,
     "log #0: colour: unknown"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"python": {"callable": "no_such_mod:f"}}]},
     ActionError, "python #0: callable: cannot import 'no_such_mod'"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"python": {"callable": "test_rules:nothing"}}]},
     ActionError, "has no attribute 'nothing'"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"websocket": {"addr": "", "path": "out"}}]},
     ActionError, "websocket #0: path: expected a path"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"log": {}}], "options": {"qos": 1}},
     InvalidRule, "options.qos"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"log": {}}], "options": {"bufferLength": 0}},
     InvalidRule, "options.bufferLength"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"log": {}}], "options": {"fast": True}},
     InvalidRule, "unknown option 'fast'"),
    ({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"log": {}}], "graph": {}}, InvalidRule, "graph"),
    ({"id": "x", "sql": "SELECT * FROM demo ORDER BY a", "actions": [{"log": {}}]}, SQLError,
     "ORDER BY needs a GROUP BY window .* column 20"),
])
def test_bad_bodies_name_what_is_wrong(rules: RuleManager, body: Any, error: type[Exception],
                                       match: str) -> None:
    with pytest.raises(error, match=match) as info:
        rules.create(body)
    assert isinstance(info.value, ValueError)
    assert rules.list() == []


def test_the_sdk_never_loads_the_service_or_actions() -> None:
    code = ("import sys, ekws; "
            "loaded = [m for m in sys.modules if m.startswith(('ekws.service', 'ekws.actions'))]; "
            "print(loaded); raise SystemExit(1 if loaded else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_projection_error_is_counted_on_the_project_node_after_the_filter_passed(
        rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "p", "sql": "SELECT a * 2 AS b FROM demo WHERE a IS NOT NULL",
                  "actions": [{"python": {"callable": "test_rules:collect"}}],
                  "options": {"sendError": True}})
    send(runtime, {"a": "text"}, {"a": 3}, {"z": 1})
    assert OUT.wait_for(2)
    assert OUT.data[0]["error"].startswith("project: * needs numbers, got string 'text'")
    assert OUT.data[1:] == [{"b": 6}]
    assert wait_until(lambda: rules.status("p")["source_demo_0_records_in_total"] == 3)
    status = rules.status("p")
    assert (status["op_2_filter_0_records_out_total"], status["op_2_filter_0_exceptions_total"]) == (2, 0)
    assert (status["op_3_project_0_records_in_total"], status["op_3_project_0_records_out_total"]) == (2, 1)
    assert status["op_3_project_0_exceptions_total"] == 1


def test_rule_options_and_action_props_share_the_source_props_checks() -> None:
    """One validator (ekws.props): the same words for a bad value, the key and where named."""
    from ekws.actions import parse_action
    from ekws.props import Where, boolean, integer
    from ekws.rules.definition import parse_rule

    expected = {}
    for parser, value in ((integer(1), 0), (boolean, "yes")):
        with pytest.raises(ekws.ConfigError) as exc:
            parser(value, Where("f", "k"))
        expected[value] = exc.value.message
    body = {"id": "r", "sql": "SELECT * FROM demo", "actions": [{"log": {}}]}
    with pytest.raises(InvalidRule) as bad:
        parse_rule({**body, "options": {"bufferLength": 0}})
    assert str(bad.value) == f"options.bufferLength: {expected[0]}"
    with pytest.raises(InvalidRule) as bad:
        parse_rule({**body, "options": {"sendError": "yes"}})
    assert str(bad.value) == f"options.sendError: {expected['yes']}"
    with pytest.raises(ActionError) as bad_action:
        parse_action({"log": {"omitIfEmpty": "yes"}}, 0)
    assert str(bad_action.value) == f"action log #0: omitIfEmpty: {expected['yes']}"
