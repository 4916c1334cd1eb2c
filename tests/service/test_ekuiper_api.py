"""eKuiper's rule endpoints, status keys, metrics and import/export, against `ekws run` (a real subprocess).

Each test names the eKuiper file it comes from (lf-edge/ekuiper, v2); where
eKuiper's case uses another source type (mqtt, memory), the stream here is a
websocket stream and the rest of the case is kept.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from helpers.common import wait_until
from helpers.service import Service, write_etc
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

ALERT = 'CREATE stream alert() WITH (DATASOURCE="/alert", TYPE="websocket")'
DEMO = 'CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE="/demo")'


@pytest.fixture
def service(tmp_path):
    with Service(write_etc(tmp_path, streams=(), rules=[])) as svc:
        yield svc


def ws_port(svc):
    """The shared server's port, as last logged (it moves when it stops with its last stream)."""
    svc.err.wait_for(r"listening on ws://127.0.0.1:(\d+)")
    return int(re.findall(r"listening on ws://127.0.0.1:(\d+)", svc.err.text)[-1])


def post_sql(svc, sql):
    status, _, text = svc.request("POST", "/streams", {"sql": sql})
    assert status == 201, text


def test_validate_a_rule(service):
    # internal/server/rest_test.go Test_rulesManageHandler: "validate a rule" / "validate a wrong rule".
    post_sql(service, ALERT)
    rule = {"id": "rule1", "triggered": False, "sql": "select * from alert", "actions": [{"log": {}}]}
    valid = (200, '{"sources": ["alert"], "valid": true}')
    assert service.request("POST", "/rules/validate", rule)[::2] == valid
    wrong = {"id": "rule321", "sql": "select * from nope", "actions": [{"log": {}}]}
    status, ctype, text = service.request("POST", "/rules/validate", wrong)
    assert status == 422 and ctype.startswith("text/plain") and "nope" in text
    assert service.json("GET", "/rules") == (200, [])  # nothing created


def test_list_status_all_and_topo(service):
    # rule_manager.go GetAllRulesWithStatus / GetAllRuleStatus; rest_test.go "get rule topo".
    post_sql(service, ALERT)
    rule = {"id": "rule321", "name": "Alerts", "sql": "select * from alert", "actions": [{"log": {}}],
            "tags": ["t1"]}
    assert service.request("POST", "/rules", rule)[0] == 201
    assert service.json("GET", "/rules") == (200, [{"id": "rule321", "name": "Alerts", "status": "running",
                                                    "version": "", "trace": False, "tags": ["t1"]}])
    assert service.json("GET", "/rules/status/all") == (200, {
        "rule321": {"status": "running", "last_exception": "", "exceptions_total": 0}})
    assert service.json("GET", "/rules/rule321/topo") == (200, {
        "sources": ["source_alert"],
        "edges": {"source_alert": ["op_2_project"], "op_2_project": ["sink_log_0"]}})
    filtered = {"id": "f", "sql": "select * from alert where a > 1", "actions": [{"log": {}}, {"log": {}}]}
    assert service.request("POST", "/rules", filtered)[0] == 201
    assert service.json("GET", "/rules/f/topo")[1] == {
        "sources": ["source_alert"],
        "edges": {"source_alert": ["op_2_filter"], "op_2_filter": ["op_3_project"],
                  "op_3_project": ["sink_log_0", "sink_log_1"]}}
    assert service.json("GET", "/rules/nope/topo")[1]["error"] == 1002


def test_rule_status_has_every_key_of_ekuiper_v2_in_its_order(service):
    # internal/topo/rule/state_test.go: the status keys and their order; stats_manager.go MetricNames.
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "r", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    status = service.json("GET", "/rules/r/status")[1]
    assert list(status)[:6] == ["status", "message", "lastStartTimestamp", "lastStopTimestamp",
                                "nextStartTimestamp", "nextStopTimestamp"]
    node = ["records_in_total", "records_out_total", "messages_processed_total", "process_latency_us",
            "buffer_length", "last_invocation", "exceptions_total", "last_exception", "last_exception_time"]
    connection = ["connection_status", "connection_last_connected_time", "connection_last_disconnected_time",
                  "connection_last_disconnected_message", "connection_last_try_time"]
    keys = list(status)
    for prefix, expected in (("source_alert_0", node + connection), ("op_2_project_0", node),
                             ("sink_log_0_0", node + connection)):
        mine = [k[len(prefix) + 1:] for k in keys if k.startswith(prefix + "_")]
        assert mine[:len(expected)] == expected, prefix
    assert status["sink_log_0_0_connection_status"] == 1 and status["status"] == "running"


