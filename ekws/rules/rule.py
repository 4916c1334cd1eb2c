"""One running rule: its subscription, its compiled query, its actions, its status.

Everything per record runs in the subscription's worker thread (``_on_message``);
the lifecycle (start, stop, restarts by ``restartStrategy``) runs under the
rule's lock in the caller's thread or a named restart thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Optional, Union

from .. import EkwsError, Message, Peer, Runtime, Status, StreamNotFound, Subscription
from ..actions import ActionSpec, Sink
from .definition import RuleDef
from .grouping import Grouping, GroupLimit
from .node import LOG_INTERVAL, Node, ms
from .window import Emission, EventWindowRunner, WindowRunner

__all__ = ["LOG_INTERVAL", "RUNNING", "STOPPED", "Rule"]  # LOG_INTERVAL: from node.py, re-exported

logger = logging.getLogger(__name__)

RUNNING, STOPPED = "running", "stopped"


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
        self._actions: list[tuple[ActionSpec, Sink, Node]] = []
        self._stopped_actions: list[tuple[ActionSpec, Sink, Node]] = []
        self._senders: list[tuple[Callable[[Message], None], Node]] = []
        self._emitters: list[tuple[Callable[[list[Message]], None], Node]] = []
        self._run = definition.query.run
        self._failures = 0  # consecutive failed starts / give-ups, for restartStrategy
        self._restart_cancel = threading.Event()
        self._restart_thread: Optional[threading.Thread] = None
        # GROUP BY a window: the records go there.
        self._window: Optional[Union[WindowRunner, EventWindowRunner]] = None
        self._reset_nodes()

    def _reset_nodes(self) -> None:
        query = self.definition.query
        self.source = Node(f"source {query.stream}")
        self.filter = Node("filter") if query.has_where else None
        self.window = Node("window") if query.grouping is not None else None
        self.windows_out = 0  # windows that fired with rows
        self.window_latency_us = 0  # the last fired window's evaluation and sending (process_latency_us)
        self.window_invoked: Optional[float] = None  # when a window last fired (last_invocation)
        self.group_limit = GroupLimit(self.definition.options.max_window_groups)
        self.project = Node("project")
        self.nodes = [Node(f"action {spec.kind} #{spec.index}") for spec in self.definition.actions]
        # The hot path counts three numbers; every node's in/out derives from them.
        self.received = 0  # records the subscription delivered
        self.passed = 0  # records the WHERE let through
        self.projected = 0  # output records handed to the actions
        self.error_records = 0  # {"error": ...} records handed to the actions (sendError)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def subscription(self) -> Optional[Subscription]:
        """The running subscription (None while stopped): the service counts what it left undelivered."""
        return self._sub

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
        built: list[tuple[ActionSpec, Sink, Node]] = []
        # sendNilField false: null columns are left out, except those SELECT * passes on as they are.
        drop_nil = not (definition.options.send_nil or definition.query.select_all)
        try:
            for spec, node in zip(definition.actions, self.nodes):
                action = spec.build(self.id, drop_nil=drop_nil)
                action.runtime = self._runtime
                built.append((spec, action, node))
                action.start()
            self._actions = built
            self._senders = [(action.send, node) for _, action, node in built]
            self._emitters = [(action.emit, node) for _, action, node in built]
            definition.query.reset()  # analytic state starts empty, as eKuiper's
            options = definition.options
            grouping = definition.query.grouping
            if grouping is not None:
                trigger = grouping.triggers if grouping.trigger else None
                limit = self.group_limit
                # Incremental (aggregates with accumulators): the window keeps groups, not rows.
                groups = (lambda: grouping.new_groups(limit)) if grouping.incremental else None
                if options.is_event_time:
                    self._window = EventWindowRunner(grouping.window, self._on_window, trigger=trigger,
                                                     late_tolerance=options.late_tolerance,
                                                     state=grouping.state, groups=groups,
                                                     max_rows=options.max_window_rows)
                else:
                    self._window = WindowRunner(grouping.window, self._on_window, trigger=trigger,
                                                state=grouping.state, groups=groups,
                                                max_rows=options.max_window_rows)
            self._sub = self._runtime.subscribe(
                definition.query.stream, self._on_message, self._on_error, self._on_status,
                buffer_length=options.buffer_length, overflow=options.overflow)
            # RUNNING only once subscribed (the source started, its path mounted):
            # a reader of the state never sees a rule that may still fail to start.
            self.state = RUNNING
            self.message = ""
            self.last_start = time.time()
        except Exception as exc:
            self.state = STOPPED
            self._stop_window()
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

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()

    def replace(self, definition: RuleDef) -> None:
        """A new definition (same id); a running rule restarts with it."""
        with self._lock:
            running = self.state == RUNNING
            self.stop()
            self.definition = definition
            self._run = definition.query.run
            self._reset_nodes()
            if running:
                self.start()

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
        self._stop_window()  # a window that has not fired flushes nothing
        self._actions, self._senders, self._emitters = [], [], []
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
        # The hot path: kept flat (no helper calls on the common path). The query
        # is one generated function: the output record, or None when the WHERE
        # drops the message.
        self.received += 1
        try:
            record = self._run(msg)
        except Exception as exc:
            self._query_failed(exc, msg)
            return
        window = self._window
        if record is None:
            if window is not None:
                window.observe(msg)  # event time: the watermark moves on every record
            self._idle()
            return
        if window is not None:
            self.passed += 1
            window.add(msg)
            return
        self.passed += 1
        if isinstance(record, list):  # unnest(): one record became several (ekws.rules.expr.Rows)
            self._send_rows(msg, record)
            return
        self.projected += 1
        # The message is this subscription's own (ekws.Message): it carries the
        # output record on to the actions, without a new object per record.
        msg.data = record
        for send, node in self._senders:  # each action's Sink: omitIfEmpty, transform, delivery
            try:
                send(msg)
            except Exception as exc:
                node.failed(self.id, exc)
        sub = self._sub
        if sub is None or not sub.backlog:  # the last record for now: flush the file actions
            self._flush()

    def _send_rows(self, msg: Message, rows: list[dict[str, Any]]) -> None:
        """The rows of an ``unnest``: one emission, as a window's rows are (sendSingle decides
        one message or one a row); an empty array sends nothing."""
        self._emit([Message(row, msg.peer, msg.timestamp) for row in rows])
        sub = self._sub
        if sub is None or not sub.backlog:
            self._flush()
        self._idle()

    def _stop_window(self) -> None:
        window, self._window = self._window, None
        if window is not None:
            window.stop()

    def _on_window(self, emission: Emission) -> None:
        """A window fired (in the timer thread, or the worker's for count and sliding windows):
        its output rows go to each action as one emission (sendSingle decides one message or one a row)."""
        grouping = self.definition.query.grouping
        assert grouping is not None and self.window is not None
        self.windows_out += 1
        self.window_invoked = time.time()
        began = time.perf_counter()
        try:
            self._evaluate(grouping, emission)
        finally:
            self.window_latency_us = int((time.perf_counter() - began) * 1_000_000)

    def _evaluate(self, grouping: Grouping, emission: Emission) -> None:
        assert self.window is not None
        try:
            results = grouping.evaluate(emission, self.group_limit)
        except Exception as exc:
            node = self.window
            node.failed(self.id, exc, trace=not isinstance(exc, EkwsError))
            if self.definition.options.send_error:
                peer = emission.peer or Peer(self.definition.query.stream, "", "", 0)
                self._send_error(f"{node.name}: {exc}", peer)
            self._flush()
            return
        self._emit([Message(record, context.peer, emission.end) for record, context in results])
        self._flush()

    def _emit(self, outs: list[Message]) -> None:
        """Rows as one emission to each action (its sink: sendSingle decides one message or one a
        row); none for no rows. A failing action is counted on its node, the others still get them."""
        self.projected += len(outs)
        if outs:
            for emit, node in self._emitters:
                try:
                    emit(outs)
                except Exception as exc:
                    node.failed(self.id, exc)

    def _query_failed(self, exc: Exception, msg: Message) -> None:
        """The query raised: the WHERE alone says which node failed (expressions have no side effects)."""
        query = self.definition.query
        if query.condition is not None:
            try:
                passed = query.condition(msg.data, msg) is True
            except Exception as where_exc:
                assert self.filter is not None
                self._expression_failed(self.filter, where_exc, msg)
                return
            if not passed:  # pragma: no cover - unreachable: the same WHERE passed in run()
                self._idle()
                return
        self.passed += 1
        self._expression_failed(self.project, exc, msg)

    def _idle(self) -> None:
        sub = self._sub
        if sub is None or not sub.backlog:  # the last record for now: flush the file actions
            self._flush()

    def _flush(self) -> None:
        """No record waits: let the actions flush (a file writes its buffer out)."""
        for _, action, node in self._actions:
            try:
                action.flush()
            except Exception as exc:
                node.failed(self.id, exc)

    def _expression_failed(self, node: Node, exc: Exception, msg: Message) -> None:
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
        if status.state == STOPPED:  # give_up() checks, under the lock, that the rule still runs
            self._source_gave_up(status)

    # -- status ----------------------------------------------------------------------------

    def _window_metrics(self, prefix: str) -> dict[str, Any]:
        """eKuiper's nine op metrics (internal/topo/node/metric/stats_manager.go), then ekws's:
        rows dropped over maxWindowRows and over maxWindowGroups, late records (event time),
        and what the window holds now (rows, or groups of an incremental window)."""
        assert self.window is not None
        runner = self._window
        state = runner.state if runner is not None else None
        incremental = state is not None and state.incremental
        held = state.held if state is not None else 0
        values = self.window.metrics(prefix, self.passed, self.windows_out)
        return {
            f"{prefix}_records_in_total": values[f"{prefix}_records_in_total"],
            f"{prefix}_records_out_total": values[f"{prefix}_records_out_total"],
            f"{prefix}_messages_processed_total": self.passed,
            f"{prefix}_process_latency_us": self.window_latency_us,
            f"{prefix}_buffer_length": 0,  # no queue between ekws's nodes: the subscription buffers
            f"{prefix}_last_invocation": ms(self.window_invoked),
            f"{prefix}_exceptions_total": values[f"{prefix}_exceptions_total"],
            f"{prefix}_last_exception": values[f"{prefix}_last_exception"],
            f"{prefix}_last_exception_time": values[f"{prefix}_last_exception_time"],
            f"{prefix}_dropped_total": state.dropped if state is not None else 0,
            f"{prefix}_groups_dropped_total": self.group_limit.dropped,
            f"{prefix}_late_total": runner.late if runner is not None else 0,
            f"{prefix}_held_rows": 0 if incremental else held,
            f"{prefix}_held_groups": held if incremental else 0,
        }

    def status(self) -> dict[str, Any]:
        """eKuiper's flat status: state, times, then every node's metrics."""
        sub = self._sub
        if self.state == RUNNING and sub is not None and sub.closed:
            self.message = "the stream's subscription was closed (stream dropped?)"
        out: dict[str, Any] = {
            "status": self.state,
            "message": self.message,
            "lastStartTimestamp": ms(self.last_start),
            "lastStopTimestamp": ms(self.last_stop),
            "nextStartTimestamp": ms(self.next_start),
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
        if self.window is not None:
            out.update(self._window_metrics(f"op_{n}_window_0"))
            n += 1
            out.update(self.project.metrics(f"op_{n}_project_0", self.windows_out, self.projected))
        else:
            out.update(self.project.metrics(f"op_{n}_project_0", self.passed, self.projected))
        evicted = sum(node.evicted for node in self.definition.query.analytics)
        if self.definition.query.analytics:
            out[f"op_{n}_project_0_analytic_partitions_evicted"] = evicted
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


def _close_action(rule_id: str, action: Sink) -> None:
    try:
        action.close()
    except Exception:
        logger.exception("rule %s: closing %s failed", rule_id, action.name)
