"""The common sink props end to end: records from a real client through a rule into each action.

sendSingle (eKuiper's default false: an emission is one message, the JSON array
of its rows), omitIfEmpty, batchSize/lingerInterval, runAsync/concurrency,
dataTemplate on the file and log actions, the log action's stdout output, and
the rule option sendNilField. eKuiper's behaviour is described in
``docs/en_US/guide/sinks/overview.md`` and ``internal/topo/node/transform_op.go``.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.rules import send
from helpers.server import Collector, wait_until

import ekws
from ekws.actions import log as log_action
from ekws.rules.manager import RuleManager

OUT = Collector()  # "test_sink_pipeline:collect"
THREADS: set[str] = set()


def collect(msg: ekws.Message) -> None:
    THREADS.add(threading.current_thread().name)
    OUT(msg)


@pytest.fixture(autouse=True)
def _clear() -> None:
    OUT.messages.clear()
    THREADS.clear()


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_window_emission_is_one_message_unless_send_single(rules: RuleManager, runtime: ekws.Runtime,
                                                            tmp_path: Path) -> None:
    arrays, single = tmp_path / "arrays.jsonl", tmp_path / "single.jsonl"
    rules.create({"id": "w", "sql": "SELECT n FROM demo GROUP BY COUNTWINDOW(3)", "actions": [
        {"file": {"path": str(arrays)}}, {"file": {"path": str(single), "sendSingle": True}}]})
    send(runtime, *({"n": n} for n in range(6)))
    assert wait_until(lambda: len(lines(single)) == 6 and len(lines(arrays)) == 2)
    assert lines(arrays) == [[{"n": 0}, {"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}, {"n": 5}]]
    assert lines(single) == [{"n": n} for n in range(6)]
    status = rules.status("w")
    assert status["sink_file_0_0_records_out_total"] == 2 and status["sink_file_1_0_records_out_total"] == 6


def test_omit_if_empty_skips_empty_emissions_and_counts_them(rules: RuleManager, runtime: ekws.Runtime,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    # a missing field is null, and null columns are left out (sendNilField false): {} for {"b": 1}
    rules.create({"id": "o", "sql": "SELECT a FROM demo", "actions": [
        {"file": {"path": str(out), "omitIfEmpty": True}},
        {"python": {"callable": "test_sink_pipeline:collect"}}]})
    send(runtime, {"a": 1}, {"b": 1}, {"a": 2})
    assert OUT.wait_for(3)
    assert wait_until(lambda: len(lines(out)) == 2)
    assert lines(out) == [[{"a": 1}], [{"a": 2}]]
    assert OUT.data == [{"a": 1}, {}, {"a": 2}]  # the python action has no omitIfEmpty
    assert wait_until(lambda: rules.status("o").get("sink_file_0_0_omitted_total") == 1)


def test_batch_size_and_linger_interval(rules: RuleManager, runtime: ekws.Runtime, tmp_path: Path) -> None:
    sized, lingered = tmp_path / "sized.jsonl", tmp_path / "lingered.jsonl"
    rules.create({"id": "b", "stream": "demo", "actions": [
        {"file": {"path": str(sized), "batchSize": 3}},
        {"file": {"path": str(lingered), "lingerInterval": 100, "batchSize": 100}}]})
    send(runtime, *({"n": n} for n in range(7)))
    assert wait_until(lambda: len(lines(sized)) == 2 and len(lines(lingered)) == 1)
    assert lines(sized) == [[{"n": 0}, {"n": 1}, {"n": 2}], [{"n": 3}, {"n": 4}, {"n": 5}]]
    assert lines(lingered) == [[{"n": n} for n in range(7)]]  # one message, lingerInterval after the first
    rules.stop("b")  # the batch still held is sent at stop
    assert lines(sized)[-1] == [{"n": 6}]


def test_run_async_with_concurrency_delivers_every_record_off_the_rule_thread(
        rules: RuleManager, runtime: ekws.Runtime) -> None:
    rules.create({"id": "a", "stream": "demo", "actions": [
        {"python": {"callable": "test_sink_pipeline:collect", "concurrency": 2, "bufferLength": 4}}]})
    send(runtime, *({"n": n} for n in range(50)))
    assert OUT.wait_for(50)
    assert sorted(m["n"] for m in OUT.data) == list(range(50))
    assert THREADS and all(name.startswith("ekws-sink-") for name in THREADS)
    assert wait_until(lambda: rules.status("a")["sink_python_0_0_records_out_total"] == 50)


def test_send_nil_field(rules: RuleManager, runtime: ekws.Runtime) -> None:
    # eKuiper's TestProjectPlan_SendNil (internal/topo/operator/project_test.go): SELECT b on a
    # record without b gives {"b": nil} with sendNilField, {} without.
    for rule_id, options in (("keep", {"sendNilField": True}), ("drop", {})):
        rules.create({"id": rule_id, "sql": "SELECT a, b, lag(a) AS p FROM demo", "options": options,
                      "actions": [{"python": {"callable": "test_sink_pipeline:collect"}}]})
    rules.create({"id": "star", "sql": "SELECT * FROM demo",
                  "actions": [{"python": {"callable": "test_sink_pipeline:collect"}}]})
    send(runtime, {"a": 1, "c": None})
    assert OUT.wait_for(3)
    got = sorted(OUT.data, key=len)
    assert got == [{"a": 1}, {"a": 1, "c": None}, {"a": 1, "b": None, "p": None}]  # SELECT * passes it as is


def test_data_template_in_file_and_log_actions(rules: RuleManager, runtime: ekws.Runtime, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ekws.actions.log")
    out = tmp_path / "out.txt"
    rules.create({"id": "t", "sql": "SELECT device_id, t_av FROM demo", "actions": [
        {"file": {"path": str(out), "sendSingle": True, "dataTemplate":
                  '{"device_id": {{.device_id}}, "hot": {{if ge .t_av 30.0}}true{{else}}false{{end}}}'}},
        {"log": {"dataTemplate": "{{len .}} row(s): {{range .}}{{.device_id}} {{end}}"}}]})
    send(runtime, {"device_id": 1, "t_av": 36.25}, {"device_id": 2, "t_av": 27})
    assert wait_until(lambda: len(lines(out)) == 2)
    assert lines(out) == [{"device_id": 1, "hot": True}, {"device_id": 2, "hot": False}]
    logged = [r.getMessage() for r in caplog.records if r.name == "ekws.actions.log"]
    assert wait_until(lambda: len([r for r in caplog.records if r.name == "ekws.actions.log"]) == 2)
    logged = [r.getMessage() for r in caplog.records if r.name == "ekws.actions.log"]
    assert logged == ["sink result for rule t: 1 row(s): 1 ", "sink result for rule t: 1 row(s): 2 "]


def test_a_template_failing_on_a_record_is_counted(rules: RuleManager, runtime: ekws.Runtime,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    rules.create({"id": "e", "stream": "demo", "actions": [
        {"file": {"path": str(out), "sendSingle": True, "dataTemplate": '{{index .l 1}}'}}]})
    send(runtime, {"l": [1, 2]}, {"l": [1]}, {"l": [3, 4]})
    assert wait_until(lambda: len(out.read_text().splitlines()) == 2)
    assert out.read_text() == "2\n4\n"
    status = rules.status("e")
    assert status["sink_file_0_0_exceptions_total"] == 1
    assert "index out of range: 1" in status["sink_file_0_0_last_exception"]


def test_log_action_prints_one_line_a_record_to_the_service_output(rules: RuleManager,
                                                                  runtime: ekws.Runtime) -> None:
    printed = Collector()
    log_action.set_output(printed)
    try:
        rules.create({"id": "p", "sql": "SELECT n FROM demo GROUP BY COUNTWINDOW(2)",
                      "actions": [{"log": {}}]})
        send(runtime, {"n": 1}, {"n": 2})
        assert printed.wait_for(2)
        assert printed.data == [{"n": 1}, {"n": 2}]  # one line a record, as ekws run printed before
        assert printed.messages[0].meta["stream"] == "demo"
    finally:
        log_action.set_output(None)
