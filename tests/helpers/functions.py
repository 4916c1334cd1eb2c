"""Calling rule SQL functions as a rule does: compiled by ``parse_query``, run on a message."""

from __future__ import annotations

from typing import Any

import ekws
from ekws.rules.sql import parse_query

PEER = ekws.Peer("demo", "/api/data", "10.0.0.7:5000", 3)


def value(expr: str, data: dict[str, Any] | None = None, *, timestamp: int = 0, rule_id: str = "") -> Any:
    """``SELECT <expr> AS v FROM demo`` over ``data``: the value of ``v``."""
    out = parse_query(f"SELECT {expr} AS v FROM demo", rule_id=rule_id).run(
        ekws.Message(dict(data or {}), PEER, timestamp))
    assert out is not None
    return out["v"]


def call(name: str, *args: Any) -> Any:
    """``name(a0, a1, ...)`` with each argument a record field, as eKuiper's exec tests pass
    values (a field is never refused at rule creation the way a literal may be)."""
    fields = ", ".join(f"a{i}" for i in range(len(args)))
    return value(f"{name}({fields})", {f"a{i}": arg for i, arg in enumerate(args)})