def test_tags_and_bulk_start_stop(service):
    # internal/server/rule_tag.go and rest_test.go Test_RulesBulk (bulkstart / bulkstop by tag).
    post_sql(service, DEMO)
    for n, sql in enumerate(("SELECT * FROM demo", "SELECT color FROM demo", "SELECT size FROM demo")):
        rule = {"id": f"r{n}", "sql": sql, "actions": [{"log": {}}], "tags": ["mock-tag"], "triggered": True}
        assert service.request("POST", "/rules", rule)[0] == 201
    assert service.request("PUT", "/rules/r0/tags", {"tags": ["a", "b"]})[0] == 200
    assert service.json("GET", "/rules/r0")[1]["tags"] == ["a", "b"]
    assert service.request("PATCH", "/rules/r0/tags", {"tags": ["b", "mock-tag"]})[0] == 200
    assert service.json("GET", "/rules/r0")[1]["tags"] == ["a", "b", "mock-tag"]
    assert service.request("DELETE", "/rules/r0/tags", {"tags": ["a"]})[0] == 200
    assert service.json("GET", "/rules/r0")[1]["tags"] == ["b", "mock-tag"]
    matched = service.json("GET", "/rules/tags/match", {"tags": ["mock-tag"]})
    assert matched == (200, {"rules": ["r0", "r1", "r2"]})
    assert service.json("GET", "/rules/tags/match", {"tags": ["b"]}) == (200, {"rules": ["r0"]})
    assert service.json("GET", "/rules/tags/match", {"tags": ["zzz"]}) == (200, {})  # rules: omitempty
    assert service.json("POST", "/rules/bulkstop", {"tags": ["mock-tag"]}) == (200, [
        {"ruleId": f"r{n}", "success": True} for n in range(3)])
    assert {r["status"] for r in service.json("GET", "/rules")[1]} == {"stopped"}
    assert service.json("POST", "/rules/bulkstart", {"tags": ["b"]})[1] == [{"ruleId": "r0", "success": True}]
    assert [r["status"] for r in service.json("GET", "/rules")[1]] == ["running", "stopped", "stopped"]
    assert service.json("PUT", "/rules/nope/tags", {"tags": []})[0] == 404
    assert service.json("PUT", "/rules/r0/tags", {"tags": "x"})[0] == 400


# -- import / export ---------------------------------------------------------------------------------


def test_ruleset_and_data_round_trip_between_two_services_idempotent(tmp_path):
    # internal/server/rpc_test_data/import.json (ruleset) and import_configuration.json (data),
    # with a websocket stream; rest.go importHandler's sentence; import_export.go's Configuration keys.
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    with Service(write_etc(one, streams=(), rules=[])) as src, \
            Service(write_etc(two, streams=(), rules=[])) as dst:
        post_sql(src, 'CREATE STREAM test () WITH (DATASOURCE="/users", FORMAT="JSON")')
        rule = {"id": "myRule", "sql": "SELECT * FROM test", "actions": [{"log": {}}]}
        assert src.request("POST", "/rules", rule)[0] == 201
        plant = {"addr": "10.0.0.1:80"}
        assert src.request("PUT", "/metadata/sources/websocket/confKeys/plant", plant)[0] == 200
        status, ruleset = src.json("GET", "/ruleset/export")
        assert status == 200 and ruleset == {
            "streams": {"test": 'CREATE STREAM test () WITH (DATASOURCE="/users", FORMAT="JSON")'},
            "tables": {}, "rules": {"myRule": json.dumps(rule)}}
        status, data = src.json("GET", "/data/export")
        assert set(data) >= {"streams", "tables", "rules", "nativePlugins", "portablePlugins", "sourceConfig",
                             "sinkConfig", "connectionConfig", "Service", "Schema"}
        assert json.loads(data["sourceConfig"]["websocket"]) == {"plant": {"addr": "10.0.0.1:80"}}

        imported = dst.request("POST", "/data/import", {"content": json.dumps(data)})
        assert imported[0] == 200, imported
        assert json.loads(imported[2])["ErrorMsg"] == ""
        assert dst.json("GET", "/data/export")[1] == data
        assert dst.json("GET", "/rules")[1][0]["status"] == "running"
        with connect(f"ws://127.0.0.1:{ws_port(dst)}/users", open_timeout=5) as ws:
            ws.send('{"n": 1}')
            dst.out.wait_for(r'"n": ?1')
        before = dst.json("GET", "/rules/myRule/status")[1]
        # idempotent: the same file again changes nothing (the rule keeps running, its counts kept)
        assert dst.request("POST", "/data/import", {"content": json.dumps(data)})[0] == 200
        after = dst.json("GET", "/rules/myRule/status")[1]
        assert after["lastStartTimestamp"] == before["lastStartTimestamp"]
        assert after["source_test_0_records_in_total"] == 1
        text = dst.request("POST", "/ruleset/import", {"content": json.dumps(ruleset)})
        assert text[::2] == (200, "imported 1 streams, 0 tables and 1 rules")
        last = dst.json("GET", "/rules/myRule/status")[1]["lastStartTimestamp"]
        assert last == before["lastStartTimestamp"]


