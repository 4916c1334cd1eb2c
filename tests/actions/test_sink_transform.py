"""The pure half of the common sink layer: dataTemplate, dataField, fields, and their props.

Cases ported from eKuiper name their source: ``internal/topo/transform/template_test.go``
(``Test_SelectMap``, ``TestTransItem``), ``docs/en_US/guide/sinks/data_template.md`` and
``docs/en_US/guide/sinks/overview.md``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import ekws
from ekws.actions import ActionError, parse_action
from ekws.actions.sink import SinkConf, select, trans_item, transform
from ekws.actions.template import TemplateError, compile_template, go_float

PEER = ekws.Peer("demo", "", "", 0)
DOC_INPUT = [{"ab": "hello1"}, {"ab": "hello2"}]  # data_template.md "Simple Template"


def render(template: str, data: Any) -> str:
    return compile_template(template).render(data)


# --------------------------------------------------------------------------- data_template.md


@pytest.mark.parametrize(("template", "data", "expected"), [
    # sendSingle=true mode
    ('{"content":{{json .}}}', DOC_INPUT[0], '{"content":{"ab":"hello1"}}'),
    ('{"content":{{.ab}}}', DOC_INPUT[0], '{"content":hello1}'),
    ('{"content":"{{.ab}}"}', DOC_INPUT[0], '{"content":"hello1"}'),
    ("{{toJson .}}", DOC_INPUT[0], '{"ab":"hello1"}'),
    # sendSingle=false mode
    ('{"content":{{json .}}}', DOC_INPUT, '{"content":[{"ab":"hello1"},{"ab":"hello2"}]}'),
    ('{"content":{{json (index . 0)}}}', DOC_INPUT, '{"content":{"ab":"hello1"}}'),
    ('{"content":{{index . 0 "ab"}}}', DOC_INPUT, '{"content":hello1}'),
    ("<div>results</div><ul>{{range .}}<li>{{.ab}}</li>{{end}}</ul>", DOC_INPUT,
     "<div>results</div><ul><li>hello1</li><li>hello2</li></ul>"),
    # overview.md "Dynamic properties": the topic of the first row
    ('prefix/{{index . 0 "topic"}}', [{"topic": "t1"}], "prefix/t1"),
])
def test_data_template_doc_examples(template: str, data: Any, expected: str) -> None:
    assert render(template, data) == expected


def test_data_template_doc_content_conversion() -> None:
    # data_template.md "Data content conversion": if lt / else if ge, one record at a time
    template = ('{"device_id": {{.device_id}}, "description": "{{if lt .t_av 30.0}}Current temperature is '
                '{{.t_av}}, it\'s normal."{{else if ge .t_av 30.0}}Current temperature is {{.t_av}}, '
                'it\'s high."{{end}}}')
    rows = [{"device_id": "1", "t_av": 36.25, "t_count": 4, "t_max": 80, "t_min": 10},
            {"device_id": "2", "t_av": 27, "t_count": 4, "t_max": 45, "t_min": 12}]
    out = [render(template, row) for row in rows]
    assert out == ['{"device_id": 1, "description": "Current temperature is 36.25, it\'s high."}',
                   '{"device_id": 2, "description": "Current temperature is 27, it\'s normal."}']


def test_data_template_doc_traversal() -> None:
    # data_template.md "Data traversal": len, add, range $index, $ele, nested if, eq
    template = ('{{$len := len .values}} {{$loopsize := add $len -1}} {"device_id": "{{.device_id}}", '
                '"description": [{{range $index, $ele := .values}} {{if le .temperature 25.0}}"fine"'
                '{{else if gt .temperature 25.0}}"high"{{end}} {{if eq $loopsize $index}}]{{else}},{{end}}'
                "{{end}}}")
    data = {"device_id": "1", "values": [{"temperature": 10.5}, {"temperature": 20.3}, {"temperature": 30.3}]}
    out = render(template, data)
    assert json.loads(out) == {"device_id": "1", "description": ["fine", "fine", "high"]}
    assert out == '  {"device_id": "1", "description": [ "fine" , "fine" , "high" ]}'  # Go's spaces too


def test_template_actions_and_values_print_as_go_does() -> None:
    data = {"a": 1, "f": 2.0, "big": 1e21, "small": 0.00001, "mil": 1234567.0, "t": True, "n": None,
            "m": {"b": 2, "a": 1}, "l": [1, "x", None], "s": "x"}
    assert render("{{.a}} {{.f}} {{.big}} {{.small}} {{.mil}} {{.t}} {{.n}} {{.missing}}", data) == \
        "1 2 1e+21 1e-05 1.234567e+06 true <no value> <no value>"
    assert render("{{.m}} {{.l}}", data) == "map[a:1 b:2] [1 x <nil>]"
    assert render("{{with .m}}{{.a}}{{end}}{{with .missing}}no{{else}}none{{end}}", data) == "1none"
    assert render("{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}", data) == "a=1;b=2;"  # sorted, as Go
    assert render("{{range .nothing}}x{{else}}empty{{end}}|{{range 3}}{{.}}{{end}}", data) == "empty|012"
    assert render("{{- /* a comment */ -}}  {{.s}}  {{- .s -}}  !", data) == "xx!"
    assert render('{{if and .t (not .n)}}yes{{end}} {{or .n .missing "d"}} {{.s | upper | printf "%q"}}',
                  data) == 'yes d "X"'
    assert render('{{$x := 1}}{{if .t}}{{$x = 2}}{{end}}{{$x}} {{$.s}}', data) == "2 x"
    assert render('{{printf "%05.1f|%d|%s|%v" 3.14159 7 "s" .l}}', data) == "003.1|7|s|[1 x <nil>]"
    assert render("{{base64 .s}} {{b64enc .m}} {{len .l}} {{index .l 1}} {{default 5 .n}}", data) == \
        'eA== eyJiIjoyLCJhIjoxfQ== 3 x 5'
    assert render("{{add 1 2 3}} {{sub 5 7}} {{mul 2 3}} {{div 7 2}} {{mod 7 3}} {{add1 .f}}", data) == \
        "6 -2 6 3 1 3"  # sprig's integer arithmetic
    assert render('{{(index .l 0)}} {{lt .a 1.5}} {{eq .s "x" "y"}} {{ne .a 2}}', data) == "1 true true true"


def test_go_float_matches_fmt_print() -> None:
    cases = {36.25: "36.25", 27.0: "27", 100000.0: "100000", 1e6: "1e+06", 0.0001: "0.0001",
             1e-5: "1e-05", -2.5: "-2.5", 123456789.0: "1.23456789e+08", 0.1: "0.1"}
    assert {value: go_float(value) for value in cases} == cases


@pytest.mark.parametrize(("template", "error"), [
    ('{{template "x"}}', "{{template}} is not supported"),
    ('{{define "x"}}y{{end}}', "{{define}} is not supported"),
    ("{{range .}}{{break}}{{end}}", "{{break}} is not supported"),
    ("{{sha256sum .}}", "function 'sha256sum' is not supported by ekws's template subset"),
    ("{{.a | regexFind \"x\"}}", "function 'regexFind' is not supported"),
    ("{{if .a}}x", "a {{end}} is missing"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{.a", "unclosed action"),
    ("{{.a 1}}", "can't give argument to non-function"),
    ("{{(.a}}", "unclosed left paren"),
])
def test_unsupported_templates_are_refused_by_name(template: str, error: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(error)):
        compile_template(template)


def test_a_bad_template_is_refused_when_the_rule_is_created() -> None:
    with pytest.raises(ActionError, match=r"action log #0: dataTemplate: function 'now' is not supported"):
        parse_action({"log": {"dataTemplate": "{{now}}"}}, 0)


def test_template_errors_at_run_time_name_the_cause() -> None:
    with pytest.raises(TemplateError, match="index out of range: 5"):
        render("{{index . 5}}", [1])
    with pytest.raises(TemplateError, match="incompatible types for comparison"):
        render('{{lt .a "x"}}', {"a": 1})


# --------------------------------------------------------------------------- template_test.go


@pytest.mark.parametrize(("data", "fields", "exclude", "want"), [
    # Test_SelectMap: test1, test2, test4, test ex1, test ex2
    ({"a": 1, "b": 2, "c": 3}, ("a", "b"), None, {"a": 1, "b": 2}),
    ([{"a": 1, "b": 2, "c": 3}], ("a", "b"), None, [{"a": 1, "b": 2}]),
    ([{"a": 1, "b": 2, "c": 3}], None, None, [{"a": 1, "b": 2, "c": 3}]),
    ({"a": 1, "b": 2, "c": 3}, None, ("c",), {"a": 1, "b": 2}),
    ([{"a": 1, "b": 2, "c": 3}], None, ("a",), [{"b": 2, "c": 3}]),
])
def test_select_map(data: Any, fields: Any, exclude: Any, want: Any) -> None:
    assert select(data, fields, exclude) == want


def test_select_map_keeps_bytes_untouched() -> None:
    # Test_SelectMap test5: no fields, []byte input
    assert select(b'{"a": 1, "b": 2, "c": 3}', None, None) == b'{"a": 1, "b": 2, "c": 3}'


DEVICE = {"device": {"device_id": 1, "device_temperature": 31.2, "device_humidity": 80}, "ts": 1625040000}
TAGS = {"f3": "f3tagValue", "f4": "f4tagValue"}
TELEMETRY = [{"temperature": 32.32, "humidity": 80.8, **TAGS, "ts": 1388082430},
             {"temperature": 34.32, "humidity": 81.8, **TAGS, "ts": 1388082440}]


@pytest.mark.parametrize(("data", "data_field", "fields", "exclude", "want"), [
    # TestTransItem test1: a map, dataField then fields
    (DEVICE, "device", ("device_temperature", "device_humidity"), None,
     {"device_temperature": 31.2, "device_humidity": 80}),
    # test2: a list of maps: the first one's dataField
    ([DEVICE], "device", ("device_temperature", "device_humidity"), None,
     {"device_temperature": 31.2, "device_humidity": 80}),
    # test3: dataField holds a list of maps
    ({"telemetry": TELEMETRY, "device": DEVICE["device"]}, "telemetry", ("temperature", "humidity"), None,
     [{"temperature": 32.32, "humidity": 80.8}, {"temperature": 34.32, "humidity": 81.8}]),
    # test4: the same inside a list
    ([{"telemetry": TELEMETRY}], "telemetry", ("temperature", "humidity"), None,
     [{"temperature": 32.32, "humidity": 80.8}, {"temperature": 34.32, "humidity": 81.8}]),
    # test ex 1, test ex2: excludeFields
    (DEVICE, "device", None, ("device_temperature",), {"device_id": 1, "device_humidity": 80}),
    ([DEVICE], "device", None, ("device_id", "device_humidity"), {"device_temperature": 31.2}),
    # overview.md's dataField example: "tele", then fields humidity and temperature
    ({"tele": {"humidity": 80.2, "temperature": 31.2, "id": 1}, "id": 1}, "tele", ("humidity", "temperature"),
     None, {"humidity": 80.2, "temperature": 31.2}),
    # overview.md's fields example; a missing field is null, as eKuiper's selectMap
    ({"temperature": 31.2, "humidity": 45}, None, ("humidity", "nope"), None, {"humidity": 45, "nope": None}),
    # an empty list with a dataField: nothing
    ([], "device", None, None, None),
])
def test_trans_item(data: Any, data_field: Any, fields: Any, exclude: Any, want: Any) -> None:
    assert trans_item(data, data_field, fields, exclude) == want


def test_trans_item_refuses_a_list_of_non_maps() -> None:
    # TestTransItem test5: wantErr
    with pytest.raises(ValueError, match="unsupported type"):
        trans_item([{"telemetry": ["abc", "Def"]}], "telemetry", ("temperature", "humidity"), None)


def test_template_then_data_field_then_fields_in_eKuipers_order() -> None:
    # overview.md: "the output data is obtained first according to the dataTemplate property
    # and then the final result is obtained through the fields property"
    conf = SinkConf(send_single=True, template=compile_template(
        '{"tele": {"humidity": {{.h}}, "temperature": {{.t}}, "id": 1}, "id": 1}'),
        data_field="tele", fields=("humidity", "temperature"))
    item = transform(conf, {"h": 80.2, "t": 31.2}, PEER, 0)
    assert item.value == {"humidity": 80.2, "temperature": 31.2}
    assert json.loads(item.payload) == {"humidity": 80.2, "temperature": 31.2}
    text_only = transform(SinkConf(template=compile_template("<b>{{.h}}</b>")), {"h": 1}, PEER, 0)
    assert (text_only.value, text_only.payload) == ("<b>1</b>", b"<b>1</b>")  # sent as it is
    with pytest.raises(ValueError, match="not JSON"):
        transform(SinkConf(template=compile_template("<b>{{.h}}</b>"), fields=("h",)), {"h": 1}, PEER, 0)


# --------------------------------------------------------------------------- the props


@pytest.mark.parametrize(("props", "error"), [
    ({"sendSingle": "yes"}, "sendSingle: expected true or false"),
    ({"fields": "a,b"}, "fields: expected a list of field names"),
    ({"fields": ["a"], "excludeFields": ["b"]}, "excludeFields: fields and excludeFields cannot both be set"),
    ({"format": "protobuf"}, "format: format 'protobuf' is not supported by ekws actions"),
    ({"format": "xml"}, "format: expected json"),
    ({"concurrency": 2}, "concurrency: the log action delivers in order from one thread"),
    ({"concurrency": 0}, "concurrency: 0 is out of range"),
    ({"bufferLength": 0}, "bufferLength: 0 is out of range"),
    ({"batchSize": -1}, "batchSize: -1 is out of range"),
    ({"lingerInterval": "soon"}, "lingerInterval: expected a duration"),
    ({"enableCache": True}, "enableCache: the log action has no far end"),
    ({"compression": "gzip"}, "compression: compression is not supported"),
    ({"schemaId": "proto1.Book"}, r"schemaId: schemaId \(protobuf encoding\) is not supported"),
    ({"resendDestination": "other"}, "resendDestination: resendDestination is not supported"),
    ({"sendsingle": True, "colour": 1}, "colour: unknown prop"),
])
def test_common_props_are_checked_by_name(props: dict[str, Any], error: str) -> None:
    with pytest.raises(ActionError, match=f"action log #0: {error}"):
        parse_action({"log": props}, 0)


def test_enable_cache_is_for_actions_with_one_far_end() -> None:
    with pytest.raises(ActionError, match="websocket #0: enableCache: the websocket action has no far end"):
        parse_action({"websocket": {"addr": "", "enableCache": True}}, 0)  # server mode: clients come and go
    assert parse_action({"websocket": {"addr": "127.0.0.1:1", "enableCache": True}}, 0).sink.cache is not None


def test_common_props_parse_with_eKuipers_defaults() -> None:
    conf = parse_action({"log": {}}, 0).sink
    assert (conf.send_single, conf.omit_if_empty, conf.buffer_length, conf.concurrency, conf.batch_size,
            conf.linger, conf.cache) == (False, False, 1024, 1, 0, 0.0, None)
    assert parse_action({"python": {"callable": "json:dumps"}}, 0).sink.send_single is True  # ekws's own
    conf = parse_action({"file": {"path": "x", "SendSingle": True, "lingerInterval": 500, "batchSize": 10,
                                  "tableDataField": "d", "runAsync": True}}, 0).sink
    assert (conf.send_single, conf.linger, conf.batch_size, conf.data_field, conf.run_async) == \
        (True, 0.5, 10, "d", True)
    mqtt = pytest.importorskip("paho.mqtt.client")
    assert mqtt is not None
    cached = parse_action({"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "t", "enableCache": True,
                                    "memoryCacheThreshold": 8, "maxDiskCache": 100, "resendInterval": "20ms",
                                    "bufferPageSize": 4}}, 0).sink.cache
    assert cached is not None
    assert (cached.memory_threshold, cached.max_disk, cached.page_size, cached.resend_interval) == \
        (8, 100, 4, 0.02)
