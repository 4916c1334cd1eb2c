"""Rules: eKuiper rule bodies checked, started as subscriptions, and reported on.

A rule is ``{"id", "sql", "actions", "options"}`` (eKuiper's body) or
``{"id", "stream", "actions"}`` (ekws's short form, ``SELECT *``). Starting
it subscribes to its stream through the SDK (``Runtime.subscribe``);
stopping closes the subscription, so the last rule on a server-mode stream
stops the shared server. Each record runs, in the subscription's worker
thread: the query (WHERE and projection compiled into one generated
function), then every action in order. Nothing an action does stops the
rule or another action: a raising action is counted for that action, shown
in the status and logged with the first traceback, then a summary at most
every ``LOG_INTERVAL`` seconds.

Options, as eKuiper names them: ``bufferLength`` (the subscription's bound;
default the stream's) and ``overflow`` (ekws's ``block``/``dropOldest``/
``dropNewest``), ``sendError`` (default false: source and decode errors, and
records an expression failed on, reach the actions as ``{"error": "..."}``
records), ``restartStrategy`` (``attempts``, ``delay`` ms, ``maxDelay`` ms,
``multiplier``, ``jitterFactor``: restarts after a failed start or a source
that gave up), ``isEventTime`` and ``lateTolerance`` (ms: windows on the
stream's ``TIMESTAMP`` with eKuiper's watermark, see
:class:`~ekws.rules.window.EventWindowRunner`), and ekws's window bounds
``maxWindowRows`` (default 100,000) and ``maxWindowGroups`` (default 10,000):
a row over either is dropped, counted in the window's status
(``dropped_total``, ``groups_dropped_total``) and logged once. eKuiper options that need what
ekws does not run (``qos`` > 0, ``cron`` ...) are refused unless they hold
their default.

A body may carry eKuiper's ``version`` (a string): ``update(..., versioned=True)``
(``PUT /rules/{id}``) refuses one that is not greater, as text, than the
rule's (eKuiper's ``CanReplace``; none on either side replaces freely). An
action's ``resourceId`` names a sink conf key the manager's ``resources``
look-up finds (the service's store); its props go under the action's own.

A rule with a window (``GROUP BY TUMBLINGWINDOW(ss, 5)`` ...) hands its
records to the window instead (:mod:`ekws.rules.window`); each window that
fires sends its output rows to the actions one record at a time. A query
whose aggregates all have accumulators (``count sum avg min max stddev var
last_value`` ...) over a tumbling or count window keeps O(groups) state, not
rows (:mod:`ekws.rules.grouping`); eKuiper does that only with
``planOptimizeStrategy.enableIncrementalWindow``, ekws always (the same results).

On a typed stream (``CREATE STREAM demo (temperature FLOAT, ...)``) every
field the SQL reads must be declared (names under a STRUCT field too): a
typed stream keeps only its fields, so another name would always be null.
An unknown one is an SQLError naming it and its position; ``meta(...)`` keys
are no fields; a schemaless stream accepts any name.

Every bad body raises a ``ValueError`` subclass: :class:`InvalidRule`,
:class:`~ekws.rules.sql.SQLError` or :class:`~ekws.actions.ActionError`;
:class:`RuleNotFound` and :class:`RuleExists` are the other two outcomes a
REST layer maps (404, 409).
"""

from __future__ import annotations

import builtins
import copy
import random
import threading
from collections.abc import Callable
from typing import Any, Optional

from .. import Runtime, StreamNotFound, Subscription
from .definition import (
    InvalidRule,
    Resources,
    RestartStrategy,
    RuleDef,
    RuleError,
    RuleExists,
    RuleNotFound,
    RuleOptions,
    parse_rule,
    uses_resource,
    version_problem,
)
from .rule import RUNNING, Rule
from .sql import check_fields

__all__ = [
    "InvalidRule", "RestartStrategy", "RuleDef", "RuleError", "RuleExists", "RuleManager",
    "RuleNotFound", "RuleOptions", "parse_rule",
]


