"""eKuiper's sink conf keys and an action's ``resourceId``, against `ekws run` (a real subprocess)
sending to a real WebSocket server.

From lf-edge/ekuiper v2: internal/server/meta_init.go (``/metadata/sinks/yaml/{name}``,
``/metadata/sinks/{name}/confKeys/{confKey}``), docs/en_US/api/restapi/configKey.md (the
bodies, masked secrets), internal/topo/node/conf/sink.go ``GetSinkConf`` (the key's props, the
action's own over them) and docs/en_US/guide/sinks/overview.md ("Resource Reuse").
"""

from __future__ import annotations

import json
import queue
import re

import pytest
from helpers import common
from helpers.peers import WsPeer
from helpers.service import Service, write_etc
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

STREAM = 'CREATE STREAM demo() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="websocket")'
KEY = "/metadata/sinks/websocket/confKeys/out"


@pytest.fixture
def peer():
    received: queue.Queue = queue.Queue()

    def handler(ws):
        try:
            for message in ws:
                received.put((ws.request.path, json.loads(message)))
        except ConnectionClosed:
            pass

    with WsPeer(handler) as server:
        server.received = received
        yield server


@pytest.fixture
def etc(tmp_path):
    return write_etc(tmp_path, streams=(), rules=[])


def ws_url(svc, path):
    """The shared server's URL for ``path`` as /status names it (port 0: a new port each start)."""
    def serving():
        code, body = svc.json("GET", "/status")
        streams = body.get("streams", ()) if code == 200 else ()
        urls = [s["url"] for s in streams if s.get("url", "").endswith(path)]
        return next((url for url in urls if not re.search(r":0/", url)), None)
    assert common.wait_until(lambda: serving() is not None, 10.0, interval=0.02), svc.err.text
    return serving()


def send(svc, record):
    with connect(ws_url(svc, "/api/data"), open_timeout=5) as ws:
        ws.send(json.dumps(record))


def rule(resource="out", **own):
    action = {"websocket": {"resourceId": resource, **own}}
    return {"id": "r1", "sql": "SELECT * FROM demo", "actions": [action]}


def test_an_action_runs_with_its_conf_keys_props_under_its_own(etc, peer):
    with Service(etc) as svc:
        assert svc.request("POST", "/streams", {"sql": STREAM})[0] == 201
        props = {"addr": peer.addr, "path": "/key", "sendSingle": True,
                 "requestHeader": {"Authorization": "Bearer s3cret"}}
        assert svc.request("PUT", KEY, props)[::2] == (200, "Sink conf key websocket.out is saved.")
        # eKuiper's docs: secrets are shown as "******"
        assert svc.json("GET", "/metadata/sinks/yaml/websocket") == (
            200, {"out": {**props, "requestHeader": {"Authorization": "******"}}})
        assert svc.json("GET", "/metadata/sinks/yaml/mqtt") == (200, {})
        assert svc.request("PUT", KEY, {"addr": peer.addr, "password": 1})[0] == 200  # no rule uses it yet
        assert svc.request("PUT", KEY, props)[0] == 200
        # the action's own path wins over the key's; the body stays as given
        assert svc.request("POST", "/rules", rule(path="/own"))[0] == 201
        assert svc.json("GET", "/rules/r1")[1] == rule(path="/own")
        send(svc, {"a": 1})
        assert peer.received.get(timeout=10) == ("/own", {"a": 1})

        # a PUT reaches the rule at once: sendSingle false sends eKuiper's array
        assert svc.request("PUT", KEY, {**props, "sendSingle": False})[0] == 200
        send(svc, {"a": 2})
        assert peer.received.get(timeout=10) == ("/own", [{"a": 2}])
        # props the rule cannot take are refused, naming the rule; the key is unchanged
        status, body = svc.json("PUT", KEY, {**props, "sendSingle": "often"})
        assert status == 400 and body["message"].startswith("sink conf key websocket.out: rule r1 cannot use")
        assert "sendSingle" in body["message"]
        assert svc.json("GET", "/metadata/sinks/yaml/websocket")[1]["out"]["sendSingle"] is False

    with Service(etc) as svc:  # restored from the store, the key's props with it
        send(svc, {"a": 3})
        assert peer.received.get(timeout=10) == ("/own", [{"a": 3}])
        status, body = svc.json("DELETE", KEY)
        assert status == 400 and body["message"] == (
            "sink conf key websocket.out is used by rule(s) r1; change or drop them first")
        assert svc.request("DELETE", "/rules/r1")[0] == 200
        assert svc.request("DELETE", KEY)[::2] == (200, "Sink conf key websocket.out is deleted.")
        assert svc.json("GET", "/metadata/sinks/yaml/websocket") == (200, {})
        status, body = svc.json("DELETE", KEY)
        assert (status, body["error"]) == (404, 1002)


def test_a_resource_id_naming_no_key_is_refused(etc):
    # eKuiper logs "resource id ... is not found" and runs without the props; ekws refuses the rule
    with Service(etc) as svc:
        assert svc.request("POST", "/streams", {"sql": STREAM})[0] == 201
        status, body = svc.json("POST", "/rules", rule("nope", path="/x"))
        assert status == 400 and body["message"] == (
            "action websocket #0: resourceId: there is no websocket sink conf key 'nope' "
            "(create it with PUT /metadata/sinks/websocket/confKeys/nope)")
        assert svc.json("GET", "/rules") == (200, [])


def test_names_and_bodies_are_checked(etc):
    with Service(etc) as svc:
        status, body = svc.json("PUT", "/metadata/sinks/websocket/confKeys/bad%20key", {"addr": "x:1"})
        assert status == 400 and body["message"].startswith("Invalid confKey: id 'bad key' contains invalid")
        assert svc.json("PUT", "/metadata/sinks/nosuch/confKeys/k", {})[0] == 404
        assert svc.json("GET", "/metadata/sinks/yaml/nosuch")[0] == 404
        assert svc.json("PUT", KEY, [1, 2])[0] == 400
        assert svc.json("PUT", KEY, {"resourceId": "other"})[0] == 400
        assert svc.json("GET", "/metadata/sinks/yaml/websocket") == (200, {})
