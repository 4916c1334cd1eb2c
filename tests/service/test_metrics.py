"""The Prometheus renderer, read back by prometheus-client's own text parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.server import create_sql, wait_until, write_etc, ws_connect
from prometheus_client.parser import text_string_to_metric_families

import ekws
from ekws.rules.manager import RuleManager
from ekws.service.metrics import CONTENT_TYPE, render


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_render_types_labels_and_escaping() -> None:
    text = render([
        ("stream", {"stream": 'odd "name"\\\n'}, {"records_in_total": 3, "connection_status": -1,
                                                  "last_exception": "boom", "state": "connected",
                                                  "buffer_length": 0, "ratio": 0.25, "flag": True,
                                                  "missing": None}),
        ("stream", {"stream": "demo"}, {"records_in_total": 5, "connection_status": 1}),
    ])
    samples = parse(text)
    odd = (("stream", 'odd "name"\\\n'),)
    assert samples[("ekws_stream_records_in_total", odd)] == 3
    assert samples[("ekws_stream_records_in_total", (("stream", "demo"),))] == 5
    assert samples[("ekws_stream_connection_status", odd)] == -1
    assert samples[("ekws_stream_ratio", odd)] == 0.25
    assert samples[("ekws_stream_flag", odd)] == 1
    assert not any("last_exception" in name or "state" in name or "missing" in name for name, _ in samples)
    kinds = types(text)
    assert kinds["ekws_stream_records_in"] == "counter"
    assert kinds["ekws_stream_connection_status"] == "gauge"
    assert text.count("# TYPE ekws_stream_records_in_total counter") == 1  # one family, both samples
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_render_nothing_is_empty() -> None:
    assert render([]) == ""
    assert list(text_string_to_metric_families(render([("x", {}, {"s": "text"})]))) == []


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ekws.Runtime]:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/api/data"))
        yield rt


def test_streams_and_rules_render_and_parse(runtime: ekws.Runtime, tmp_path: Path) -> None:
    rules = RuleManager(runtime)
    try:
        rules.create({"id": "r1", "sql": "SELECT a FROM demo WHERE a > 1",
                      "actions": [{"log": {}}, {"file": {"path": str(tmp_path / "o.jsonl")}}]})
        address = runtime.server_address
        assert address is not None
        with ws_connect(f"ws://127.0.0.1:{address[1]}/api/data") as ws:
            for n in range(4):
                ws.send(json.dumps({"a": n}))
        assert wait_until(lambda: rules.status("r1")["sink_file_1_0_records_out_total"] == 2)
        text = render([("stream", {"stream": name}, runtime.status(name)) for name in runtime.streams()]
                      + rules.metrics())
        samples = parse(text)
        assert samples[("ekws_stream_records_in_total", (("stream", "demo"),))] == 4
        assert samples[("ekws_stream_connection_status", (("stream", "demo"),))] == 1
        assert samples[("ekws_rule_running", (("rule", "r1"),))] == 1
        assert samples[("ekws_rule_source_records_in_total", (("rule", "r1"), ("stream", "demo")))] == 4
        assert samples[("ekws_rule_op_records_out_total", (("op", "filter"), ("rule", "r1")))] == 2
        assert samples[("ekws_rule_action_records_out_total",
                        (("action", "file"), ("index", "1"), ("rule", "r1")))] == 2
        assert samples[("ekws_rule_action_exceptions_total",
                        (("action", "log"), ("index", "0"), ("rule", "r1")))] == 0
        assert types(text)["ekws_rule_action_records_out"] == "counter"
    finally:
        rules.close()