def test_a_bad_file_changes_nothing(service):
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "keep", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    before = service.json("GET", "/data/export")[1]
    good_stream = 'CREATE STREAM fresh () WITH (DATASOURCE="/fresh")'
    for document, words in (
            ({"streams": {"fresh": good_stream}, "rules": {"r": '{"sql": "SELECT * FROM nope", "actions": '
                                                                 '[{"log": {}}]}'}}, "nope"),
            ({"streams": {"fresh": good_stream, "bad": "CREATE STREAM bad () WITH (DATASORCE=\"/x\")"}},
             "DATASORCE"),
            ({"streams": {"fresh": good_stream}, "rules": {"r": "{not json"}}, "invalid rule json"),
            ({"streams": {"other": good_stream}}, "defines stream 'fresh'"),
            ({"nativePlugins": {"x": "y"}}, "nativePlugins")):
        for path in ("/data/import", "/data/import?partial=1", "/ruleset/import"):
            status, body = service.json("POST", path, {"content": json.dumps(document)})
            assert status == 400 and words in body["message"], (path, body)
            assert service.json("GET", "/data/export")[1] == before
    status, body = service.json("POST", "/data/import", {"content": "{oops"})
    assert status == 400 and body["message"].startswith("configuration unmarshal with error ")
    assert service.json("POST", "/ruleset/import", {"file": "/dev/zero"})[0] == 400  # never read forever
    empty = service.json("POST", "/ruleset/import", {})
    assert empty[1]["message"] == "Invalid body: must specify content or file"


def test_data_import_replaces_and_partial_adds(service):
    # import_export.go: a full import resets first; partial=1 keeps what is not in the file.
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "old", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    fresh = {"streams": {"fresh": 'CREATE STREAM fresh () WITH (DATASOURCE="/fresh")'},
             "rules": {"new": json.dumps({"id": "new", "sql": "SELECT * FROM fresh",
                                          "actions": [{"log": {}}]})}}
    assert service.request("POST", "/data/import?partial=1", {"content": json.dumps(fresh)})[0] == 200
    assert [r["id"] for r in service.json("GET", "/rules")[1]] == ["new", "old"]
    assert service.request("POST", "/data/import", {"content": json.dumps(fresh)})[0] == 200
    assert [r["id"] for r in service.json("GET", "/rules")[1]] == ["new"]
    assert service.json("GET", "/streams")[1] == ["fresh"]


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_have_ekuipers_prometheus_names_and_labels(service):
    # internal/topo/node/metric/prometheus.go (labels rule, type, op, op_instance), metrics/metrics.go
    # (kuiper_rule_status, kuiper_rule_count), docs/en_US/operation/usage/monitor_with_prometheus.md.
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "r1", "sql": "select * from alert where a > 1",
                                              "actions": [{"log": {}}]})[0] == 201
    assert service.request("POST", "/rules", {"id": "idle", "sql": "select * from alert",
                                              "actions": [{"log": {}}], "triggered": False})[0] == 201
    with connect(f"ws://127.0.0.1:{ws_port(service)}/alert", open_timeout=5) as ws:
        ws.send('{"a": 2}')
        ws.send('{"a": 0}')
        service.out.wait_for(r'"a": ?2')

    def labels(op_type, op, rule="r1"):
        return tuple(sorted({"rule": rule, "type": op_type, "op": op, "op_instance": "0"}.items()))

    texts: list[str] = []

    def scrape():
        status, ctype, text = service.request("GET", "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        texts[:] = [text]
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found
    # The second record ({"a": 0}) prints nothing (the WHERE drops it): wait until it is counted.
    samples = {}
    assert wait_until(lambda: samples.update(scrape()) or samples.get(
        ("kuiper_source_records_in_total", labels("source", "alert"))) == 2, timeout=5)
    text = texts[0]

    # a Grafana panel's query: sum by (rule) (kuiper_sink_records_in_total)
    assert samples[("kuiper_source_records_in_total", labels("source", "alert"))] == 2
    assert samples[("kuiper_op_records_in_total", labels("op", "2_filter"))] == 2
    assert samples[("kuiper_op_records_out_total", labels("op", "2_filter"))] == 1
    assert samples[("kuiper_sink_records_in_total", labels("sink", "log_0"))] == 1
    assert samples[("kuiper_sink_exceptions_total", labels("sink", "log_0"))] == 0
    assert samples[("kuiper_source_connection_status", labels("source", "alert"))] == 1
    assert ("kuiper_op_connection_status", labels("op", "2_filter")) not in samples
    assert samples[("kuiper_rule_status", (("rule", "r1"),))] == 1
    assert samples[("kuiper_rule_status", (("rule", "idle"),))] == 0
    assert samples[("kuiper_rule_count", (("status", "running"),))] == 1
    assert samples[("kuiper_rule_count", (("status", "stop"),))] == 1
    # ekws's own series stay, with HELP texts
    assert ("ekws_stream_records_in_total", (("stream", "alert"),)) in samples
    assert "# HELP ekws_stream_records_in_total ekws stream: records received" in text
    # ekws's times in Prometheus' base unit: seconds
    assert samples[("ekws_stream_connection_last_connected_timestamp_seconds", (("stream", "alert"),))] > 1e9
    assert not [name for name, _ in samples if name.startswith("ekws_") and name.endswith(("_ms", "_time"))]


def test_promtool_check_metrics_is_clean(service):
    # docs/en_US/operation/usage/monitor_with_prometheus.md: what Prometheus scrapes must lint clean.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; "
                    ".ci/service-checks.sh installs it)")
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "r1", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    text = service.request("GET", "/metrics")[2]
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=60)
    # eKuiper's own names break two lint rules; they stay, so its dashboards work. Nothing else may.
    inherited = {"kuiper_source_process_latency_us", "kuiper_op_process_latency_us",
                 "kuiper_sink_process_latency_us", "kuiper_rule_count"}
    findings = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert findings, "promtool printed nothing: are eKuiper's families there?"
    assert {line.split()[0] for line in findings} == inherited, findings
    assert out.returncode in (0, 3)  # 3: lint findings only (a parse error is 1)


