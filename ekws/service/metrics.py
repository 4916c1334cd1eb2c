"""Prometheus text exposition (format 0.0.4): eKuiper's series, then ekws's own.

:func:`render_kuiper` writes eKuiper's families from rule statuses in eKuiper's
shape (``internal/topo/node/metric/prometheus.go`` and ``metrics/metrics.go``),
so an eKuiper Grafana dashboard works unchanged: ``kuiper_source_*``,
``kuiper_op_*`` and ``kuiper_sink_*`` (``records_in_total``,
``records_out_total``, ``messages_processed_total``, ``exceptions_total``,
``process_latency_us``, ``buffer_length``, and ``connection_status`` for
sources and sinks) labelled ``{rule, type, op, op_instance}``;
``kuiper_rule_status{rule}`` (1 running, 0 stopped, -1 stopped by error) and
``kuiper_rule_count{status="running"|"stop"}``.

The SDK and the rule manager report metrics as plain dicts (eKuiper's names:
``records_in_total``, ``connection_status`` ...). :func:`render` turns groups
of them into the text ``GET /metrics`` serves::

    render([("stream", {"stream": "demo"}, runtime.status("demo")),
            *rule_manager.metrics()])

Each numeric value (bools count as 0/1) becomes ``ekws_<kind>_<key>`` with
the group's labels; keys ending in ``_total`` are counters, the rest gauges.
Strings and nulls (``last_exception``, ``state``) are left out: Prometheus
values are numbers. Samples of one family are written together under one
``# HELP``/``# TYPE`` header, whatever order the groups came in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CONTENT_TYPE", "render", "render_kuiper"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")

Group = tuple[str, Mapping[str, str], Mapping[str, Any]]

# eKuiper's node families: (metric, type, help) as prometheus.go registers them.
_KUIPER_NODE: tuple[tuple[str, str, str], ...] = (
    ("records_in_total", "counter", "Total number of messages received by the operation of {}"),
    ("records_out_total", "counter", "Total number of messages published by the operation of {}"),
    ("messages_processed_total", "counter", "Total number of messages processed by the operation of {}"),
    ("exceptions_total", "counter", "Total number of user exceptions of {}"),
    ("process_latency_us", "gauge", "Process latency in microseconds of {}"),
    ("buffer_length", "gauge", "The length of the plan buffer which is shared by all instances of {}"),
    ("connection_status", "gauge", "The connection status of the operator: 0 connecting, 1 connected, "
                                   "-1 disconnected, of {}"),
)
_KUIPER_KEY = re.compile(r"^(source|op|sink)_(.+)_(\d+)_([a-z_]+)$")
_STATE_VALUE = {"running": 1, "stopped": 0}

# ekws's own series: HELP texts for the keys a reader meets most.
_HELP = {
    "records_in_total": "records received",
    "records_out_total": "records passed on",
    "exceptions_total": "failures counted",
    "buffer_length": "records waiting in the buffer",
    "dropped_total": "records dropped because the buffer was full",
    "connection_status": "1 connected, 0 connecting, -1 disconnected",
    "connections": "WebSocket connections open",
    "running": "1 while the rule runs",
    "last_start_timestamp_seconds": "when the rule last started, seconds since the epoch",
    "last_stop_timestamp_seconds": "when the rule last stopped, seconds since the epoch",
    "last_exception_timestamp_seconds": "when the last failure happened, seconds since the epoch (0: never)",
    "connection_last_connected_timestamp_seconds": "when the last connection opened, seconds since the epoch",
    "connection_last_disconnected_timestamp_seconds": "when the last connection closed, seconds since epoch",
}


def metric_name(*parts: str) -> str:
    """Join parts with ``_`` and replace what a Prometheus name cannot hold."""
    name = _INVALID.sub("_", "_".join(p for p in parts if p))
    return name if not name[:1].isdigit() else "_" + name


def _label_name(name: str) -> str:
    name = _LABEL_INVALID.sub("_", name)
    return name if name and not name[:1].isdigit() and not name.startswith("__") else "l_" + name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(groups: Iterable[Group], *, prefix: str = "ekws") -> str:
    """The Prometheus text for ``(kind, labels, values)`` groups."""
    families: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for kind, labels, values in groups:
        label_text = ",".join(f'{_label_name(k)}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
        suffix = "{" + label_text + "}" if label_text else ""
        for key, raw in values.items():
            if isinstance(raw, bool):
                number: float = int(raw)
            elif isinstance(raw, (int, float)):
                number = raw
            else:
                continue
            name = metric_name(prefix, kind, key)
            families.setdefault(name, []).append(f"{name}{suffix} {_value(number)}")
            kinds[name] = kind
    out: list[str] = []
    for name, samples in families.items():
        family_type = "counter" if name.endswith("_total") else "gauge"
        key = name[len(prefix) + len(kinds[name]) + 2:]
        text = _HELP.get(key, key.replace("_", " "))
        out.append(f"# HELP {name} ekws {kinds[name].replace('_', ' ')}: {text}")
        out.append(f"# TYPE {name} {family_type}")
        out.extend(samples)
    return "\n".join(out) + "\n" if out else ""


def render_kuiper(statuses: Mapping[str, Mapping[str, Any]]) -> str:
    """eKuiper's Prometheus families for ``{rule_id: status}`` (statuses in eKuiper's flat shape,
    ``status`` one of eKuiper v2's words)."""
    samples: dict[str, list[str]] = {}
    for rule_id, status in sorted(statuses.items()):
        for key, value in status.items():
            match = _KUIPER_KEY.match(key)
            if match is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            op_type, op, instance, metric = match.groups()
            if metric == "connection_status" and op_type == "op":
                continue
            labels = (f'rule="{_escape(rule_id)}",type="{op_type}",op="{_escape(op)}",'
                      f'op_instance="{instance}"')
            samples.setdefault(f"kuiper_{op_type}_{metric}", []).append(
                f"kuiper_{op_type}_{metric}{{{labels}}} {_value(value)}")
    out: list[str] = []
    for op_type in ("source", "op", "sink"):
        for metric, family_type, help_text in _KUIPER_NODE:
            name = f"kuiper_{op_type}_{metric}"
            if name in samples:
                out.append(f"# HELP {name} {help_text.format('kuiper_' + op_type)}")
                out.append(f"# TYPE {name} {family_type}")
                out += samples[name]
    running = sum(1 for s in statuses.values() if s.get("status") == "running")
    out += ["# HELP kuiper_rule_status gauge of rule status: 1 running, 0 stopped, -1 stopped by error",
            "# TYPE kuiper_rule_status gauge"]
    out += [f'kuiper_rule_status{{rule="{_escape(rule_id)}"}} {_STATE_VALUE.get(str(s.get("status")), -1)}'
            for rule_id, s in sorted(statuses.items())]
    out += ["# HELP kuiper_rule_count gauge of rule status count", "# TYPE kuiper_rule_count gauge",
            f'kuiper_rule_count{{status="running"}} {running}',
            f'kuiper_rule_count{{status="stop"}} {len(statuses) - running}']
    return "\n".join(out) + "\n"
