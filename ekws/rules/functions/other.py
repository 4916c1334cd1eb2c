"""Other functions: eKuiper's ``funcs_misc.go`` (docs ``other_functions.md``).

``meta(key)`` is parsed by :mod:`ekws.rules.sql` (its argument is a name,
not an expression). ``mqtt(...)`` reads MQTT metadata a WebSocket stream
does not have: it is null, as eKuiper's missing value. ``get_keyed_state(key,
type, default)`` reads eKuiper's keyed state store, which ekws does not have:
every key is missing, so it is ``default``, as eKuiper answers for a missing key. ``rule_start()`` is
the time (ms) the rule was created in this process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Callable

from ...message import Message
from ..expr import EvalError
from .registry import Arg, register


@register("isnull", 1, nulls="pass", family="other")
def isnull(value: Any) -> bool:
    return value is None


@register("coalesce", 1, None, nulls="pass", family="other")
def coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


@register("newuuid", 0, family="other")
def newuuid() -> str:
    return str(uuid.uuid1())  # eKuiper's uuid.NewUUID is version 1


@register("tstamp", 0, family="other")
def tstamp() -> int:
    return time.time_ns() // 1_000_000


@register("event_time", 0, message=True, family="other")
def event_time(m: Message) -> int:
    return m.timestamp


def _rule_id(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
    return lambda: rule_id


def _rule_start(args: Sequence[Arg], rule_id: str) -> Callable[..., Any]:
    started = time.time_ns() // 1_000_000
    return lambda: started


register("rule_id", 0, bind=_rule_id, family="other")(lambda: "")
register("rule_start", 0, bind=_rule_start, family="other")(lambda: 0)


@register("mqtt", 1, nulls="pass", family="other")
def mqtt(key: Any) -> Any:
    return None


@register("bypass", 1, None, nulls="pass", family="other")
def bypass(*args: Any) -> Any:
    return args[0]


_STATE_TYPES = ("bigint", "float", "string", "boolean", "datetime")


def _keyed_state_check(args: Sequence[Arg]) -> None:
    kind = args[1].value
    if type(kind) in (int, float, bool):
        raise ValueError("Expect string type for parameter 1")
    if type(kind) is str and kind not in _STATE_TYPES:
        raise ValueError("expect one of following value for the 2nd parameter: "
                         "bigint, float, string, boolean, datetime")


@register("get_keyed_state", 3, nulls="pass", validate=_keyed_state_check, family="other")
def get_keyed_state(key: Any, kind: Any, default: Any) -> Any:
    if type(key) is not str:
        raise EvalError(f"key {key} is not a string")
    return default
