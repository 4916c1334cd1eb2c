"""Rules in the service: eKuiper's ``/rules`` REST paths, ``/metrics``, the store and ``ekws.yaml``.

:class:`RulesPlugin` plugs a :class:`~ekws.rules.manager.RuleManager` into the
:class:`~ekws.service.app.Service` (``Service(..., plugins=[RulesPlugin()])``).
At start it routes the ``log`` action to the service's record output
(stdout), creates the rules declared in ``ekws.yaml`` (``rules:``, eKuiper
bodies or the short form), then restores those stored over REST in their
last started or stopped state.

Two origins, one name space, as for streams: ``ekws.yaml`` wins a clash
(the stored rule is skipped with a WARNING and left in the store); a
declared rule cannot be replaced or dropped over REST (409: edit the file)
and starts as the file says (``triggered``, default true) at every start:
start/stop over REST last until the service stops. A stored rule keeps
what the user last asked for: ``POST /rules`` stores it running (unless
``triggered: false``), ``start``/``stop``/``restart`` update it, so after a
restart or a ``kill -9`` it comes back started or stopped as it was left.

Messages are eKuiper's: ``Rule r1 was created successfully.``, ``Rule r1
was updated successfully.``, ``Rule r1 is dropped.``, ``Rule r1 was
started``, ``Rule r1 was stopped.``, ``Rule r1 was restarted``. ``GET
/rules`` answers eKuiper's ``[{"id", "name", "status", "version", "trace",
"tags"}]`` with eKuiper v2's words (``running``, ``stopped``, ``stopped by
error``); ``GET /rules/{id}/status`` has every key of eKuiper v2's status, in
its order. Also eKuiper's ``/rules/validate``, ``/rules/{id}/topo``,
``/rules/status/all``, tags and bulk start/stop (:mod:`.rule_tags`), the
sink conf keys an action's ``resourceId`` names (:mod:`.sink_confkeys`), and
the ruleset and data import/export of :mod:`.transfer`. A body's ``version``
(a string) is kept and listed; a PUT whose version is not greater, as text,
than the rule's is refused, as eKuiper's ``CanReplace``. ``PUT
/rules/{id}`` is eKuiper's upsert: a new id is created, and ``triggered``
(default true) says whether the rule runs after; start/stop/restart keep a body's ``triggered`` in step.
Errors (the table in :mod:`.errors`): a bad body or SQL 400
(naming the key, the construct and its position), an unknown id 404, an id
taken 400 (as eKuiper), a declared rule changed 409, a rule that cannot
start 400 (409 when another stream serves its path).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from ...actions import ActionError
from ...actions import cache as action_cache
from ...actions import log as log_action
from ...config import SERVICE_FILE
from ...errors import BindError, ConfigError, EkwsError, ReadOnly, ServerError
from ...rules.manager import InvalidRule, RuleExists, RuleManager, RuleNotFound
from ...rules.sql import SQLError
from ..metrics import CONTENT_TYPE, render, render_kuiper
from . import transfer
from .rest import ApiError, Route, json_body, json_response
from .rule_tags import RuleTags
from .sink_confkeys import SinkConfKeys

if TYPE_CHECKING:
    from .ports import ServicePort

logger = logging.getLogger(__name__)

_BAD_BODY = (InvalidRule, SQLError, ActionError)


class RulesPlugin:
    """The rules engine as a service plugin: its routes, start (restore) and stop."""

    runs_rules = True  # the service refuses declared rules unless a plugin runs them

    def __init__(self) -> None:
        self.manager: RuleManager | None = None
        self.declared: set[str] = set()
        self.start_failures: dict[str, Exception] = {}  # declared rules whose first start failed
        self._service: ServicePort | None = None
        self.routes: Sequence[Route] = [
            Route("/rules", ("GET",), self.list_rules),
            Route("/rules", ("POST",), self.create_rule),
            Route("/rules/<rule_id>", ("GET",), self.describe_rule),
            Route("/rules/<rule_id>", ("PUT",), self.update_rule),
            Route("/rules/<rule_id>", ("DELETE",), self.drop_rule),
            Route("/rules/<rule_id>/start", ("POST",), self.start_rule),
            Route("/rules/<rule_id>/stop", ("POST",), self.stop_rule),
            Route("/rules/<rule_id>/restart", ("POST",), self.restart_rule),
            Route("/rules/<rule_id>/status", ("GET",), self.rule_status),
            Route("/rules/<rule_id>/topo", ("GET",), self.rule_topo),
            Route("/rules/validate", ("POST",), self.validate_rule),
            Route("/rules/status/all", ("GET",), self.all_status),
            Route("/ruleset/export", ("GET", "POST"), self.export_ruleset),
            Route("/ruleset/import", ("POST",), self.import_ruleset),
            Route("/data/export", ("GET", "POST"), self.export_data),
            Route("/data/import", ("POST",), self.import_data),
            Route("/data/import/status", ("GET",), self.import_status),
            Route("/metrics", ("GET",), self.metrics),
            *RuleTags(self).routes,
            *SinkConfKeys(self).routes,
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, service: ServicePort) -> None:
        """Declared rules, then stored ones. A taken port is fatal, as for streams.

        Raises:
            ConfigError: a declared rule is wrong (names the file and ``rules[i]``).
            BindError: a rule's server-mode stream cannot bind the shared server's port.
        """
        self._service = service
        store = service.store
        manager = self.manager = RuleManager(
            service.runtime, resources=lambda kind, key: store.sink_confkeys(kind).get(key))
        service.rules = manager
        log_action.set_output(service.printer)
        action_cache.set_directory(service.settings.data_dir)  # enableCache: dataDir/cache.db
        file = service.config_dir / SERVICE_FILE
        for index, body in enumerate(service.settings.rules):
            try:
                definition = manager.create(body, start=False)
            except (RuleExists, *_BAD_BODY) as exc:
                rule_id = body.get("id") if isinstance(body, dict) else None
                named = f" (rule {rule_id!r})" if isinstance(rule_id, str) else ""
                raise ConfigError(f"rules[{index}]: {exc}{named}", file=str(file)) from exc
            self.declared.add(definition.id)
            if definition.triggered:
                self._start_restored(definition.id, declared=True)
        for rule_id, body, running in service.store.rules():
            if rule_id in self.declared:
                logger.warning("rule %s from the store is shadowed by %s (the file wins)", rule_id, file)
                continue
            try:
                manager.create(body, rule_id=rule_id, start=False)
            except (RuleExists, *_BAD_BODY) as exc:
                logger.error("rule %s from the store not restored: %s", rule_id, exc)
                continue
            if running:
                self._start_restored(rule_id)

    def _start_restored(self, rule_id: str, declared: bool = False) -> None:
        assert self.manager is not None
        try:
            self.manager.start(rule_id)
        except BindError:
            raise
        except Exception as exc:  # the rule logged it and shows it in its status
            if declared:  # the service decides whether it is fatal (a config error: exit 2)
                self.start_failures[rule_id] = exc

    def stop(self, service: ServicePort) -> None:
        """Stop every rule (delivering what their subscriptions hold); stored states stay."""
        if self.manager is not None:
            self.manager.close()
        log_action.set_output(None)
        action_cache.set_directory(None)

    def running_rules(self) -> RuleManager:
        """The manager (409 between stop and exit), for the import in :mod:`.transfer`."""
        return self._rules()

    def create(self, body: Any) -> Any:
        """Create, store and (when triggered) start a rule body (see ``_create``)."""
        return self._create(body)

    def _rules(self) -> RuleManager:
        if self.manager is None:
            raise ApiError(409, "the rules are not running")  # only between stop and exit
        return self.manager

    def _store(self) -> Any:
        assert self._service is not None
        return self._service.store

    def check_writable(self, rule_id: str) -> None:
        if rule_id in self.declared:
            assert self._service is not None
            raise ReadOnly(f"rule {rule_id} is declared in {self._service.config_dir / SERVICE_FILE}; "
                           "edit the file", name=rule_id)

    def _persist_running(self, rule_id: str, running: bool) -> None:
        """Store what the user asked for (as eKuiper's ``triggered``), not whether the start worked."""
        if rule_id not in self.declared:
            body = self._rules().describe(rule_id)
            if "triggered" in body:
                body["triggered"] = running
            self._store().put_rule(rule_id, body, running)

    # -- routes --------------------------------------------------------------------------

    def list_rules(self, service: ServicePort, request: Request) -> Response:
        rules = self._rules()
        out = []
        for rule_id in rules.ids():
            try:
                status = rules.status(rule_id)
            except RuleNotFound:  # dropped meanwhile
                continue
            try:
                body = rules.describe(rule_id)
            except RuleNotFound:
                continue
            tags = body.get("tags")
            out.append({"id": rule_id, "name": body.get("name") or rule_id, "status": list_status(status),
                        "version": str(body.get("version") or ""), "trace": False,
                        "tags": tags if isinstance(tags, list) and tags else None})
        return json_response(out)

    def create_rule(self, service: ServicePort, request: Request) -> Response:
        body = json_body(request)
        self._rules()  # 409 between stop and exit
        rule_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(rule_id, str):
            self.check_writable(rule_id)
        definition = self._create(body)
        return Response(f"Rule {definition.id} was created successfully.", 201, mimetype="text/plain")

    def _create(self, body: Any) -> Any:
        """Create, store and (when triggered) start; a start failure shows in the rule's status."""
        rules = self._rules()
        definition = rules.create(body, start=False)  # InvalidRule, SQLError, ActionError, RuleExists
        try:
            self._store().put_rule(definition.id, definition.body, definition.triggered)
        except BaseException:
            rules.delete(definition.id)
            raise
        if definition.triggered:
            try:
                rules.start(definition.id)
            except Exception:  # noqa: S110 - eKuiper's way: created, the reason in its status
                pass
        return definition

    def describe_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        return json_response(self._call(self._rules().describe, rule_id))

    def update_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        """eKuiper's upsert: a new id is created; ``triggered`` (default true) says whether it runs after."""
        body = json_body(request)
        rules = self._rules()
        self.check_writable(rule_id)
        definition = rules.validate(body, rule_id)  # a bad body: 400 by the error table
        if rule_id not in rules.ids():
            self._create(definition.body)
            return Response(f"Rule {rule_id} was updated successfully.", 200, mimetype="text/plain")
        try:
            rules.update(rule_id, body, versioned=True)
            if definition.triggered:
                rules.start(rule_id)
            else:
                rules.stop(rule_id)
        except (RuleNotFound, *_BAD_BODY):
            raise
        except Exception as exc:  # noqa: BLE001 - the new definition is in; its start failed
            logger.error("rule %s updated but not started: %s", rule_id, exc)
        self._store().put_rule(rule_id, definition.body, definition.triggered)
        return Response(f"Rule {rule_id} was updated successfully.", 200, mimetype="text/plain")

    def drop_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        rules = self._rules()
        self._call(rules.describe, rule_id)
        self.check_writable(rule_id)
        self._call(rules.delete, rule_id)
        self._store().delete_rule(rule_id)
        logger.info("rule %s dropped", rule_id)
        return Response(f"Rule {rule_id} is dropped.", 200, mimetype="text/plain")

    def start_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        self.lifecycle(self._rules().start, rule_id, True)
        return Response(f"Rule {rule_id} was started", 200, mimetype="text/plain")

    def stop_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        self.lifecycle(self._rules().stop, rule_id, False)
        return Response(f"Rule {rule_id} was stopped.", 200, mimetype="text/plain")

    def restart_rule(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        self.lifecycle(self._rules().restart, rule_id, True)
        return Response(f"Rule {rule_id} was restarted", 200, mimetype="text/plain")

    def rule_status(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        """eKuiper v2's status: its keys in its order, its state word (``stopped by error`` too)."""
        status = ekuiper_status(self._call(self._rules().status, rule_id))
        status["status"] = list_status(status)
        return json_response(status)

    def all_status(self, service: ServicePort, request: Request) -> Response:
        """eKuiper's ``GET /rules/status/all``: per rule its state and its latest exception."""
        rules = self._rules()
        out: dict[str, Any] = {}
        for rule_id in rules.ids():
            try:
                status = ekuiper_status(rules.status(rule_id))
            except RuleNotFound:
                continue
            entry: dict[str, Any] = {"status": list_status(status), "last_exception": "",
                                     "exceptions_total": 0}
            latest = 0
            for key, value in status.items():
                if key.endswith("_last_exception_time") and isinstance(value, int) and value > latest:
                    node = key[:-len("_last_exception_time")]
                    latest = value
                    entry["last_exception"] = status.get(f"{node}_last_exception", "")
                    entry["exceptions_total"] = status.get(f"{node}_exceptions_total", 0)
            out[rule_id] = entry
        return json_response(out)

    def rule_topo(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        """eKuiper's ``GET /rules/{id}/topo``: ``{"sources": [...], "edges": {node: [next]}}``."""
        status = self._call(self._rules().status, rule_id)
        return json_response(topo(status))

    def validate_rule(self, service: ServicePort, request: Request) -> Response:
        """eKuiper's ``POST /rules/validate``: 200 ``{"sources", "valid"}``, or 422 with the reason."""
        body = json_body(request)
        try:
            definition = self._rules().validate(body)
        except (*_BAD_BODY, RuleExists) as exc:
            return Response(str(exc), 422, mimetype="text/plain")
        return json_response({"sources": [definition.query.stream], "valid": True})

    # -- import / export -------------------------------------------------------------------------

    def export_ruleset(self, service: ServicePort, request: Request) -> Response:
        return _attachment(transfer.export_ruleset(service, self))

    def export_data(self, service: ServicePort, request: Request) -> Response:
        """Everything (GET), or (POST ``["r1", ...]``) those rules with their streams and conf keys."""
        if request.method == "GET":
            return _attachment(transfer.export_data(service, self))
        rule_ids = json_body(request)
        if not isinstance(rule_ids, list) or not all(isinstance(r, str) for r in rule_ids):
            raise ApiError(400, "expected a JSON array of rule ids, like [\"rule1\"]")
        return _attachment(transfer.export_rules(service, self, rule_ids))

    def import_ruleset(self, service: ServicePort, request: Request) -> Response:
        raw = transfer.read_content(json_body(request))
        document = transfer.parse_document(raw, service, self, replace=False, with_confkeys=False)
        counts = transfer.apply(document, service, self, replace=False)
        return Response("imported {} streams, {} tables and {} rules".format(*counts), 200,
                        mimetype="text/plain")

    def import_status(self, service: ServicePort, request: Request) -> Response:
        """eKuiper's ``GET /data/import/status``: what failed in the last import, by name. An ekws
        import is all or nothing (a failure is the import's answer), so every key is empty."""
        return json_response(transfer.empty_configuration())

    def import_data(self, service: ServicePort, request: Request) -> Response:
        """eKuiper's ``POST /data/import``: replace everything (``?partial=1``: add and replace)."""
        if request.args.get("stop") == "1":
            raise ApiError(400, "stop=1 (exit after the import) is not supported by ekws")
        replace = request.args.get("partial") != "1"
        try:
            raw = transfer.read_content(json_body(request))
        except transfer.BadImport as exc:
            if not str(exc).startswith("invalid import file: "):
                raise
            reason = str(exc)[len("invalid import file: "):]
            raise ApiError(400, f"configuration unmarshal with error {reason}") from None
        try:
            document = transfer.parse_document(raw, service, self, replace=replace, with_confkeys=True)
        except transfer.BadImport as exc:
            if not exc.section:
                raise
            # eKuiper's answer (fvt/import_test.go): the message is its Configuration map, as JSON
            raise ApiError(400, json.dumps(exc.configuration(), separators=(",", ":"), ensure_ascii=False)) \
                from None
        transfer.apply(document, service, self, replace=replace)
        return json_response({"ErrorMsg": "", "ConfigResponse": transfer.empty_configuration()})

    def metrics(self, service: ServicePort, request: Request) -> Response:
        """Prometheus text: every stream's metrics, then every rule's, node's and action's."""
        groups: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for name in service.runtime.streams():
            try:
                groups.append(("stream", {"stream": name}, _seconds(service.runtime.status(name))))
            except EkwsError:  # dropped meanwhile
                continue
        rules = self._rules()
        groups += [(kind, labels, _seconds(values)) for kind, labels, values in rules.metrics()]
        statuses = {}
        for rule_id in rules.ids():
            try:
                status = ekuiper_status(rules.status(rule_id))
            except RuleNotFound:
                continue
            status["status"] = list_status(status)
            statuses[rule_id] = status
        return Response(render_kuiper(statuses) + render(groups), 200, content_type=CONTENT_TYPE)

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, method: Any, rule_id: str) -> Any:
        return method(rule_id)  # RuleNotFound: 404 by the error table

    def lifecycle(self, method: Any, rule_id: str, running: bool) -> None:
        """Start/stop/restart, storing the wish even when a start fails (restartStrategy may retry)."""
        self._call(self._rules().describe, rule_id)  # 404 before anything is stored
        self._persist_running(rule_id, running)
        try:
            self._call(method, rule_id)
        except (ApiError, RuleNotFound):
            raise
        except ServerError as exc:
            raise ApiError(409, f"rule {rule_id} did not start: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - BindError, an action that cannot open ...: never a 500
            raise ApiError(400, f"rule {rule_id} did not start: {exc}") from exc


def _seconds(values: Mapping[str, Any]) -> dict[str, Any]:
    """Prometheus' base unit for ekws's own series: a time in ms since the epoch (``*_timestamp_ms``,
    eKuiper's ``*_time``) becomes ``*_timestamp_seconds``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        stem = key[:-len("_timestamp_ms")] if key.endswith("_timestamp_ms") else \
            key[:-len("_time")] if key.endswith("_time") else None
        if stem is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            out[key] = value
        else:
            out[f"{stem}_timestamp_seconds"] = value / 1000
    return out


def _attachment(document: dict[str, Any]) -> Response:
    response = json_response(document)
    response.headers["Content-Disposition"] = "Attachment"
    return response


# eKuiper's per-node metric names, in the order its status prints them
# (internal/topo/node/metric/stats_manager.go MetricNames).
NODE_METRICS: tuple[tuple[str, Any], ...] = (
    ("records_in_total", 0), ("records_out_total", 0), ("messages_processed_total", 0),
    ("process_latency_us", 0), ("buffer_length", 0), ("last_invocation", 0), ("exceptions_total", 0),
    ("last_exception", ""), ("last_exception_time", 0))
CONNECTION_METRICS: tuple[tuple[str, Any], ...] = (
    ("connection_status", 0), ("connection_last_connected_time", 0), ("connection_last_disconnected_time", 0),
    ("connection_last_disconnected_message", ""), ("connection_last_try_time", 0))
_NODE = re.compile(r"^((?:source|op|sink)_.+?_\d+)_records_in_total$")


def ekuiper_status(status: dict[str, Any]) -> dict[str, Any]:
    """A rule's status with every key of eKuiper v2's, in its order; ekws's extra keys follow each node's.

    What ekws does not measure is eKuiper's zero value: ``process_latency_us``,
    ``last_invocation`` and the sink's ``connection_last_try_time``.
    ``messages_processed_total`` is ``records_in_total`` (ekws hands a node one
    record per message).
    """
    out: dict[str, Any] = {key: status.get(key, 0) for key in
                           ("status", "message", "lastStartTimestamp", "lastStopTimestamp",
                            "nextStartTimestamp", "nextStopTimestamp")}
    out["message"] = status.get("message") or ""
    nodes = [match.group(1) for match in map(_NODE.match, status) if match]
    for node in nodes:
        values = {key[len(node) + 1:]: value for key, value in status.items() if key.startswith(node + "_")}
        values.setdefault("messages_processed_total", values.get("records_in_total", 0))
        defaults = NODE_METRICS + (CONNECTION_METRICS if not node.startswith("op_") else ())
        if node.startswith("sink_") and "connection_status" not in values:
            values["connection_status"] = 1 if status.get("status") == "running" else 0
            values.setdefault("connection_last_connected_time", status.get("lastStartTimestamp", 0))
        for key, default in defaults:
            out[f"{node}_{key}"] = values.pop(key, default)
        out.update({f"{node}_{key}": value for key, value in values.items()})
    for key, value in status.items():
        out.setdefault(key, value)
    return out


def topo(status: dict[str, Any]) -> dict[str, Any]:
    """eKuiper's printable topology from a status' node names: one chain, source to every sink."""
    names = [match.group(1).rsplit("_", 1)[0] for match in map(_NODE.match, status) if match]
    sources = [n for n in names if n.startswith("source_")]
    ops = [n for n in names if n.startswith("op_")]
    sinks = [n for n in names if n.startswith("sink_")]
    edges: dict[str, list[str]] = {}
    chain = sources[:1] + ops
    for here, there in zip(chain, chain[1:]):
        edges[here] = [there]
    if chain and sinks:
        edges[chain[-1]] = sinks
    return {"sources": sources, "edges": edges}


def list_status(status: dict[str, Any]) -> str:
    """eKuiper v2's state word for ``GET /rules`` (``internal/topo/rule/machine/state_machine.go``).

    ``running``; ``stopped`` (stopped on request, or never started); ``stopped by error``
    (a failed start or a source that gave up: the reason is in ``GET /rules/{id}/status``).
    """
    if status.get("status") == "running":
        return "running"
    reason = str(status.get("message") or "canceled manually").rstrip(".")
    return "stopped" if reason in ("canceled manually", "stopped by update") else "stopped by error"
