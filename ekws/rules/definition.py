"""Rule bodies: checked and compiled into a :class:`RuleDef` (pure: nothing runs here).

See :mod:`ekws.rules.manager` for the body, its options and the errors.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import EkwsError, props
from ..actions import KINDS, ActionSpec, parse_action
from ..ddl import id_problem
from ..errors import ConfigError, Exists, NotFound
from .sql import Query, SQLError, parse_query

__all__ = [
    "InvalidRule", "RestartStrategy", "RuleDef", "RuleError", "RuleExists", "RuleNotFound", "RuleOptions",
    "Resources", "can_replace", "parse_rule", "uses_resource", "version_problem",
]

MAX_ID_LENGTH = 200


class RuleError(EkwsError):
    """Root of the rule errors."""


class InvalidRule(RuleError, ValueError):
    """A rule body is malformed; the message names the key."""


class RuleNotFound(RuleError, NotFound):
    """No rule has this id."""


class RuleExists(RuleError, Exists):
    """A rule with this id exists already."""


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class RestartStrategy:
    """eKuiper's ``restartStrategy``; times in seconds here (milliseconds in the body)."""

    attempts: int = 0
    delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter_factor: float = 0.1

    def delay_for(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before restart ``attempt`` (1-based), jittered by +-``jitter_factor``."""
        base = min(self.delay * self.multiplier ** (attempt - 1), max(self.max_delay, self.delay))
        return max(0.0, base * (1.0 + self.jitter_factor * (2.0 * rng() - 1.0)))


@dataclass(frozen=True)
class RuleOptions:
    buffer_length: Optional[int] = None  # None: the stream's bufferLength
    overflow: Optional[str] = None
    send_error: bool = False
    send_nil: bool = False  # sendNilField: keep null columns in the output rows
    is_event_time: bool = False  # windows on the records' TIMESTAMP (isEventTime)
    late_tolerance: int = 0  # ms (lateTolerance)
    max_window_rows: int = 100_000  # rows a window holds (maxWindowRows); more are dropped, counted
    max_window_groups: int = 10_000  # groups a window holds (maxWindowGroups); the same
    restart: RestartStrategy = field(default_factory=RestartStrategy)


@dataclass(frozen=True)
class RuleDef:
    """A checked rule body."""

    id: str
    query: Query
    actions: tuple[ActionSpec, ...]
    options: RuleOptions
    body: dict[str, Any]  # as given, for describe and the store
    triggered: bool = True  # start when created
    version: str = ""  # eKuiper's ``version``: an update must carry a greater one (see can_replace)


_BODY_KEYS = ("id", "name", "version", "sql", "stream", "actions", "options", "triggered", "tags")
# eKuiper options ekws cannot honour, with the value that means "not used".
_INERT_OPTIONS: dict[str, Any] = {
    "concurrency": 1, "qos": 0, "sendMetaToSink": False,
    "cron": "", "duration": "", "cronDatetimeRange": [], "debug": False,
}
_INERT_OPTIONS.update({
    "logFilename": "", "notifySub": False, "disableBufferFullDiscard": False,
    "enableSaveStateBeforeStop": False, "experiment": None,
})
# eKuiper options that only matter with what the above refuses (event time, qos > 0, a schedule),
# or that tune its planner: any well-formed value is accepted, as ``describe rule`` prints them.
_DURATION_OPTIONS = ("checkpointInterval", "forceExitTimeout")
_IGNORED_OPTIONS = ("planOptimizeStrategy",)


# A sink conf key's props by (action kind, key); None when there is no such key.
Resources = Callable[[str, str], Optional[Mapping[str, Any]]]


def parse_rule(body: Any, rule_id: Optional[str] = None, resources: Optional[Resources] = None) -> RuleDef:
    """Check a rule body and compile its SQL; pure (no stream lookup, nothing started).

    Args:
        body: the decoded JSON body.
        rule_id: the id from the URL or CLI; the body's ``id`` may be absent or must match.
        resources: the sink conf keys an action's ``resourceId`` names (none: such an action is refused).

    Raises:
        InvalidRule, SQLError, ActionError: naming what is wrong and where.
    """
    if not isinstance(body, Mapping):
        raise InvalidRule(f"a rule must be a JSON object, got {type(body).__name__}")
    for key in body:
        if key not in _BODY_KEYS:
            hint = " (graph rules are not supported by ekws)" if key == "graph" else ""
            raise InvalidRule(f"unknown rule key {key!r}{hint}; expected {', '.join(_BODY_KEYS)}")
    given = body.get("id")
    if rule_id is not None and given is not None and given != rule_id:
        raise InvalidRule(f"the body's id {given!r} differs from the rule id {rule_id!r}")
    rid = rule_id if given is None else given
    if not isinstance(rid, str) or not rid.strip():
        raise InvalidRule("id: a rule needs an id (a non-empty string)")
    problem = id_problem(rid)
    if problem is not None:  # eKuiper's words (internal/server/rest_test.go)
        raise InvalidRule(f"invalid rule json: {problem[:120]}")
    if len(rid) > MAX_ID_LENGTH:
        raise InvalidRule(f"id: {rid[:80]!r} must be at most {MAX_ID_LENGTH} characters")
    sql, stream = body.get("sql"), body.get("stream")
    if (sql is None) == (stream is None):
        raise InvalidRule("a rule needs either sql (eKuiper's form) or stream (ekws's short form)")
    if stream is not None:
        if not isinstance(stream, str) or not stream or "`" in stream:
            raise InvalidRule(f"stream: expected a stream name, got {stream!r:.80}")
        query = parse_query(f"SELECT * FROM `{stream}`")
    else:
        if not isinstance(sql, str):
            raise InvalidRule(f"sql: expected a string, got {type(sql).__name__}")
        try:
            query = parse_query(sql, rule_id=rid)
        except SQLError as exc:
            raise SQLError(f"sql: {exc.reason}", line=exc.line, column=exc.column) from None
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        raise InvalidRule("actions: expected a non-empty list like [{\"log\": {}}]")
    specs = tuple(parse_action(_resolved(entry, n, resources), n) for n, entry in enumerate(actions))
    triggered = body.get("triggered", True)
    if not isinstance(triggered, bool):
        raise InvalidRule(f"triggered: expected true or false, got {triggered!r:.40}")
    version = body.get("version", "")
    if not isinstance(version, str):  # eKuiper's def.Rule.Version is a Go string
        raise InvalidRule(f"version: expected a string (eKuiper compares versions as text, e.g. a timestamp "
                          f"\"1700000000\"), got {version!r:.40}")
    return RuleDef(rid, query, specs, _options(body.get("options")),
                   copy.deepcopy({"id": rid, **body}), triggered, version)


def _resolved(entry: Any, index: int, resources: Optional[Resources]) -> Any:
    """eKuiper's ``resourceId`` (internal/topo/node/conf/sink.go GetSinkConf): the named sink conf
    key's props, the action's own over them. Unlike eKuiper (a warning, then the action's props
    alone), a key that does not exist is refused: the action would run without props it asked for."""
    if not isinstance(entry, Mapping) or len(entry) != 1:
        return entry  # parse_action says what is wrong
    ((kind, raw),) = entry.items()
    if kind not in KINDS or not isinstance(raw, Mapping) or "resourceId" not in raw:
        return entry
    key = raw["resourceId"]
    own = {k: v for k, v in raw.items() if k != "resourceId"}
    if key in ("", None):
        return {kind: own}
    if not isinstance(key, str):
        raise InvalidRule(f"action {kind} #{index}: resourceId: expected the name of a sink conf key, "
                          f"got {key!r:.40}")
    stored = resources(kind, key) if resources is not None else None
    if stored is None:
        raise InvalidRule(f"action {kind} #{index}: resourceId: there is no {kind} sink conf key {key!r} "
                          f"(create it with PUT /metadata/sinks/{kind}/confKeys/{key})")
    return {kind: {**copy.deepcopy(dict(stored)), **own}}


def uses_resource(body: Mapping[str, Any], kind: str, key: str) -> bool:
    """Whether a rule body has a ``kind`` action with ``resourceId: key``."""
    for entry in body.get("actions") or ():
        if isinstance(entry, Mapping) and len(entry) == 1:
            ((name, raw),) = entry.items()
            if name == kind and isinstance(raw, Mapping) and raw.get("resourceId") == key:
                return True
    return False


def can_replace(old: str, new: str) -> bool:
    """eKuiper's ``processor.CanReplace``: no versions on either side, or ``new`` greater as text.

    The comparison is character by character (``"10" < "9"``), as eKuiper's
    docs say (docs/en_US/guide/rules/overview.md, Versioning); a version no
    greater than the stored one, or none where one is stored, is refused.
    """
    return (old == "" and new == "") or new > old


def version_problem(rule_id: str, old: str, new: str) -> Optional[str]:
    """eKuiper's words when an update's version does not replace the stored one (rule_manager.go)."""
    if can_replace(old, new):
        return None
    return f"rule {rule_id} already exists with version ({old}), new version ({new}) is lower"


def _options(raw: Any) -> RuleOptions:
    if raw is None:
        return RuleOptions()
    if not isinstance(raw, Mapping):
        raise InvalidRule(f"options: expected a map, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "bufferLength":
            values["buffer_length"] = _check(key, props.integer(1), value)
        elif key == "overflow":
            if value not in ("block", "dropOldest", "dropNewest"):
                raise InvalidRule("options.overflow: expected block, dropOldest or dropNewest, "
                                  f"got {value!r:.40}")
            values["overflow"] = value
        elif key == "sendError":
            values["send_error"] = _check(key, props.boolean, value)
        elif key in ("sendNilField", "sendNil"):
            values["send_nil"] = _check(key, props.boolean, value)
        elif key == "isEventTime":
            values["is_event_time"] = _check(key, props.boolean, value)
        elif key == "lateTolerance":
            if not _is_duration(value):
                raise InvalidRule(f"options.lateTolerance: expected milliseconds or a duration like \"1s\", "
                                  f"got {value!r:.40}")
            values["late_tolerance"] = _duration_ms(value)
        elif key == "maxWindowRows":
            values["max_window_rows"] = _check(key, props.integer(1), value)
        elif key == "maxWindowGroups":
            values["max_window_groups"] = _check(key, props.integer(1), value)
        elif key == "restartStrategy":
            values["restart"] = _restart(value)
        elif key in _DURATION_OPTIONS:
            if not _is_duration(value):
                raise InvalidRule(f"options.{key}: expected milliseconds or a duration like \"1s\", "
                                  f"got {value!r:.40}")
        elif key in _INERT_OPTIONS:
            if value != _INERT_OPTIONS[key] and not (value in (None, [], {}) and key == "cronDatetimeRange") \
                    and not (value == {} and key == "experiment"):
                raise InvalidRule(f"options.{key}: {value!r:.40} is not supported by ekws rules "
                                  f"(only {_INERT_OPTIONS[key]!r})")
        elif key not in _IGNORED_OPTIONS:
            raise InvalidRule(f"options: unknown option {key!r}; ekws rules take bufferLength, overflow, "
                              "sendError, restartStrategy, isEventTime, lateTolerance, maxWindowRows "
                              "and maxWindowGroups")
    return RuleOptions(**values)


def _check(key: str, parser: props.Parser, value: Any) -> Any:
    """One option checked by the parser source props use (:mod:`ekws.props`)."""
    try:
        return parser(value, props.Where("options", key))
    except ConfigError as exc:
        raise InvalidRule(f"options.{key}: {exc.message}") from None


_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+|0")


def _is_duration(value: Any) -> bool:
    """eKuiper's ``cast.DurationConf``: an integer of milliseconds or a Go duration (``1s``, ``5m0s``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and _DURATION.fullmatch(value) is not None


_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(value: Any) -> int:
    """A value :func:`_is_duration` accepted, in whole milliseconds."""
    if isinstance(value, int):
        return value
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", value)
    return int(sum(float(number) * _UNIT_MS[unit] for number, unit in parts))


def _restart(raw: Any) -> RestartStrategy:
    if not isinstance(raw, Mapping):
        raise InvalidRule(f"options.restartStrategy: expected a map, got {type(raw).__name__}")
    names = {"attempts": "attempts", "delay": "delay", "maxDelay": "max_delay",
             "multiplier": "multiplier", "jitterFactor": "jitter_factor"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise InvalidRule(f"options.restartStrategy: unknown key {key!r}; expected {', '.join(names)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                (key == "attempts" and not isinstance(value, int)) or (key == "jitterFactor" and value > 1):
            raise InvalidRule(f"options.restartStrategy.{key}: expected a number >= 0"
                              f"{' (an integer)' if key == 'attempts' else ''}, got {value!r:.40}")
        values[names[key]] = value / 1000.0 if key in ("delay", "maxDelay") else value
    return RestartStrategy(**values)
