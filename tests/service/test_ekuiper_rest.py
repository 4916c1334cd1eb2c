"""eKuiper's own REST cases, ported to websocket streams, against `ekws run` (a real subprocess).

Each test names the eKuiper file it comes from (lf-edge/ekuiper, v2). Where
eKuiper's case uses another source type (mqtt, httppull), the statement uses
a websocket stream and keeps the rest of the case.
"""

from __future__ import annotations

import json
import sys

import pytest
from helpers.service import Service, write_etc

# internal/processor/stream_test.go TestStreamCreateProcessor: KEY, a trailing comma, nested types.
TOPIC1 = ('CREATE STREAM topic1 (USERID BIGINT, FIRST_NAME STRING, LAST_NAME STRING, '
          'NICKNAMES ARRAY(STRING), Gender BOOLEAN, ADDRESS STRUCT(STREET_NAME STRING, NUMBER BIGINT, '
          'BUILDING STRUCT(NAME STRING, '
          'ROOM BIGINT)),) WITH (DATASOURCE="/users", FORMAT="JSON", KEY="USERID");')
ALERT = 'CREATE stream alert() WITH (DATASOURCE="/alert", TYPE="websocket")'


@pytest.fixture
def service(tmp_path):
    with Service(write_etc(tmp_path, streams=(), rules=[])) as svc:
        yield svc


def post_sql(svc, sql):
    status, _, text = svc.request("POST", "/streams", {"sql": sql})
    return status, text


def test_stream_statements_over_post_streams(service):
    # internal/processor/stream_test.go TestStreamCreateProcessor, through POST /streams
    # (internal/server/rest.go sourcesManageHandler: ExecStreamSql, 201 with its text).
    assert post_sql(service, "SHOW STREAMS;") == (201, "No stream definitions are found.")
    assert post_sql(service, TOPIC1) == (201, "Stream topic1 is created.")
    status, body = service.json("POST", "/streams", {"sql": TOPIC1})
    assert status == 400 and body == {
        "error": 3000, "message": "Stream command error: Create stream fails: Item topic1 already exists."}
    assert post_sql(service, "DESCRIBE STREAM topic1;") == (201, (
        "Fields\n" + "-" * 80 + "\nUSERID\tbigint\nFIRST_NAME\tstring\nLAST_NAME\tstring\nNICKNAMES\t"
        "array(string)\nGender\tboolean\nADDRESS\tstruct(STREET_NAME string, NUMBER bigint, BUILDING "
        "struct(NAME string, ROOM bigint))\n\nDATASOURCE: /users\nFORMAT: JSON\nKEY: USERID\n"
        "TYPE: websocket\n"))
    assert service.json("GET", "/streams/topic1")[1]["Options"]["key"] == "USERID"
    assert post_sql(service, "SHOW STREAMS;") == (201, "topic1")
    assert post_sql(service, "DROP STREAM topic1;") == (201, "Stream topic1 is dropped.")
    status, body = service.json("POST", "/streams", {"sql": "DESCRIBE STREAM topic1;"})
    assert (status, body["error"]) == (400, 3000)
    assert body["message"] == "Stream command error: Describe stream fails, stream topic1 is not found."
    status, body = service.json("POST", "/streams", {"sql": "DROP STREAM topic1;"})
    assert (status, body["error"]) == (400, 3000)
    assert body["message"] == "Stream command error: Drop stream fails: stream topic1 is not found."
    status, body = service.json("POST", "/streams", {"sql": "SELECT * FROM topic1"})
    assert status == 400 and "expected CREATE STREAM, DROP STREAM" in body["message"]


def test_version_and_schemaid_are_kept_and_described(service):
    # pkg/ast/sourceStmt.go Options: VERSION and SCHEMAID are stream options eKuiper stores.
    sql = 'CREATE STREAM v1 () WITH (DATASOURCE="/v", VERSION="1.0.2", SCHEMAID="proto1.Book",)'
    assert post_sql(service, sql) == (201, "Stream v1 is created.")
    options = service.json("GET", "/streams/v1")[1]["Options"]
    assert options["version"] == "1.0.2" and options["schemaid"] == "proto1.Book"


