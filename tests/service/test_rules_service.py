"""Rules in `ekws run` (a real subprocess): eKuiper's REST paths and bodies, persistence, ekws.yaml."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import time

import pytest
from helpers import common
from helpers.service import DEMO_RULE, ENV, REPO, Service, log_rule, write_etc
from websockets.sync.client import connect

S2 = 'CREATE STREAM s2() WITH (DATASOURCE="/s2")'
# eKuiper's docs: the first rule, and the manager tutorial's projection and filter.
SELECT_STAR = {"id": "rule1", "sql": "SELECT * FROM demo", "actions": [{"log": {}}]}
PROJECTION = "SELECT temperature, humidity FROM demo WHERE temperature > 30"
DEMO_STREAM = 'CREATE STREAM demo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'


def rule_list(svc):
    """GET /rules with each item cut to id and status (eKuiper's other keys are tested in test_ekuiper_*)."""
    status, listed = svc.json("GET", "/rules")
    return status, [{"id": item["id"], "status": item["status"]} for item in listed]


def wait_until(predicate, timeout=10.0):
    return common.wait_until(predicate, timeout, interval=0.02)


def read_lines(path):
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def ws_url(svc, path):
    """The shared server's URL for ``path`` now, as the service reports it.

    On port 0 each (re)start of the server picks a new port; /status names the
    one serving now (the log line may reach us after the REST answer).
    """
    def serving():
        code, body = svc.json("GET", "/status")
        streams = body.get("streams", ()) if code == 200 else ()
        urls = [s["url"] for s in streams if s.get("url", "").endswith(path)]
        return next((url for url in urls if not re.search(r":0/", url)), None)
    assert wait_until(lambda: serving() is not None), svc.err.text
    return serving()


def refused(port):
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def service(tmp_path):
    with Service(write_etc(tmp_path, streams=(), rules=[])) as svc:
        assert svc.request("POST", "/streams", {"sql": DEMO_STREAM})[0] == 201
        yield svc


def test_ekuipers_doc_rules_over_rest_carry_a_real_clients_records_to_files(service, tmp_path):
    star, hot = tmp_path / "star.jsonl", tmp_path / "hot.jsonl"
    body = {**SELECT_STAR, "actions": [{"file": {"path": str(star)}}]}
    status, ctype, text = service.request("POST", "/rules", body)
    assert (status, text) == (201, "Rule rule1 was created successfully.") and ctype.startswith("text/plain")
    rule = {"id": "rule_temp_alert", "sql": PROJECTION, "actions": [{"file": {"path": str(hot)}}]}
    created = service.request("POST", "/rules", rule)[::2]
    assert created == (201, "Rule rule_temp_alert was created successfully.")
    records = [{"temperature": 34.5, "humidity": 60.2, "device": "a"}, {"temperature": 20, "humidity": 10},
               {"temperature": 31, "device": "c"}]
    with connect(ws_url(service, "/api/data"), open_timeout=5) as ws:
        for record in records:
            ws.send(json.dumps(record))
        assert wait_until(lambda: len(read_lines(star)) == 3 and len(read_lines(hot)) == 2)
    # As eKuiper writes them: a line a message, the JSON array of its rows (sendSingle false), and no
    # null columns (sendNilField false).
    assert read_lines(star) == [[record] for record in records]
    assert read_lines(hot) == [[{"temperature": 34.5, "humidity": 60.2}], [{"temperature": 31}]]
    assert rule_list(service) == (200, [{"id": "rule1", "status": "running"},
                                                   {"id": "rule_temp_alert", "status": "running"}])
    assert service.json("GET", "/rules/rule_temp_alert") == (200, rule)
    status, flat = service.json("GET", "/rules/rule_temp_alert/status")
    assert status == 200 and flat["status"] == "running" and flat["message"] == ""
    assert flat["lastStartTimestamp"] > 0
    assert flat["source_demo_0_records_in_total"] == 3 and flat["source_demo_0_connection_status"] == 1
    assert flat["op_2_filter_0_records_out_total"] == 2 and flat["op_3_project_0_records_out_total"] == 2
    assert flat["sink_file_0_0_records_out_total"] == 2 and flat["sink_file_0_0_exceptions_total"] == 0


def test_the_getting_started_window_rule_over_rest_writes_one_average_per_window(service, tmp_path):
    # eKuiper's getting-started rule, verbatim, fed by a real WebSocket client.
    out = tmp_path / "avg.jsonl"
    sql = ("SELECT count(*), avg(temperature) as avg_temp, max(humidity) as max_hum from demo "
           "group by TUMBLINGWINDOW(ss, 5) HAVING avg_temp > 30;")
    status, _, text = service.request("POST", "/rules", {"id": "myRule", "sql": sql,
                                                         "actions": [{"file": {"path": str(out)}}]})
    assert (status, text) == (201, "Rule myRule was created successfully.")
    url = ws_url(service, "/api/data")
    if time.time() % 5 > 3.5:  # send early in a window (they end at multiples of 5 s), so all land in one
        time.sleep(5.05 - time.time() % 5)
    with connect(url, open_timeout=5) as ws:
        for record in ({"temperature": 30, "humidity": 40}, {"temperature": 35.5, "humidity": 80},
                       {"temperature": 31, "humidity": 60}):
            ws.send(json.dumps(record))
        assert wait_until(lambda: read_lines(out), timeout=8)
    # eKuiper's file sink writes an emission as one JSON array (sendSingle false)
    assert read_lines(out) == [[{"count": 3, "avg_temp": 32.166666666666664, "max_hum": 80}]]
    status, flat = service.json("GET", "/rules/myRule/status")
    assert flat["op_2_window_0_records_in_total"] == 3 and flat["sink_file_0_0_records_out_total"] == 1
    status, body = service.json("POST", "/rules", {"id": "w", "sql": "SELECT count(*) FROM demo",
                                                   "actions": [{"log": {}}]})
    assert status == 400 and "COUNT needs a window" in body["message"] and "column 8" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/rules", None, 400, "body is empty"),
        ("POST", "/rules", [1], 400, "must be a JSON object"),
        ("POST", "/rules", {"id": "x", "sql": "SELECT * FROM nope", "actions": [{"log": {}}]}, 400,
         "stream 'nope' does not exist"),
        ("POST", "/rules", {"id": "x", "sql": "SELECT * FROM demo", "actions": [{"nope": {}}]}, 400,
         "unknown action kind"),
        ("POST", "/rules", {"id": "x", "sql": "SELECT * FROM demo"}, 400, "actions"),
        ("POST", "/rules", {"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}, 400, "needs an id"),
        ("POST", "/rules", {"id": "x", "graph": {}}, 400, "graph rules are not supported"),
        ("POST", "/rules", {"id": "x", "sql": "SELECT nope(a) FROM demo", "actions": [{"log": {}}]}, 400,
         "function nope not found"),
        ("POST", "/rules", {"id": "x", "sql": "SELECT upper(a, b) FROM demo", "actions": [{"log": {}}]}, 400,
         "upper: Expect 1 arguments but found 2."),
        ("GET", "/rules/nope", None, 404, "nope"),
        ("PUT", "/rules/nope", SELECT_STAR, 400, "differs from the rule id"),
        ("DELETE", "/rules/nope", None, 404, "nope"),
        ("POST", "/rules/nope/start", None, 404, "nope"),
        ("POST", "/rules/nope/stop", None, 404, "nope"),
        ("POST", "/rules/nope/restart", None, 404, "nope"),
        ("GET", "/rules/nope/status", None, 404, "nope"),
        ("GET", "/rules/nope/start", None, 405, "GET is not allowed"),
    ],
)
def test_rule_errors_are_ekuipers_json_shape(service, method, path, body, status, message):
    got, ctype, text = service.request(method, path, body)
    assert got == status and ctype == "application/json", text
    code = 1002 if status == 404 else 1000  # eKuiper's pkg/errorx codes
    assert json.loads(text)["error"] == code and message in json.loads(text)["message"], text


def test_lifecycle_update_drop_and_the_stream_drop_check(service, tmp_path):
    assert service.request("POST", "/rules", SELECT_STAR)[0] == 201
    exists = {"error": 1000, "message": "rule rule1 already exists"}  # eKuiper's 400 (rest_test.go)
    assert service.json("POST", "/rules", SELECT_STAR) == (400, exists)
    assert service.request("POST", "/rules/rule1/stop")[::2] == (200, "Rule rule1 was stopped.")
    assert rule_list(service) == (200, [{"id": "rule1", "status": "stopped"}])
    status, flat = service.json("GET", "/rules/rule1/status")
    assert flat["status"] == "stopped" and flat["lastStopTimestamp"] >= flat["lastStartTimestamp"] > 0
    assert service.request("POST", "/rules/rule1/start")[::2] == (200, "Rule rule1 was started")
    assert rule_list(service)[1] == [{"id": "rule1", "status": "running"}]
    first = service.json("GET", "/rules/rule1/status")[1]["lastStartTimestamp"]
    time.sleep(0.01)
    assert service.request("POST", "/rules/rule1/restart")[::2] == (200, "Rule rule1 was restarted")
    assert service.json("GET", "/rules/rule1/status")[1]["lastStartTimestamp"] > first
    # A stream a rule reads cannot be dropped (eKuiper's check).
    status, body = service.json("DELETE", "/streams/demo")
    assert status == 400 and "referenced by other rules: rule1" in body["message"]  # eKuiper's 400
    # PUT replaces the definition; the running rule restarts with it.
    out = tmp_path / "out.jsonl"
    new = {"id": "rule1", "sql": "SELECT temperature AS t FROM demo",
           "actions": [{"file": {"path": str(out)}}]}
    assert service.request("PUT", "/rules/rule1", new)[::2] == (200, "Rule rule1 was updated successfully.")
    assert service.json("GET", "/rules/rule1") == (200, new)
    with connect(ws_url(service, "/api/data"), open_timeout=5) as ws:
        ws.send('{"temperature": 5, "x": 1}')
        assert wait_until(lambda: read_lines(out) == [[{"t": 5}]])  # eKuiper's default: an array
    status, body = service.json("PUT", "/rules/rule1", {**new, "id": "other"})
    assert status == 400 and "differs" in body["message"]
    # A stream replaced under a running rule: the rule follows it.
    replaced = DEMO_STREAM.replace("/api/data", "/moved")
    assert service.request("PUT", "/streams/demo", {"sql": replaced})[0] == 200
    assert service.json("GET", "/rules/rule1/status")[1]["status"] == "running"
    with connect(ws_url(service, "/moved"), open_timeout=5) as ws:
        ws.send('{"temperature": 6}')
        assert wait_until(lambda: read_lines(out) == [[{"t": 5}], [{"t": 6}]])
    assert service.request("DELETE", "/rules/rule1")[::2] == (200, "Rule rule1 is dropped.")
    assert rule_list(service) == (200, [])
    assert service.request("DELETE", "/streams/demo")[0] == 200


def test_the_last_rule_stopping_stops_the_shared_server(tmp_path):
    with Service(write_etc(tmp_path, streams=(S2,), rules=[])) as svc:
        assert "server-mode paths: none" in svc.err.text
        assert svc.request("POST", "/rules", log_rule("s2", "a"))[0] == 201
        assert svc.request("POST", "/rules", log_rule("s2", "b"))[0] == 201
        port = int(svc.err.wait_for(r"listening on ws://127.0.0.1:(\d+)").group(1))
        with connect(f"ws://127.0.0.1:{port}/s2", open_timeout=5) as ws:
            ws.send('{"n": 1}')
            svc.out.wait_count(2)  # both rules print it
        assert svc.request("POST", "/rules/a/stop")[0] == 200
        with connect(f"ws://127.0.0.1:{port}/s2", open_timeout=5):
            pass  # one rule still reads s2
        assert svc.request("POST", "/rules/b/stop")[0] == 200
        assert wait_until(lambda: refused(port)), "the shared server still accepts connections"
        assert svc.json("GET", "/streams/s2/status")[1]["subscriptions"] == 0
        assert svc.stop() == 0


def test_rules_come_back_after_sigterm_and_kill_9_in_their_last_state(tmp_path):
    etc = write_etc(tmp_path, streams=(DEMO_STREAM,), rules=[])
    with Service(etc) as svc:
        assert svc.request("POST", "/rules", SELECT_STAR)[0] == 201
        assert svc.request("POST", "/rules", {**SELECT_STAR, "id": "off"})[0] == 201
        assert svc.request("POST", "/rules", {**SELECT_STAR, "id": "never", "triggered": False})[0] == 201
        assert svc.request("POST", "/rules/off/stop")[0] == 200
        assert svc.stop() == 0
    expected = [{"id": "never", "status": "stopped"},
                {"id": "off", "status": "stopped"}, {"id": "rule1", "status": "running"}]
    with Service(etc) as svc:
        assert rule_list(svc) == (200, expected)
        assert svc.json("GET", "/rules/rule1")[1] == SELECT_STAR
        with connect(ws_url(svc, "/api/data"), open_timeout=5) as ws:  # the restored rule mounted it
            ws.send('{"back": 1}')
            assert json.loads(svc.out.wait_for(r'"back"').string)["data"] == {"back": 1}
        assert svc.request("POST", "/rules/rule1/stop")[0] == 200
        assert svc.request("POST", "/rules/never/start")[0] == 200
        assert svc.request("DELETE", "/rules/off")[0] == 200
        svc.stop(signal.SIGKILL)
    db = sqlite3.connect(str(tmp_path / "data" / "ekws.db"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Service(etc) as svc:
        assert rule_list(svc) == (200, [{"id": "never", "status": "running"},
                                                   {"id": "rule1", "status": "stopped"}])
        assert svc.stop() == 0


def test_declared_rules_win_a_clash_are_read_only_and_a_bad_one_is_named(tmp_path):
    stored = {"id": "demoLog", "sql": "SELECT n FROM websocketDemo", "actions": [{"log": {}}]}
    with Service(write_etc(tmp_path, rules=[])) as svc:
        assert svc.request("POST", "/rules", stored)[0] == 201
        assert svc.stop() == 0
    short = {"id": "short", "stream": "websocketDemo", "actions": [{"log": {}}], "triggered": False}
    with Service(write_etc(tmp_path, rules=[DEMO_RULE, short])) as svc:
        assert "rule demoLog from the store is shadowed by" in svc.err.text
        assert svc.json("GET", "/rules/demoLog") == (200, DEMO_RULE)
        assert rule_list(svc)[1] == [{"id": "demoLog", "status": "running"},
                                                {"id": "short", "status": "stopped"}]
        for method, path, body in (("PUT", "/rules/demoLog", DEMO_RULE), ("DELETE", "/rules/demoLog", None),
                                   ("POST", "/rules", DEMO_RULE)):
            status, answer = svc.json(method, path, body)
            assert status == 409 and ("declared in" in answer["message"] or "exists" in answer["message"])
        assert svc.request("POST", "/rules/short/start")[0] == 200  # start/stop are allowed
        with connect(ws_url(svc, "/api/data"), open_timeout=5) as ws:
            ws.send('{"n": 7}')
            svc.out.wait_count(2)  # one line from each rule
        assert svc.stop() == 0
    with Service(write_etc(tmp_path, rules=[])) as svc:  # removed from the file: the stored one is back
        assert svc.json("GET", "/rules/demoLog") == (200, stored)
        assert svc.stop() == 0
    bad = write_etc(tmp_path, rules=[DEMO_RULE, {"id": "w", "sql": "SELECT avg(n) FROM websocketDemo",
                                                 "actions": [{"log": {}}]}])
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(bad)], capture_output=True,
                         text=True, env=ENV, timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"ekws: {bad / 'ekws.yaml'}: rules[1]: sql: the aggregate function AVG" in out.stderr


def test_sigterm_delivers_what_the_rules_received_to_their_actions(tmp_path):
    """A slow action keeps records waiting in the rule's buffer at SIGTERM; all reach the file."""
    (tmp_path / "slowsink.py").write_text("import time\n\ndef slow(msg):\n    time.sleep(0.002)\n")
    out = tmp_path / "all.jsonl"
    rule = {"id": "all", "sql": "SELECT n FROM websocketDemo WHERE n >= 0",
            "actions": [{"python": {"callable": "slowsink:slow"}},
                        {"file": {"path": str(out), "sendSingle": True}}]}
    count = 600
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    with Service(write_etc(tmp_path, rules=[rule]), env=env) as svc, \
            connect(ws_url(svc, "/api/data"), open_timeout=5) as ws:
        for n in range(count):
            ws.send(json.dumps({"n": n, "pad": "p" * 100}))
        assert wait_until(lambda: svc.json("GET", "/streams/websocketDemo/status")[1]["records_in_total"]
                          == count)
        assert svc.json("GET", "/streams/websocketDemo/status")[1]["buffer_length"] > 0
        assert svc.stop() == 0
    assert [r["n"] for r in read_lines(out)] == list(range(count))
    assert "WARNING" not in svc.err.text


def test_a_rule_that_cannot_start_is_created_stopped_with_the_reason_and_start_is_a_400(service, tmp_path):
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    rule = {"id": "broken", "sql": "SELECT * FROM demo", "actions": [{"file": {"path": str(missing)}}]}
    assert service.request("POST", "/rules", rule)[::2] == (201, "Rule broken was created successfully.")
    status, listed = rule_list(service)
    assert listed[0]["id"] == "broken" and listed[0]["status"] == "stopped by error"  # eKuiper v2's words
    status, body = service.json("POST", "/rules/broken/start")
    assert status == 400 and body["message"].startswith("rule broken did not start: ")
    assert "no-such-dir" in body["message"]
    flat = service.json("GET", "/rules/broken/status")[1]
    assert flat["status"] == "stopped by error" and "no-such-dir" in flat["message"]
    missing.parent.mkdir()
    assert service.request("POST", "/rules/broken/start")[0] == 200
    assert rule_list(service)[1] == [{"id": "broken", "status": "running"}]
