"""Rules: eKuiper rule bodies checked, started as subscriptions, and reported on.

A rule is ``{"id", "sql", "actions", "options"}`` (eKuiper's body) or
``{"id", "stream", "actions"}`` (ekws's short form, ``SELECT *``). Starting
it subscribes to its stream through the SDK (``Runtime.subscribe``);
stopping closes the subscription, so the last rule on a server-mode stream
stops the shared server. Each record runs, in the subscription's worker
thread: the WHERE closure, the projection closure, then every action in
order. Nothing an action does stops the rule or another action: a raising
action is counted for that action, shown in the status and logged with the
first traceback, then a summary at most every ``LOG_INTERVAL`` seconds.

Options, as eKuiper names them: ``bufferLength`` (the subscription's bound;
default the stream's) and ``overflow`` (ekws's ``block``/``dropOldest``/
``dropNewest``), ``sendError`` (default false: source and decode errors, and
records an expression failed on, reach the actions as ``{"error": "..."}``
records), ``restartStrategy`` (``attempts``, ``delay`` ms, ``maxDelay`` ms,
``multiplier``, ``jitterFactor``: restarts after a failed start or a source
that gave up). eKuiper options that need what ekws does not run (``qos`` > 0,
``isEventTime``, ``cron`` ...) are refused unless they hold their default.

Every bad body raises a ``ValueError`` subclass: :class:`InvalidRule`,
:class:`~ekws.service.sql.SQLError` or :class:`~ekws.actions.ActionError`;
:class:`RuleNotFound` and :class:`RuleExists` are the other two outcomes a
REST layer maps (404, 409).
"""

from __future__ import annotations

import builtins
import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from ekws import EkwsError, Message, Peer, Runtime, Status, StreamNotFound, Subscription

from ..actions import Action, ActionSpec, parse_action
from .sql import Query, SQLError, parse_query

__all__ = [
    "InvalidRule", "RestartStrategy", "RuleDef", "RuleError", "RuleExists", "RuleManager",
    "RuleNotFound", "RuleOptions", "parse_rule",
]

logger = logging.getLogger(__name__)

LOG_INTERVAL = 10.0  # seconds between summaries of repeated failures
MAX_ID_LENGTH = 200
RUNNING, STOPPED = "running", "stopped"


class RuleError(EkwsError):
    """Root of the rule errors."""


class InvalidRule(RuleError, ValueError):
    """A rule body is malformed; the message names the key."""


