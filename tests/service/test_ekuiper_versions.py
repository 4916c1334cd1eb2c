"""eKuiper's rule ``version`` against `ekws run` (a real subprocess).

From lf-edge/ekuiper v2: internal/pkg/def/rule.go (``Version string``),
internal/processor/rule.go ``CanReplace``, internal/server/rule_manager.go
``UpsertRule`` and ``GetAllRulesWithStatus``, docs/en_US/guide/rules/overview.md
("Versioning").
"""

from __future__ import annotations

import pytest
from helpers.service import Service, write_etc

STREAM = 'CREATE STREAM demo () WITH (DATASOURCE="/demo", FORMAT="JSON")'


@pytest.fixture
def service(tmp_path):
    with Service(write_etc(tmp_path, streams=(), rules=[])) as svc:
        assert svc.request("POST", "/streams", {"sql": STREAM})[0] == 201
        yield svc


def rule(version=None, sql="SELECT * FROM demo"):
    body = {"id": "r1", "sql": sql, "actions": [{"log": {}}]}
    if version is not None:
        body["version"] = version
    return body


def listed(svc):
    status, rules = svc.json("GET", "/rules")
    assert status == 200
    return {r["id"]: r["version"] for r in rules}


def test_version_is_kept_listed_and_described(service):
    assert service.request("POST", "/rules", rule("1700000000"))[0] == 201
    assert listed(service) == {"r1": "1700000000"}
    assert service.json("GET", "/rules/r1")[1]["version"] == "1700000000"


def test_update_needs_a_greater_version(service):
    # rule_manager.go UpsertRule: CanReplace(old, new) is new > old as text, both empty allowed
    assert service.request("POST", "/rules", rule("2"))[0] == 201
    for lower in ("1", "2", ""):  # lower, the same, none where one is stored: refused, nothing changes
        status, body = service.json("PUT", "/rules/r1", rule(lower, "SELECT a FROM demo"))
        assert status == 400 and body["error"] == 1000
        assert body["message"] == f"rule r1 already exists with version (2), new version ({lower}) is lower"
        assert service.json("GET", "/rules/r1")[1] == {**rule("2")}
    assert service.request("PUT", "/rules/r1", rule("3", "SELECT a FROM demo"))[::2] == (
        200, "Rule r1 was updated successfully.")
    assert service.json("GET", "/rules/r1")[1] == rule("3", "SELECT a FROM demo")
    # text, not numbers (docs: "lexically greater"): "10" < "3"
    assert service.json("PUT", "/rules/r1", rule("10"))[0] == 400
    assert listed(service) == {"r1": "3"}


def test_unversioned_rules_update_freely_and_a_version_can_be_added(service):
    assert service.request("POST", "/rules", rule())[0] == 201
    assert listed(service) == {"r1": ""}
    assert service.request("PUT", "/rules/r1", rule(None, "SELECT a FROM demo"))[0] == 200
    assert service.request("PUT", "/rules/r1", rule("1"))[0] == 200  # any version beats none
    assert listed(service) == {"r1": "1"}


def test_tags_of_a_versioned_rule_change_without_a_new_version(service):
    # rule tags are no update of the definition (internal/server/rule_tag.go): no version check
    assert service.request("POST", "/rules", rule("5"))[0] == 201
    assert service.request("PUT", "/rules/r1/tags", {"tags": ["a"]})[0] == 200
    assert service.json("GET", "/rules/r1")[1]["tags"] == ["a"]


def test_a_version_must_be_a_string(service):
    status, body = service.json("POST", "/rules", rule(2))
    assert status == 400 and body["message"].startswith("version: expected a string")
    assert listed(service) == {}