def test_sink_connectivity_check_dials_as_the_websocket_action_would(service):
    # eKuiper's POST /metadata/sinks/connection/{type} (internal/server/rest.go, connectionHandler's
    # sink side); eKuiper's websocket sink cannot be checked, ekws's really dials.
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "r", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    port = ws_port(service)
    path = "/metadata/sinks/connection/websocket"
    status, body = service.json("POST", path, {"addr": f"127.0.0.1:{port}", "path": "/alert"})
    assert status == 200 and body["message"] == f"ws://127.0.0.1:{port}/alert: connected (HTTP 101)"
    status, body = service.json("POST", path, {"addr": f"127.0.0.1:{port}", "path": "/nobody"})
    assert status == 400 and "HTTP 404" in body["message"]
    status, body = service.json("POST", path, {"address": f"127.0.0.1:{port}", "nope": 1})
    assert status == 400 and "nope" in body["message"]
    status, body = service.json("POST", path, {"addr": ""})  # server mode: this ekws serves it
    assert status == 200 and "served by this ekws" in body["message"]


def test_data_import_errors_are_ekuipers_configuration_map(service):
    # fvt/import_test.go TestImportError: a bad entry's reason in the Configuration map, as the message;
    # a document that is not JSON: "configuration unmarshal with error ...".
    keys = ("streams", "tables", "rules", "nativePlugins", "portablePlugins", "sourceConfig", "sinkConfig",
            "connectionConfig", "Service", "Schema", "uploads", "scripts")
    wrong = {"streams": {"demo": 'CREATE STwREAM demo () WITH (DATASOURCE="/users", FORMAT="JSON")'}}
    for path in ("/data/import?partial=1", "/data/import"):
        status, body = service.json("POST", path, {"content": json.dumps(wrong)})
        assert status == 400 and body["error"] == 1000
        answer = json.loads(body["message"])
        assert list(answer) == list(keys) and list(answer["streams"]) == ["demo"]
        assert "STwREAM" in answer["streams"]["demo"] and all(answer[k] == {} for k in keys[1:])
    status, body = service.json("POST", "/data/import", {"content": '{"streams": {"demo": "CREATE STwREAM'})
    assert status == 400 and body["message"].startswith("configuration unmarshal with error ")