class RuleNotFound(RuleError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RuleExists(RuleError):
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


_BODY_KEYS = ("id", "name", "sql", "stream", "actions", "options", "triggered", "tags")
# eKuiper options ekws cannot honour, with the value that means "not used".
_INERT_OPTIONS: dict[str, Any] = {
    "isEventTime": False, "lateTolerance": 0, "concurrency": 1, "qos": 0, "sendMetaToSink": False,
    "cron": "", "duration": "", "cronDatetimeRange": [], "debug": False,
}
_IGNORED_OPTIONS = ("checkpointInterval", "sendNil")  # only matter with what the above refuses


def parse_rule(body: Any, rule_id: Optional[str] = None) -> RuleDef:
    """Check a rule body and compile its SQL; pure (no stream lookup, nothing started).

    Args:
        body: the decoded JSON body.
        rule_id: the id from the URL or CLI; the body's ``id`` may be absent or must match.

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
    if len(rid) > MAX_ID_LENGTH or "/" in rid or any(ord(c) < 32 for c in rid):
        raise InvalidRule(f"id: {rid!r:.80} must be at most {MAX_ID_LENGTH} characters, "
                          "without '/' or control characters")
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
            query = parse_query(sql)
        except SQLError as exc:
            raise SQLError(f"sql: {exc.reason}", line=exc.line, column=exc.column) from None
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        raise InvalidRule("actions: expected a non-empty list like [{\"log\": {}}]")
    specs = tuple(parse_action(entry, n) for n, entry in enumerate(actions))
    triggered = body.get("triggered", True)
    if not isinstance(triggered, bool):
        raise InvalidRule(f"triggered: expected true or false, got {triggered!r:.40}")
    return RuleDef(rid, query, specs, _options(body.get("options")), copy.deepcopy(dict(body)), triggered)


def _options(raw: Any) -> RuleOptions:
    if raw is None:
        return RuleOptions()
    if not isinstance(raw, Mapping):
        raise InvalidRule(f"options: expected a map, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "bufferLength":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRule(f"options.bufferLength: expected an integer >= 1, got {value!r:.40}")
            values["buffer_length"] = value
        elif key == "overflow":
            if value not in ("block", "dropOldest", "dropNewest"):
                raise InvalidRule("options.overflow: expected block, dropOldest or dropNewest, "
                                  f"got {value!r:.40}")
            values["overflow"] = value
        elif key == "sendError":
            if not isinstance(value, bool):
                raise InvalidRule(f"options.sendError: expected true or false, got {value!r:.40}")
            values["send_error"] = value
        elif key == "restartStrategy":
            values["restart"] = _restart(value)
        elif key in _INERT_OPTIONS:
            if value != _INERT_OPTIONS[key]:
                raise InvalidRule(f"options.{key}: {value!r:.40} is not supported by ekws rules "
                                  f"(only {_INERT_OPTIONS[key]!r})")
        elif key not in _IGNORED_OPTIONS:
            raise InvalidRule(f"options: unknown option {key!r}; ekws rules take bufferLength, overflow, "
                              "sendError and restartStrategy")
    return RuleOptions(**values)


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


# --------------------------------------------------------------------------- running


class _Node:
    """One node's failures; its record counts are derived (see ``Rule.status``).

    Written by the rule's worker thread only.
    """

    __slots__ = ("name", "exceptions", "omitted", "last_exception", "last_exception_time",
                 "_log_time", "_suppressed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.omitted = 0  # records skipped by omitIfEmpty
        self.exceptions = 0
        self.last_exception: Optional[str] = None
        self.last_exception_time: Optional[float] = None
        self._log_time = 0.0
        self._suppressed = 0

    def failed(self, rule_id: str, exc: BaseException, *, trace: bool = True) -> None:
        """Count and log, rate-limited: the first traceback, then one summary per LOG_INTERVAL."""
        self.exceptions += 1
        self.last_exception = f"{type(exc).__name__}: {exc}" if trace else str(exc)
        now = time.time()
        self.last_exception_time = now
        if self.exceptions == 1:
            logger.error("rule %s, %s: %s", rule_id, self.name, self.last_exception,
                         exc_info=exc if trace else None)
            self._log_time = now
        elif now - self._log_time >= LOG_INTERVAL:
            logger.error("rule %s, %s: %d more failures, the last: %s", rule_id, self.name,
                         self._suppressed + 1, self.last_exception)
            self._log_time, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def metrics(self, prefix: str, records_in: int, records_out: int) -> dict[str, Any]:
        return {
            f"{prefix}_records_in_total": records_in,
            f"{prefix}_records_out_total": records_out,
            f"{prefix}_exceptions_total": self.exceptions,
            f"{prefix}_last_exception": self.last_exception or "",
            f"{prefix}_last_exception_time": _ms(self.last_exception_time),
        }


def _ms(seconds: Optional[float]) -> int:
    return 0 if seconds is None else int(seconds * 1000)


class Rule:
    """A rule's definition and, while it runs, its subscription and actions."""

    def __init__(self, definition: RuleDef, runtime: Runtime, rng: Callable[[], float]) -> None:
        self.definition = definition
        self.id = definition.id
        self._runtime = runtime
        self._rng = rng
        self._lock = threading.RLock()  # lifecycle: start/stop/restart scheduling
        self.state = STOPPED
        self.message = ""
        self.last_start: Optional[float] = None
        self.last_stop: Optional[float] = None
        self.next_start: Optional[float] = None
        self._sub: Optional[Subscription] = None
        self._actions: list[tuple[ActionSpec, Action, _Node]] = []
        self._stopped_actions: list[tuple[ActionSpec, Action, _Node]] = []
        self._senders: list[tuple[Callable[[Message], None], _Node]] = []
        self._omit = False
        self._failures = 0  # consecutive failed starts / give-ups, for restartStrategy
        self._restart_cancel = threading.Event()
        self._restart_thread: Optional[threading.Thread] = None
        self._reset_nodes()

    def _reset_nodes(self) -> None:
        query = self.definition.query
        self.source = _Node(f"source {query.stream}")
        self.filter = _Node("filter") if query.has_where else None
        self.project = _Node("project")
        self.nodes = [_Node(f"action {spec.kind} #{spec.index}") for spec in self.definition.actions]
        # The hot path counts three numbers; every node's in/out derives from them.
        self.received = 0  # records the subscription delivered
        self.passed = 0  # records the WHERE let through
        self.projected = 0  # output records handed to the actions
        self.error_records = 0  # {"error": ...} records handed to the actions (sendError)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Build and start the actions, then subscribe. Raises the first failure."""
        with self._lock:
            self._cancel_restart()
            if self.state == RUNNING:
                return
            self._failures = 0
            self._start()

    def _start(self) -> None:
        definition = self.definition
        self._reset_nodes()
        self._stopped_actions = []
        built: list[tuple[ActionSpec, Action, _Node]] = []
        try:
            for spec, node in zip(definition.actions, self.nodes):
                action = spec.build(self.id)
                built.append((spec, action, node))
                action.start()
            self._actions = built
            self._senders = [(action.send, node) for _, action, node in built]
            self._omit = any(spec.omit_if_empty for spec in definition.actions)
            options = definition.options
            self.state = RUNNING
            self.message = ""
            self.last_start = time.time()
            self._sub = self._runtime.subscribe(
                definition.query.stream, self._on_message, self._on_error, self._on_status,
                buffer_length=options.buffer_length, overflow=options.overflow)
        except Exception as exc:
            self.state = STOPPED
            self._sub = None
            self._actions = []
            self.last_stop = time.time()
            self.message = f"failed to start: {exc}"
            for _, action, _ in built:
                _close_action(self.id, action)
            logger.error("rule %s: %s", self.id, self.message)
            self._failed()
            raise
        logger.info("rule %s started on stream %s", self.id, definition.query.stream)

    def stop(self, message: str = "") -> None:
        with self._lock:
            self._cancel_restart()
            self._stop(message)

    def _stop(self, message: str) -> None:
        sub, self._sub = self._sub, None
        actions = self._actions
        self._stopped_actions = actions  # their last metrics stay in the status
        was_running = self.state == RUNNING
        self.state = STOPPED
        self.message = message
        if sub is not None:
            sub.close()  # delivers what was buffered to the actions first
        self._actions, self._senders = [], []
        for _, action, _ in actions:
            _close_action(self.id, action)
        if was_running:
            self.last_stop = time.time()
            logger.info("rule %s stopped%s", self.id, f" ({message})" if message else "")

    # -- restarts (restartStrategy) -------------------------------------------------------------

    def _failed(self) -> None:
        """A start failed or the source gave up: schedule a restart if the strategy allows."""
        strategy = self.definition.options.restart
        self._failures += 1
        if self._failures > strategy.attempts:
            return
        delay = strategy.delay_for(self._failures, self._rng)
        self.next_start = time.time() + delay
        cancel = self._restart_cancel = threading.Event()
        thread = threading.Thread(target=self._restart_later, args=(delay, cancel),
                                  name=f"ekws-rule-restart-{self.id}", daemon=True)
        # Daemon: it only waits on an event that stop() sets; nothing to flush.
        self._restart_thread = thread
        thread.start()

    def _restart_later(self, delay: float, cancel: threading.Event) -> None:
        if cancel.wait(delay):
            return
        with self._lock:
            if cancel.is_set() or self.state == RUNNING:
                return
            self.next_start = None
            logger.info("rule %s: restart attempt %d", self.id, self._failures)
            try:
                self._start()
            except Exception:  # logged and counted by _start, which scheduled the next attempt
                pass

    def _cancel_restart(self) -> None:
        """Called under the lock: a restart thread waiting for it sees the event set and returns."""
        self._restart_cancel.set()
        self.next_start = None
        self._restart_thread = None

    def _source_gave_up(self, status: Status) -> None:
        def give_up() -> None:
            with self._lock:
                if self.state != RUNNING or self._sub is None:
                    return
                self._stop(f"source stopped: {status.error or 'gave up reconnecting'}")
                self._failed()
        # Not in the worker thread: closing the subscription joins that thread.
        threading.Thread(target=give_up, name=f"ekws-rule-stop-{self.id}", daemon=True).start()

    # -- the worker thread ---------------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        # The hot path: kept flat (no helper calls on the common path).
        self.received += 1
        query = self.definition.query
        condition = query.condition
        if condition is not None:
            try:
                passed = condition(msg.data, msg) is True
            except Exception as exc:
                assert self.filter is not None
                self._expression_failed(self.filter, exc, msg)
                return
            if not passed:
                self._idle()
                return
        self.passed += 1
        projector = query.projector
        if projector is None:  # SELECT *
            out = msg
        else:
            try:
                record = projector(msg)
            except Exception as exc:
                self._expression_failed(self.project, exc, msg)
                return
            out = Message(record, msg.peer, msg.timestamp)
        self.projected += 1
        if self._omit and not out.data:
            self._send_nonempty(out)
        else:
            for send, node in self._senders:
                try:
                    send(out)
                except Exception as exc:
                    node.failed(self.id, exc)
        sub = self._sub
        if sub is None or not sub.buffered:
            self._flush()

    def _send_nonempty(self, out: Message) -> None:
        """An empty record: actions with omitIfEmpty skip it (and count it)."""
        for spec, action, node in self._actions:
            if spec.omit_if_empty:
                node.omitted += 1
                continue
            try:
                action.send(out)
            except Exception as exc:
                node.failed(self.id, exc)

    def _idle(self) -> None:
        sub = self._sub
        if sub is None or not sub.buffered:
            self._flush()

    def _flush(self) -> None:
        """No record waits: let the actions flush (a file writes its buffer out)."""
        for _, action, node in self._actions:
            try:
                action.flush()
            except Exception as exc:
                node.failed(self.id, exc)

    def _expression_failed(self, node: _Node, exc: Exception, msg: Message) -> None:
        node.failed(self.id, exc, trace=not isinstance(exc, EkwsError))
        if self.definition.options.send_error:
            self._send_error(f"{node.name}: {exc}", msg.peer)
        self._idle()

    def _on_error(self, exc: EkwsError) -> None:
        self.source.failed(self.id, exc, trace=False)
        if self.definition.options.send_error:
            query = self.definition.query
            self._send_error(str(exc), Peer(query.stream, "", "", 0))
            self._idle()

    def _send_error(self, text: str, peer: Peer) -> None:
        self.error_records += 1
        out = Message({"error": text}, peer, int(time.time() * 1000))
        for send, node in self._senders:
            try:
                send(out)
            except Exception as exc:
                node.failed(self.id, exc)

    def _on_status(self, status: Status) -> None:
        if status.state == STOPPED and self.state == RUNNING:
            self._source_gave_up(status)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """eKuiper's flat status: state, times, then every node's metrics."""
        sub = self._sub
        if self.state == RUNNING and sub is not None and sub.closed:
            self.message = "the stream's subscription was closed (stream dropped?)"
        out: dict[str, Any] = {
            "status": self.state,
            "message": self.message,
            "lastStartTimestamp": _ms(self.last_start),
            "lastStopTimestamp": _ms(self.last_stop),
            "nextStartTimestamp": _ms(self.next_start),
        }
        stream = self.definition.query.stream
        prefix = f"source_{stream}_0"
        out.update(self.source.metrics(prefix, self.received, self.received))
        out[f"{prefix}_buffer_length"] = sub.buffered if sub is not None else 0
        out[f"{prefix}_dropped_total"] = sub.dropped if sub is not None else 0
        try:
            stream_status = self._runtime.status(stream)
        except StreamNotFound:
            stream_status = {}
        for key in ("connection_status", "connection_last_connected_time",
                    "connection_last_disconnected_time", "connections"):
            if key in stream_status:
                out[f"{prefix}_{key}"] = stream_status[key]
        n = 2
        if self.filter is not None:
            out.update(self.filter.metrics(f"op_{n}_filter_0", self.received, self.passed))
            n += 1
        out.update(self.project.metrics(f"op_{n}_project_0", self.passed, self.projected))
        actions = {id(spec): action for spec, action, _ in self._actions or self._stopped_actions}
        for spec, node in zip(self.definition.actions, self.nodes):
            prefix = f"sink_{spec.kind}_{spec.index}_0"
            records_in = self.projected + self.error_records - node.omitted
            values = node.metrics(prefix, records_in, records_in - node.exceptions)
            action = actions.get(id(spec))
            extra = action.metrics() if action is not None else {}
            if "records_out_total" in extra:
                values[f"{prefix}_records_out_total"] = extra.pop("records_out_total")
            if "exceptions_total" in extra:
                values[f"{prefix}_exceptions_total"] += extra.pop("exceptions_total")
                last = extra.pop("last_exception", None)
                if last:
                    values[f"{prefix}_last_exception"] = last
            values.update({f"{prefix}_{key}": value for key, value in extra.items()})
            out.update(values)
        return out


def _close_action(rule_id: str, action: Action) -> None:
    try:
        action.close()
    except Exception:
        logger.exception("rule %s: closing %s failed", rule_id, action.name)


# --------------------------------------------------------------------------- the manager


class RuleManager:
    """Every rule of a runtime, by id. Thread-safe; the REST layer calls it directly.

    Persistence is the caller's: store ``describe(id)`` and whether the rule
    was started, and call ``create(body, start=...)`` on restore.
    """

    def __init__(self, runtime: Runtime, *, rng: Callable[[], float] = random.random) -> None:
        self._runtime = runtime
        self._rng = rng
        self._rules: dict[str, Rule] = {}
        self._lock = threading.RLock()

    def validate(self, body: Any, rule_id: Optional[str] = None) -> RuleDef:
        """Check a body as :meth:`create` would, its stream included; create nothing."""
        definition = parse_rule(body, rule_id)
        stream = definition.query.stream
        if stream not in self._runtime.streams():
            raise InvalidRule(f"stream {stream!r} does not exist (rule {definition.id!r})")
        return definition

    def create(self, body: Any, *, start: Optional[bool] = None) -> RuleDef:
        """Check, register and (unless ``start`` is false or the body says ``triggered: false``) start.

        A start failure does not undo the creation: the rule stays, stopped,
        with the reason in its status (as eKuiper does), and is logged.

        Raises:
            InvalidRule, SQLError, ActionError: a bad body (nothing registered).
            RuleExists: the id is taken.
        """
        definition = self.validate(body)
        with self._lock:
            if definition.id in self._rules:
                raise RuleExists(f"rule {definition.id!r} exists already")
            rule = Rule(definition, self._runtime, self._rng)
            self._rules[definition.id] = rule
        if definition.triggered if start is None else start:
            try:
                rule.start()
            except Exception:  # noqa: S110 - recorded in the rule's status and logged by start
                pass
        return definition

    def update(self, rule_id: str, body: Any) -> RuleDef:
        """Replace a rule's definition (PUT); a running rule restarts with it."""
        definition = self.validate(body, rule_id)
        rule = self._get(rule_id)
        with rule._lock:
            running = rule.state == RUNNING
            rule.stop()
            rule.definition = definition
            rule._reset_nodes()
            if running:
                rule.start()
        return definition

    def delete(self, rule_id: str) -> None:
        with self._lock:
            rule = self._get(rule_id)
            del self._rules[rule_id]
        rule.stop()

    def start(self, rule_id: str) -> None:
        """Start a rule (no-op when running). Raises what stopped the start (BindError ...)."""
        self._get(rule_id).start()

    def stop(self, rule_id: str) -> None:
        self._get(rule_id).stop("canceled manually")

    def restart(self, rule_id: str) -> None:
        rule = self._get(rule_id)
        with rule._lock:
            rule.stop()
            rule.start()

    def list(self) -> builtins.list[dict[str, str]]:
        """eKuiper's ``GET /rules``: ``[{"id", "status"}]``, by id."""
        with self._lock:
            rules = sorted(self._rules.values(), key=lambda r: r.id)
        return [{"id": rule.id, "status": rule.state} for rule in rules]

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
            raise RuleNotFound(f"no rule with id {rule_id!r}") from None
