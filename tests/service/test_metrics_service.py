"""GET /metrics of `ekws run` (a real subprocess), read with prometheus-client's own text parser."""

from __future__ import annotations

import json
import time

from helpers.service import DEMO_RULE, Service, write_etc
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

TOKEN = "m3trics"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrape(svc):
    status, ctype, text = svc.request("GET", "/metrics", headers=AUTH)
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def test_metrics_cover_streams_rules_nodes_and_actions_behind_the_token(tmp_path):
    out = tmp_path / "hot.jsonl"
    hot = {"id": "hot", "sql": "SELECT t FROM websocketDemo WHERE t > 30",
           "actions": [{"file": {"path": str(out)}}, {"log": {}}]}
    with Service(write_etc(tmp_path, token=TOKEN, rules=[DEMO_RULE, hot])) as svc:
        status, _, text = svc.request("GET", "/metrics")
        assert status == 401 and json.loads(text)["error"] == 1000
        with connect(f"ws://127.0.0.1:{svc.ws_port}/api/data", open_timeout=5) as ws:
            for t in (10, 31, 40):
                ws.send(json.dumps({"t": t}))
            deadline = time.monotonic() + 10
            # Every action of both rules counts on its own subscription's thread:
            # wait for the last of them before reading the rest.
            out = "ekws_rule_action_records_out_total"
            settled = {(out, (("action", "file"), ("index", "0"), ("rule", "hot"))): 2,
                       (out, (("action", "log"), ("index", "1"), ("rule", "hot"))): 2,
                       (out, (("action", "log"), ("index", "0"), ("rule", "demoLog"))): 3,
                       ("ekws_stream_buffer_length", (("stream", "websocketDemo"),)): 0}
            while True:
                samples, types = scrape(svc)
                if all(samples.get(key) == value for key, value in settled.items()):
                    break
                assert time.monotonic() < deadline, samples
                time.sleep(0.05)
            stream = (("stream", "websocketDemo"),)
            assert samples[("ekws_stream_records_in_total", stream)] == 3
            assert samples[("ekws_stream_connection_status", stream)] == 1
            assert samples[("ekws_stream_connections", stream)] == 1
            assert samples[("ekws_stream_buffer_length", stream)] == 0
            assert samples[("ekws_rule_running", (("rule", "hot"),))] == 1
            assert samples[("ekws_rule_running", (("rule", "demoLog"),))] == 1
            assert samples[("ekws_rule_last_start_timestamp_seconds", (("rule", "hot"),))] > 1e9
            source = (("rule", "hot"), ("stream", "websocketDemo"))
            assert samples[("ekws_rule_source_records_in_total", source)] == 3
            filter_ = (("op", "filter"), ("rule", "hot"))
            assert samples[("ekws_rule_op_records_in_total", filter_)] == 3
            assert samples[("ekws_rule_op_records_out_total", filter_)] == 2
            log = (("action", "log"), ("index", "1"), ("rule", "hot"))
            assert samples[("ekws_rule_action_records_out_total", log)] == 2
            assert samples[("ekws_rule_action_exceptions_total", log)] == 0
            demo_log = (("action", "log"), ("index", "0"), ("rule", "demoLog"))
            assert samples[("ekws_rule_action_records_out_total", demo_log)] == 3
        assert types["ekws_stream_records_in"] == "counter" and types["ekws_stream_buffer_length"] == "gauge"
        assert types["ekws_rule_running"] == "gauge" and types["ekws_rule_action_records_out"] == "counter"
        assert svc.request("POST", "/rules/hot/stop", headers=AUTH)[0] == 200
        samples, _ = scrape(svc)
        assert samples[("ekws_rule_running", (("rule", "hot"),))] == 0
        assert svc.stop() == 0
    assert TOKEN not in svc.err.text