def test_invalid_stream_names_are_refused(service):
    # internal/processor/stream_test.go: `invalid.topic` (pkg/validate.ValidateID).
    status, body = service.json("POST", "/streams", {"sql": 'CREATE STREAM `invalid.topic` () WITH '
                                                            '(DATASOURCE="/x")'})
    assert status == 400 and body["error"] == 3000
    assert ("id 'invalid.topic' contains invalid characters: only alphanumeric, hyphens and underscores "
            "are allowed") in body["message"]
    assert service.json("GET", "/streams") == (200, [])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/streams/invalid%20name"), ("DELETE", "/streams/a.b"), ("PUT", "/streams/a.b"),
     ("GET", "/streams/a.b/schema"), ("GET", "/streams/a.b/status"), ("GET", "/rules/rule3.21"),
     ("DELETE", "/rules/rule%2021"), ("POST", "/rules/a.b/start"), ("GET", "/rules/a.b/status")],
)
def test_invalid_names_on_every_path_are_a_400(service, method, path):
    # pkg/validate.ValidateID is checked on every eKuiper path that takes a name or id.
    status, body = service.json(method, path, {"sql": ALERT} if method == "PUT" else None)
    assert status == 400 and body["error"] == 1000 and "contains invalid characters" in body["message"]


def test_stream_crud_and_errors(service):
    # internal/server/rest_test.go Test_sourcesManageHandler, with a websocket stream.
    assert post_sql(service, ALERT) == (201, "Stream alert is created.")
    status, body = service.json("GET", "/streams/alert")
    assert status == 200 and body["Name"] == "alert" and body["Options"]["datasource"] == "/alert"
    assert service.request("GET", "/streams/alert/schema")[0] == 200
    put = {"sql": 'CREATE stream alert() WITH (DATASOURCE="/alert2", TYPE="websocket")'}
    assert service.request("PUT", "/streams/alert", put)[0] == 200
    assert service.request("DELETE", "/streams/alert")[0] == 200
    # pkg/errorx: NOT_FOUND is 1002 and a 404 (internal/server/rest.go handleError).
    missing = {"error": 1002, "message": "stream topic9 is not found"}
    assert service.json("GET", "/streams/topic9") == (404, missing)
    assert service.json("DELETE", "/streams/topic9")[1]["error"] == 1002


def test_rule_errors(service):
    # internal/server/rest_test.go Test_rulesManageHandler.
    assert post_sql(service, ALERT)[0] == 201
    body = {"id": "rule3/21", "triggered": False, "sql": "select * from alert", "actions": [{"log": {}}]}
    assert service.json("POST", "/rules", body) == (400, {
        "error": 1000, "message": "invalid rule json: id 'rule3/21' contains invalid characters: only "
                                  "alphanumeric, hyphens and underscores are allowed"})
    body = {"id": "rule321", "triggered": False, "sql": "select * from alert", "actions": [{"log": {}}]}
    assert service.request("POST", "/rules", body)[0] == 201
    # an id taken: eKuiper's 400 and words (rest_test.go, "rule test12345 already exists")
    exists = {"error": 1000, "message": "rule rule321 already exists"}
    assert service.json("POST", "/rules", body) == (400, exists)
    # start/stop a rule that does not exist: NOT_FOUND, 404
    for verb in ("start", "stop"):
        status, answer = service.json("POST", f"/rules/non-existence-rule/{verb}")
        assert (status, answer["error"]) == (404, 1002)
    # a rule reads the stream: eKuiper refuses the drop with a 400
    status, answer = service.json("DELETE", "/streams/alert")
    assert status == 400 and "referenced by other rules: rule321" in answer["message"]


def test_put_upserts_and_triggered_is_honoured(service):
    # internal/server/rest_test.go Test_rulesManageHandler: "update rule, will set rule to triggered",
    # GET answers the body with "triggered": true; rule_manager.go UpsertRule creates a new id.
    assert post_sql(service, ALERT)[0] == 201
    body = {"id": "rule321", "triggered": False, "sql": "select * from alert", "actions": [{"log": {}}]}
    assert service.request("POST", "/rules", body)[0] == 201
    # fvt TestRecoverRule: a rule created with triggered false is "stopped" (eKuiper v2's words)
    # internal/server/rule_manager.go GetAllRulesWithStatus: id, name, status, version, trace, tags
    assert service.json("GET", "/rules") == (200, [{"id": "rule321", "name": "rule321", "status": "stopped",
                                                    "version": "", "trace": False, "tags": None}])
    update = {"id": "rule321", "triggered": True, "sql": "select * from alert", "actions": [{"log": {}}]}
    updated = (200, "Rule rule321 was updated successfully.")
    assert service.request("PUT", "/rules/rule321", update)[::2] == updated
    assert service.json("GET", "/rules/rule321") == (200, update)
    assert service.json("GET", "/rules")[1][0]["status"] == "running"
    assert service.request("POST", "/rules/rule321/stop")[::2] == (200, "Rule rule321 was stopped.")
    assert service.json("GET", "/rules/rule321")[1]["triggered"] is False
    assert service.request("POST", "/rules/rule321/restart")[0] == 200
    assert service.json("GET", "/rules/rule321")[1]["triggered"] is True
    # PUT on a new id creates it
    new = {"id": "fresh", "triggered": False, "sql": "select * from alert", "actions": [{"log": {}}]}
    assert service.request("PUT", "/rules/fresh", new)[::2] == (200, "Rule fresh was updated successfully.")
    assert service.json("GET", "/rules/fresh") == (200, new)
    assert service.json("GET", "/rules")[1][0]["id"] == "fresh"
    assert service.json("GET", "/rules")[1][0]["status"] == "stopped"


