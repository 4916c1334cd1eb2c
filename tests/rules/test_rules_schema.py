"""Rules on a typed stream: every field the SQL reads must be declared (unit, REST, CLI, ekws.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.service import ENV, Service, write_etc

from ekws.ddl import parse_stream
from ekws.rules.sql import SQLError, check_fields, parse_query

TYPED = ('CREATE STREAM demo (temperature FLOAT, device STRING, pos STRUCT(x FLOAT, y FLOAT), '
         'readings ARRAY(STRUCT(t BIGINT, v FLOAT)), tags ARRAY(STRING)) WITH (DATASOURCE="/api/data")')
FIELDS = parse_stream(TYPED).fields


def check(sql: str, fields=FIELDS) -> None:
    check_fields(parse_query(sql), fields)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM demo",
    "SELECT temperature, device AS d FROM demo WHERE temperature > 30",
    "SELECT demo.temperature, t.device FROM demo AS t",  # the stream name and alias are prefixes
    "SELECT pos.x, pos->y FROM demo WHERE pos.x > 1",
    "SELECT readings[0].v, readings[1]->t, tags[0] FROM demo",
    "SELECT meta(peer), meta(timestamp) FROM demo WHERE meta(anything) IS NULL",  # meta keys: no fields
    "SELECT lower(device) AS d, temperature * 2 AS t2 FROM demo WHERE device IN ('a', 'b')",
])
def test_declared_fields_pass(sql: str) -> None:
    check(sql)


@pytest.mark.parametrize(("sql", "match"), [
    ("SELECT temperatur FROM demo", r"unknown field 'temperatur': stream 'demo' declares temperature, "
                                    r"device, pos, readings, tags at line 1, column 8"),
    ("SELECT device FROM demo WHERE humidity > 50", r"unknown field 'humidity'.* column 31"),
    ("SELECT device,\n  lower(`odd name`) AS o FROM demo", r"unknown field 'odd name'.* line 2, column 9"),
    ("SELECT pos.z FROM demo", r"unknown field 'pos.z': the STRUCT 'pos' declares x, y at line 1, column 8"),
    ("SELECT demo.pos->z FROM demo", r"unknown field 'pos.z'"),
    ("SELECT readings[0].w FROM demo",
     r"unknown field 'readings\[0\].w': the STRUCT 'readings\[0\]' declares t, v"),
    ("SELECT CASE WHEN nope THEN 1 END AS c FROM demo", "unknown field 'nope'"),
])
def test_unknown_fields_are_named_with_their_position(sql: str, match: str) -> None:
    with pytest.raises(SQLError, match=match):
        check(sql)


def test_schemaless_streams_take_any_field() -> None:
    fields = parse_stream('CREATE STREAM demo () WITH (DATASOURCE="/api/data")').fields
    check("SELECT anything, a.b.c FROM demo WHERE nope > 1", fields)


# --------------------------------------------------------------------------- the service


def test_rest_cli_and_ekws_yaml_refuse_an_unknown_field_of_a_typed_stream(tmp_path) -> None:
    good = {"id": "ok", "sql": "SELECT temperature FROM demo WHERE device = 'a'", "actions": [{"log": {}}]}
    bad = {"id": "bad", "sql": "SELECT temperature, humidity FROM demo", "actions": [{"log": {}}]}
    with Service(write_etc(tmp_path, streams=(), rules=[])) as svc:
        assert svc.request("POST", "/streams", {"sql": TYPED})[0] == 201
        free = 'CREATE STREAM free () WITH (DATASOURCE="/f")'
        assert svc.request("POST", "/streams", {"sql": free})[0] == 201
        status, body = svc.json("POST", "/rules", bad)
        assert status == 400 and "unknown field 'humidity'" in body["message"], body
        assert "line 1, column 21" in body["message"]
        assert svc.json("GET", "/rules") == (200, [])
        assert svc.request("POST", "/rules", good)[0] == 201
        status, body = svc.json("PUT", "/rules/ok", {**good, "sql": "SELECT pos.z FROM demo"})
        assert status == 400 and "unknown field 'pos.z'" in body["message"], body
        assert svc.json("GET", "/rules/ok") == (200, good)  # unchanged
        schemaless = {"id": "any", "sql": "SELECT humidity FROM free WHERE x > 1", "actions": [{"log": {}}]}
        assert svc.request("POST", "/rules", schemaless)[0] == 201
        out = svc.cli("create", "rule", "bad", json.dumps(bad))
        assert out.returncode != 0 and "unknown field 'humidity'" in out.stdout + out.stderr
        assert [r["id"] for r in svc.json("GET", "/rules")[1]] == ["any", "ok"]
        assert svc.stop() == 0
    etc = write_etc(tmp_path / "declared", streams=(TYPED,), rules=[good, bad])
    out = subprocess.run([sys.executable, "-m", "ekws", "run", "-c", str(etc)], capture_output=True,
                         text=True, env=ENV, timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "rules[1]: sql: unknown field 'humidity'" in out.stderr and "(rule 'bad')" in out.stderr
