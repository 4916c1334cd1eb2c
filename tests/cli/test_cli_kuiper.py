"""The `ekws` CLI as eKuiper's `bin/kuiper`: its commands, texts and help, against a real service.

The texts come from eKuiper's cmd/kuiper/main.go and internal/server/rpc.go
(lf-edge/ekuiper v2), with `ekws` for `bin/kuiper`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.service import ENV, Service, write_etc

ALERT = 'CREATE STREAM alert (id BIGINT, name STRING DEFAULT "x") WITH (DATASOURCE="/alert", SHARED="true")'
RULE = {"sql": "SELECT * FROM alert", "actions": [{"log": {}}]}


def ekws(*args, port=1):
    return subprocess.run([sys.executable, "-m", "ekws", "--port", str(port), *args], capture_output=True,
                          text=True, env=ENV, timeout=30)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    etc = write_etc(tmp_path_factory.mktemp("kuiper"), streams=(ALERT,), rules=[])
    with Service(etc) as service:
        yield service


@pytest.mark.parametrize("words", [
    ("drop", "rule", "--help"), ("drop", "rule", "r1", "--help"), ("create", "stream", "-h"),
    ("create", "rule", "r1", "{}", "--help"), ("start", "rule", "-h"), ("import", "data", "--help"),
    ("tail", "--help"), ("describe", "--help"), ("validate", "rule", "--help")])
def test_help_never_acts_and_every_subcommand_has_it(words):
    # Port 1 refuses: a command that made a request would fail; --help prints and exits 0.
    out = ekws(*words)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ekws ") and out.stderr == ""
    assert f"ekws {words[0]}" in out.stdout


def test_drop_rule_help_sends_nothing_to_a_live_service(svc):
    assert svc.request("POST", "/rules", {**RULE, "id": "keep"})[0] == 201
    out = svc.cli("drop", "rule", "--help")
    assert out.returncode == 0 and "drop rule NAME" in out.stdout
    out = svc.cli("drop", "rule", "keep", "-h")
    assert out.returncode == 0
    assert svc.json("GET", "/rules/keep")[0] == 200
    assert svc.request("DELETE", "/rules/keep")[0] == 200


def test_rule_commands_print_kuipers_sentences(svc):
    # internal/server/rpc.go CreateRule, StartRule, StopRule, RestartRule, DropRule.
    out = svc.cli("create", "rule", "rule1", json.dumps(RULE))
    assert out.returncode == 0
    assert out.stdout.strip() == ("Rule rule1 was created successfully, please use "
                                  "'ekws getstatus rule rule1' command to get rule status.")
    assert svc.cli("stop", "rule", "rule1").stdout.strip() == "Rule rule1 was stopped."
    assert svc.cli("start", "rule", "rule1").stdout.strip() == "Rule rule1 was started"
    assert svc.cli("restart", "rule", "rule1").stdout.strip() == "Rule rule1 was restarted."
    # describe rule: kuiper prints def.Rule with triggered and id first and the options filled in
    out = svc.cli("describe", "rule", "rule1")
    described = json.loads(out.stdout)
    assert list(described)[:2] == ["triggered", "id"]
    assert described["triggered"] is True and described["id"] == "rule1"
    assert described["options"]["isEventTime"] is False and "sendError" in described["options"]
    # gettopo rule (rpc.go GetTopoRule): rest_test.go's shape, sources and edges
    topo = json.loads(svc.cli("gettopo", "rule", "rule1").stdout)
    assert topo == {"sources": ["source_alert"],
                    "edges": {"source_alert": ["op_2_project"], "op_2_project": ["sink_log_0"]}}
    assert svc.cli("drop", "rule", "rule1").stdout.strip() == "Rule rule1 is dropped."


def test_stream_commands_run_as_statements_with_kuipers_errors(svc):
    # internal/server/rpc.go Stream: "Stream command error: " + the processor's error.
    out = svc.cli("drop", "stream", "my_stream")
    assert out.returncode == 1
    assert out.stderr.strip() == "Stream command error: Drop stream fails: stream my_stream is not found."
    out = svc.cli("describe", "stream", "nope")
    assert out.stderr.strip() == "Stream command error: Describe stream fails, stream nope is not found."


def test_describe_stream_as_kuiper_prints_it_and_as_json(svc):
    # internal/processor/stream.go execDescribe and printOptions; DescribeToJson for -json.
    out = svc.cli("describe", "stream", "alert")
    assert out.returncode == 0
    assert out.stdout == ("Fields\n" + "-" * 80 + "\nid\tbigint\nname\tstring\tDEFAULT\tx\n\n"
                          "DATASOURCE: /alert\nFORMAT: JSON\nSHARED: true\nTYPE: websocket\n\n")
    out = svc.cli("describe", "stream", "alert", "-json")
    assert json.loads(out.stdout) == {
        "Fields": [{"Name": "id", "Type": "bigint"},
                   {"Name": "name", "Type": "string", "DefaultClause": "x"}],
        "Options": {"DATASOURCE:": "/alert", "FORMAT:": "JSON", "SHARED:": "true", "TYPE:": "websocket"}}
    assert out.stdout.startswith('{\n\t"Fields"')  # kuiper's json.MarshalIndent(o, "", "\t")


def test_a_rule_created_but_not_started_is_exit_1_with_the_reason(svc, tmp_path):
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    body = {"sql": "SELECT * FROM alert", "actions": [{"file": {"path": str(missing)}}]}
    out = svc.cli("create", "rule", "broken", json.dumps(body))
    assert out.returncode == 1
    assert "Rule broken was created successfully" in out.stdout
    assert out.stderr.startswith("Rule broken did not start: ") and "no-such-dir" in out.stderr
    out = svc.cli("start", "rule", "broken")
    assert out.returncode == 1 and "no-such-dir" in out.stderr
    # triggered false: not started on purpose, exit 0
    out = svc.cli("create", "rule", "idle", json.dumps({**RULE, "triggered": False}))
    assert out.returncode == 0
    for rule_id in ("broken", "idle"):
        assert svc.request("DELETE", f"/rules/{rule_id}")[0] == 200


def test_validate_rule(svc):
    # cmd/kuiper/main.go validate; internal/server/rpc.go ValidateRule's sentence.
    out = svc.cli("validate", "rule", "v1", json.dumps(RULE))
    assert (out.returncode, out.stdout.strip()) == (
        0, "The rule has been successfully validated and is confirmed to be correct.")
    bad = {"sql": "SELECT * FROM nope", "actions": [{"log": {}}]}
    out = svc.cli("validate", "rule", "v1", json.dumps(bad))
    assert out.returncode == 1 and "nope" in out.stderr
    assert svc.json("GET", "/rules/v1")[0] == 404  # nothing created


def test_export_and_import_ruleset_and_data(svc, tmp_path):
    # cmd/kuiper/main.go import/export; internal/server/rpc.go Import/Export sentences.
    assert svc.request("POST", "/rules", {**RULE, "id": "exported"})[0] == 201
    file = tmp_path / "ruleset.json"
    out = svc.cli("export", "ruleset", str(file))
    assert (out.returncode, out.stdout.strip()) == (0, "exported 1 streams, 0 tables and 1 rules")
    ruleset = json.loads(file.read_text())
    assert list(ruleset["rules"]) == ["exported"]
    out = svc.cli("import", "ruleset", "-f", str(file))
    assert (out.returncode, out.stdout.strip()) == (0, "imported 1 streams, 0 tables and 1 rules")
    data = tmp_path / "data.json"
    out = svc.cli("export", "data", str(data))
    assert (out.returncode, out.stdout.strip()) == (0, "export configuration success")
    out = svc.cli("import", "data", "-f", str(data), "-p", "true")
    # rpc_test.go TestConfiguration: the reply, indented, every Configuration key empty
    keys = ("streams", "tables", "rules", "nativePlugins", "portablePlugins", "sourceConfig", "sinkConfig",
            "connectionConfig", "Service", "Schema", "uploads", "scripts")
    assert out.returncode == 0
    expected = {"ErrorMsg": "", "ConfigResponse": {k: {} for k in keys}}
    assert out.stdout == json.dumps(expected, indent=2) + "\n"
    # rpc_test.go TestConfiguration: getstatus import, every key empty
    out = svc.cli("getstatus", "import")
    assert out.returncode == 0 and json.loads(out.stdout) == {k: {} for k in keys}
    # cmd/kuiper/main.go export data -r: the named rules and the streams they read
    partial = tmp_path / "partial.json"
    out = svc.cli("export", "data", str(partial), "-r", '["exported"]')
    assert (out.returncode, out.stdout.strip()) == (0, "export configuration success")
    assert list(json.loads(partial.read_text())["rules"]) == ["exported"]
    assert svc.request("DELETE", "/rules/exported")[0] == 200


def test_rpc_test_rule_cases(svc):
    # internal/server/rpc_test.go TestRule, with a log action for its file action: describe rule's
    # shape and order, and "invalid characters" for every rule command given a bad name.
    rule = {"sql": "SELECT * from alert;", "actions": [{"log": {}}]}
    assert svc.cli("create", "rule", "myRule", json.dumps(rule)).returncode == 0
    out = svc.cli("describe", "rule", "myRule")
    head = '{\n  "triggered": true,\n  "id": "myRule",\n  "sql": "SELECT * from alert;",'
    assert out.stdout.startswith(head)
    assert json.loads(out.stdout)["options"] == {
        "debug": False, "isEventTime": False, "lateTolerance": "0s", "concurrency": 1,
        "sendMetaToSink": False, "sendNilField": False, "sendError": False, "restartStrategy": {}}
    for verb in ("start", "stop", "getstatus", "gettopo", "describe", "restart", "drop"):
        out = svc.cli(verb, "rule", "invalid/name")
        assert out.returncode == 1 and "invalid characters" in out.stderr, verb
    assert svc.cli("drop", "rule", "myRule").stdout.strip() == "Rule myRule is dropped."
