"""Prometheus text exposition (format 0.0.4) of plain metric dicts.

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

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")

Group = tuple[str, Mapping[str, str], Mapping[str, Any]]


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
        out.append(f"# HELP {name} ekws {kinds[name]} metric {name[len(prefix) + 1:]}")
        out.append(f"# TYPE {name} {family_type}")
        out.extend(samples)
    return "\n".join(out) + "\n" if out else ""