def test_rule_tags_sequence(service):
    # fvt/rulestate_test.go TestRuleTags: add, match, remove, reset.
    post_sql(service, ALERT)
    rule = {"id": "ruleTags", "triggered": False, "sql": "SELECT * FROM alert", "actions": [{"log": {}}],
            "options": {"sendError": False, "bufferLength": 2}}
    assert service.request("POST", "/rules", rule)[0] == 201
    match = {"tags": ["t1", "t2"]}
    assert service.request("PATCH", "/rules/ruleTags/tags", match)[0] == 200
    assert service.json("GET", "/rules/tags/match", match)[1] == {"rules": ["ruleTags"]}
    assert service.request("DELETE", "/rules/ruleTags/tags", {"tags": ["t1"]})[0] == 200
    assert service.json("GET", "/rules/tags/match", match)[1] == {}
    assert service.request("PUT", "/rules/ruleTags/tags", match)[0] == 200
    assert service.json("GET", "/rules/tags/match", match)[1] == {"rules": ["ruleTags"]}
    assert service.json("GET", "/rules")[1][0]["status"] == "stopped"  # tags never start a rule


def test_conf_keys_a_stream_needs_are_checked_before_anything_changes(service):
    # a CONF_KEY that will not exist after the import: refused up front, nothing changed
    post_sql(service, ALERT)
    assert service.request("PUT", "/metadata/sources/websocket/confKeys/plant", {"addr": ""})[0] == 200
    post_sql(service, 'CREATE STREAM fed () WITH (DATASOURCE="/fed", CONF_KEY="plant")')
    before = service.json("GET", "/data/export")[1]
    needs = {"streams": {"x": 'CREATE STREAM x () WITH (DATASOURCE="/x", CONF_KEY="nokey")'}}
    status, body = service.json("POST", "/ruleset/import", {"content": json.dumps(needs)})
    assert status == 400 and "nokey" in body["message"]
    dropped = {**before, "sourceConfig": {}}  # a full import without the key the stream uses
    status, body = service.json("POST", "/data/import", {"content": json.dumps(dropped)})
    assert status == 400 and "plant" in json.loads(body["message"])["streams"]["fed"]
    assert service.json("GET", "/data/export")[1] == before
    assert service.request("POST", "/data/import", {"content": json.dumps(before)})[0] == 200


def test_an_import_that_changes_a_stream_recreates_its_rules(service):
    post_sql(service, ALERT)
    assert service.request("POST", "/rules", {"id": "keep", "sql": "select * from alert",
                                              "actions": [{"log": {}}]})[0] == 201
    moved = 'CREATE stream alert() WITH (DATASOURCE="/alert2", TYPE="websocket")'
    document = json.dumps({"streams": {"alert": moved}})
    assert service.request("POST", "/data/import?partial=1", {"content": document})[0] == 200
    assert service.json("GET", "/streams/alert")[1]["Options"]["datasource"] == "/alert2"
    assert service.json("GET", "/rules")[1][0]["status"] == "running"
    with connect(f"ws://127.0.0.1:{ws_port(service)}/alert2", open_timeout=5) as ws:
        ws.send('{"moved": 1}')
        service.out.wait_for(r'"moved": ?1')


def test_partial_data_export_of_named_rules(service):
    # internal/server/rule_migration.go ConfigurationPartialExport: the rules, their streams, their conf keys.
    assert service.request("PUT", "/metadata/sources/websocket/confKeys/plant", {"addr": ""})[0] == 200
    post_sql(service, 'CREATE STREAM fed () WITH (DATASOURCE="/fed", CONF_KEY="plant")')
    post_sql(service, ALERT)
    for rule_id, stream in (("a", "fed"), ("b", "alert")):
        assert service.request("POST", "/rules", {"id": rule_id, "sql": f"SELECT * FROM {stream}",
                                                  "actions": [{"log": {}}]})[0] == 201
    status, document = service.json("POST", "/data/export", ["a"])
    assert status == 200 and list(document["rules"]) == ["a"] and list(document["streams"]) == ["fed"]
    assert json.loads(document["sourceConfig"]["websocket"]) == {"plant": {"addr": ""}}
    assert service.json("POST", "/data/export", ["nope"])[0] == 404
    assert service.json("POST", "/data/export", {"rules": ["a"]})[0] == 400


def test_a_rule_put_without_its_id_round_trips_idempotently(service):
    post_sql(service, ALERT)
    body = {"sql": "select * from alert", "actions": [{"log": {}}]}
    assert service.request("PUT", "/rules/noid", body)[0] == 200
    document = service.json("GET", "/data/export")[1]
    assert json.loads(document["rules"]["noid"])["id"] == "noid"
    first = service.json("GET", "/rules/noid/status")[1]["lastStartTimestamp"]
    for _ in range(2):
        assert service.request("POST", "/data/import", {"content": json.dumps(document)})[0] == 200
    assert service.json("GET", "/rules/noid/status")[1]["lastStartTimestamp"] == first