# --------------------------------------------------------------------------- the manager


class RuleManager:
    """Every rule of a runtime, by id. Thread-safe; the REST layer calls it directly.

    Persistence is the caller's: store ``describe(id)`` and whether the rule
    was started, and call ``create(body, start=...)`` on restore.
    """

    def __init__(self, runtime: Runtime, *, rng: Callable[[], float] = random.random,
                 resources: Optional[Resources] = None) -> None:
        self._runtime = runtime
        self._rng = rng
        self._resources = resources  # sink conf keys for actions' resourceId
        self._rules: dict[str, Rule] = {}
        self._lock = threading.RLock()

    def validate(self, body: Any, rule_id: Optional[str] = None, *,
                 resources: Optional[Resources] = None) -> RuleDef:
        """Check a body as :meth:`create` would, its stream included; create nothing.

        ``resources``: sink conf keys to resolve ``resourceId`` with instead of the manager's.
        """
        definition = parse_rule(body, rule_id, resources or self._resources)
        stream = definition.query.stream
        if stream not in self._runtime.streams():
            raise InvalidRule(f"stream {stream!r} does not exist (rule {definition.id!r})")
        try:
            fields = self._runtime.describe_stream(stream).fields
        except StreamNotFound:  # dropped since the line above
            raise InvalidRule(f"stream {stream!r} does not exist (rule {definition.id!r})") from None
        check_fields(definition.query, fields)
        return definition

    def create(self, body: Any, *, rule_id: Optional[str] = None, start: Optional[bool] = None) -> RuleDef:
        """Check, register and (unless ``start`` is false or the body says ``triggered: false``) start.

        ``rule_id`` is the CLI's ``create rule NAME``: the body's ``id`` may
        then be absent, or must match.

        A start failure does not undo the creation: the rule stays, stopped,
        with the reason in its status (as eKuiper does), and is logged.

        Raises:
            InvalidRule, SQLError, ActionError: a bad body (nothing registered).
            RuleExists: the id is taken.
        """
        definition = self.validate(body, rule_id)
        with self._lock:
            if definition.id in self._rules:
                raise RuleExists(f"rule {definition.id} already exists", name=definition.id)
            rule = Rule(definition, self._runtime, self._rng)
            self._rules[definition.id] = rule
        if definition.triggered if start is None else start:
            try:
                rule.start()
            except Exception:  # noqa: S110 - recorded in the rule's status and logged by start
                pass
        return definition

    def update(self, rule_id: str, body: Any, *, versioned: bool = False,
               resources: Optional[Resources] = None) -> RuleDef:
        """Replace a rule's definition (PUT); a running rule restarts with it.

        ``versioned``: as eKuiper's ``PUT /rules/{id}``, refuse a body whose
        ``version`` does not replace the rule's (:func:`~.definition.can_replace`).

        Raises:
            InvalidRule: a bad body, or (``versioned``) a version that is not greater.
        """
        definition = self.validate(body, rule_id, resources=resources)
        with self._lock:
            rule = self._get(rule_id)
            if versioned:
                problem = version_problem(rule_id, rule.definition.version, definition.version)
                if problem is not None:
                    raise InvalidRule(problem)
            rule.replace(definition)
        return definition

    def delete(self, rule_id: str) -> None:
        with self._lock:
            rule = self._get(rule_id)
            del self._rules[rule_id]
        rule.stop()

    def start(self, rule_id: str) -> None:
        """Start a rule (no-op when running). Raises what stopped the start (BindError ...)."""
        rule = self._get(rule_id)
        self._set_triggered(rule, True)
        rule.start()

    def stop(self, rule_id: str) -> None:
        rule = self._get(rule_id)
        self._set_triggered(rule, False)
        rule.stop("canceled manually")

    def restart(self, rule_id: str) -> None:
        rule = self._get(rule_id)
        self._set_triggered(rule, True)
        rule.restart()

    def _set_triggered(self, rule: Rule, value: bool) -> None:
        """As eKuiper: a body that says ``triggered`` says what the user last asked for."""
        with self._lock:
            if "triggered" in rule.definition.body:
                rule.definition.body["triggered"] = value

    def list(self) -> builtins.list[dict[str, str]]:
        """eKuiper's ``GET /rules``: ``[{"id", "status"}]``, by id."""
        with self._lock:
            rules = sorted(self._rules.values(), key=lambda r: r.id)
        return [{"id": rule.id, "status": rule.state} for rule in rules]

    def on_resource(self, kind: str, key: str) -> builtins.list[str]:
        """Ids of the rules with a ``kind`` action whose ``resourceId`` is ``key``."""
        with self._lock:
            return sorted(r.id for r in self._rules.values() if uses_resource(r.definition.body, kind, key))

    def on_stream(self, stream: str) -> builtins.list[str]:
        """Ids of the rules that read ``stream`` (a service may refuse to drop it while any do)."""
        with self._lock:
            return sorted(r.id for r in self._rules.values() if r.definition.query.stream == stream)

    def subscriptions(self) -> builtins.list[Subscription]:
        """The subscriptions of the running rules (a stop counts what they left undelivered)."""
        with self._lock:
            subs = [rule.subscription for rule in self._rules.values()]
        return [sub for sub in subs if sub is not None]

    def ids(self) -> builtins.list[str]:
        return sorted(self._rules)

    def describe(self, rule_id: str) -> dict[str, Any]:
        """The body as created (a copy)."""
        return copy.deepcopy(self._get(rule_id).definition.body)

    def is_running(self, rule_id: str) -> bool:
        return self._get(rule_id).state == RUNNING

    def status(self, rule_id: str) -> dict[str, Any]:
        return self._get(rule_id).status()

    def metrics(self) -> builtins.list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Every rule's numbers as ``(kind, labels, values)`` groups for :mod:`ekws.service.metrics`.

        Kinds: ``rule`` (running 1/0, timestamps), ``rule_source``, ``rule_op`` and
        ``rule_action``, with the counters of the status without the node prefix.
        """
        with self._lock:
            rules = list(self._rules.values())
        groups: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for rule in rules:
            status = rule.status()
            groups.append(("rule", {"rule": rule.id}, {
                "running": 1 if status["status"] == RUNNING else 0,
                "last_start_timestamp_ms": status["lastStartTimestamp"],
                "last_stop_timestamp_ms": status["lastStopTimestamp"],
            }))
            stream = rule.definition.query.stream
            nodes: list[tuple[str, dict[str, str], str]] = [
                ("rule_source", {"rule": rule.id, "stream": stream}, f"source_{stream}_0_")]
            n = 2
            if rule.filter is not None:
                nodes.append(("rule_op", {"rule": rule.id, "op": "filter"}, f"op_{n}_filter_0_"))
                n += 1
            nodes.append(("rule_op", {"rule": rule.id, "op": "project"}, f"op_{n}_project_0_"))
            for spec in rule.definition.actions:
                nodes.append(("rule_action", {"rule": rule.id, "action": spec.kind, "index": str(spec.index)},
                              f"sink_{spec.kind}_{spec.index}_0_"))
            for kind, labels, prefix in nodes:
                values = {key[len(prefix):]: value for key, value in status.items() if key.startswith(prefix)}
                groups.append((kind, labels, values))
        return groups

    def close(self) -> None:
        """Stop every rule (their stored state is the caller's to keep)."""
        with self._lock:
            rules = list(self._rules.values())
        for rule in rules:
            rule.stop()

    def _get(self, rule_id: str) -> Rule:
        try:
            return self._rules[rule_id]
        except KeyError:
            raise RuleNotFound(f"Rule {rule_id} is not found.", name=rule_id) from None