def test_ekuipers_default_options_are_accepted_and_what_ekws_cannot_honour_is_named(service):
    # The options as eKuiper's `describe rule` prints them (internal/pkg/def/rule.go RuleOption defaults).
    assert post_sql(service, ALERT)[0] == 201
    options = {"debug": False, "logFilename": "", "isEventTime": False, "lateTolerance": "1s",
               "concurrency": 1, "bufferLength": 1024, "sendMetaToSink": False, "sendNilField": False,
               "sendError": False,
               "qos": 0, "checkpointInterval": "5m0s",
               "restartStrategy": {"attempts": 0, "delay": 1000, "multiplier": 2, "maxDelay": 30000,
                                   "jitterFactor": 0.1},
               "cron": "", "duration": "", "cronDatetimeRange": None}
    rule = {"id": "defaults", "sql": "select * from alert", "actions": [{"log": {}}], "options": options}
    assert service.request("POST", "/rules", rule)[0] == 201
    bad = {**rule, "id": "qos2", "options": {"qos": 2, "checkpointInterval": "60s"}}
    status, body = service.json("POST", "/rules", bad)
    assert status == 400 and "options.qos" in body["message"] and "not supported" in body["message"]


def test_describe_shapes_are_ekuipers(service):
    # internal/server/rest_test.go Test_sourcesManageHandler ("get stream": Name, Options, Statement,
    # StreamFields, StreamType), pkg/ast/sourceStmt.go StreamField.MarshalJSON (FieldType, Name,
    # DefaultClause), fvt/rule_test.go TestRuleTypedSchema (every schema entry has "index": 0).
    sql = ('CREATE STREAM typed (id BIGINT, ok BOOLEAN DEFAULT true, tags ARRAY(STRING), '
           'pos STRUCT(x FLOAT)) WITH (DATASOURCE="/typed", FORMAT="json")')
    assert post_sql(service, sql)[0] == 201
    status, body = service.json("GET", "/streams/typed")
    assert status == 200 and set(body) == {"Name", "StreamFields", "Options", "StreamType", "Statement"}
    assert body["StreamType"] == 0 and body["Statement"] == sql
    assert body["StreamFields"] == [
        {"FieldType": "bigint", "Name": "id"},
        {"FieldType": "boolean", "Name": "ok", "DefaultClause": "true"},
        {"FieldType": {"Type": "array", "ElementType": "string"}, "Name": "tags"},
        {"FieldType": {"Type": "struct", "Fields": [{"Name": "x", "FieldType": "float"}]}, "Name": "pos"}]
    assert service.json("GET", "/streams/typed/schema")[1] == {
        "id": {"type": "bigint", "index": 0},
        "ok": {"type": "boolean", "index": 0, "default": "true"},
        "tags": {"type": "array", "items": {"type": "string", "index": 0}, "index": 0},
        "pos": {"type": "struct", "properties": {"x": {"type": "float", "index": 0}}, "index": 0}}
    # internal/processor/stream.go execDescribe: DEFAULT printed as the literal (true, not True)
    assert "ok\tboolean\tDEFAULT\ttrue\n" in post_sql(service, "DESCRIBE STREAM typed")[1]
    assert service.json("GET", "/streamdetails")[1][0]["name"] == "typed"


def test_root_answers_ekuipers_info_to_api_clients_and_the_page_to_browsers(tmp_path):
    # internal/server/rest.go rootHandler: {"version", "os", "arch", "upTimeSeconds", "memoryTotal"}.
    with Service(write_etc(tmp_path, streams=(), rules=[], token="t0k")) as svc:
        auth = {"Authorization": "Bearer t0k"}
        status, ctype, text = svc.request("GET", "/", headers={**auth, "Accept": "*/*"})
        assert status == 200 and ctype.startswith("application/json")
        body = json.loads(text)
        assert set(body) == {"version", "os", "arch", "upTimeSeconds", "memoryTotal"}
        assert body["os"] == {"win32": "windows"}.get(sys.platform, sys.platform)
        assert isinstance(body["upTimeSeconds"], int) and int(body["memoryTotal"]) >= 0
        no_accept = svc.request("GET", "/", headers=auth)  # an API client that sends no Accept
        assert no_accept[1].startswith("application/json")
        assert svc.request("GET", "/")[0] == 401  # the info names the host: the token is needed
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        status, ctype, _ = svc.request("GET", "/", headers=browser)
        assert status == 200 and ctype.startswith("text/html")
