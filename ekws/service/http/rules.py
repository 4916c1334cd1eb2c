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
/rules`` answers ``[{"id", "status"}]`` with eKuiper v2's words (``running``,
``stopped``, ``stopped by error``). ``PUT /rules/{id}`` is eKuiper's upsert:
a new id is created, and ``triggered`` (default true) says whether the rule
runs after; start/stop/restart keep a body's ``triggered`` in step.
Errors (the table in :mod:`.errors`): a bad body or SQL 400
(naming the key, the construct and its position), an unknown id 404, an id
taken 400 (as eKuiper), a declared rule changed 409, a rule that cannot
start 400 (409 when another stream serves its path).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from ...actions import ActionError
from ...actions import log as log_action
from ...config import SERVICE_FILE
from ...errors import BindError, ConfigError, EkwsError, ReadOnly, ServerError
from ...rules.manager import InvalidRule, RuleExists, RuleManager, RuleNotFound
from ...rules.sql import SQLError
from ..metrics import CONTENT_TYPE, render
from .rest import ApiError, Route, json_body, json_response

if TYPE_CHECKING:
    from ..app import Service

logger = logging.getLogger(__name__)

_BAD_BODY = (InvalidRule, SQLError, ActionError)


class RulesPlugin:
    """The rules engine as a service plugin: its routes, start (restore) and stop."""

    runs_rules = True  # the service refuses declared rules unless a plugin runs them

    def __init__(self) -> None:
        self.manager: RuleManager | None = None
        self.declared: set[str] = set()
        self.start_failures: dict[str, Exception] = {}  # declared rules whose first start failed
        self._service: Service | None = None
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
            Route("/metrics", ("GET",), self.metrics),
        ]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, service: Service) -> None:
        """Declared rules, then stored ones. A taken port is fatal, as for streams.

        Raises:
            ConfigError: a declared rule is wrong (names the file and ``rules[i]``).
            BindError: a rule's server-mode stream cannot bind the shared server's port.
        """
        self._service = service
        manager = self.manager = RuleManager(service.runtime)
        service.rules = manager
        log_action.set_output(service.printer)
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

    def stop(self, service: Service) -> None:
        """Stop every rule (delivering what their subscriptions hold); stored states stay."""
        if self.manager is not None:
            self.manager.close()
        log_action.set_output(None)

    def _rules(self) -> RuleManager:
        if self.manager is None:
            raise ApiError(409, "the rules are not running")  # only between stop and exit
        return self.manager

    def _store(self) -> Any:
        assert self._service is not None
        return self._service.store

    def _check_writable(self, rule_id: str) -> None:
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

    def list_rules(self, service: Service, request: Request) -> Response:
        rules = self._rules()
        out = []
        for rule_id in rules.ids():
            try:
                status = rules.status(rule_id)
            except RuleNotFound:  # dropped meanwhile
                continue
            out.append({"id": rule_id, "status": list_status(status)})
        return json_response(out)

    def create_rule(self, service: Service, request: Request) -> Response:
        body = json_body(request)
        self._rules()  # 409 between stop and exit
        rule_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(rule_id, str):
            self._check_writable(rule_id)
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

    def describe_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        return json_response(self._call(self._rules().describe, rule_id))

    def update_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        """eKuiper's upsert: a new id is created; ``triggered`` (default true) says whether it runs after."""
        body = json_body(request)
        rules = self._rules()
        self._check_writable(rule_id)
        definition = rules.validate(body, rule_id)  # a bad body: 400 by the error table
        if rule_id not in rules.ids():
            self._create(definition.body)
            return Response(f"Rule {rule_id} was updated successfully.", 200, mimetype="text/plain")
        try:
            rules.update(rule_id, body)
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

    def drop_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        rules = self._rules()
        self._call(rules.describe, rule_id)
        self._check_writable(rule_id)
        self._call(rules.delete, rule_id)
        self._store().delete_rule(rule_id)
        logger.info("rule %s dropped", rule_id)
        return Response(f"Rule {rule_id} is dropped.", 200, mimetype="text/plain")

    def start_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        self._lifecycle(self._rules().start, rule_id, True)
        return Response(f"Rule {rule_id} was started", 200, mimetype="text/plain")

    def stop_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        self._lifecycle(self._rules().stop, rule_id, False)
        return Response(f"Rule {rule_id} was stopped.", 200, mimetype="text/plain")

    def restart_rule(self, service: Service, request: Request, rule_id: str) -> Response:
        self._lifecycle(self._rules().restart, rule_id, True)
        return Response(f"Rule {rule_id} was restarted", 200, mimetype="text/plain")

    def rule_status(self, service: Service, request: Request, rule_id: str) -> Response:
        return json_response(self._call(self._rules().status, rule_id))

    def metrics(self, service: Service, request: Request) -> Response:
        """Prometheus text: every stream's metrics, then every rule's, node's and action's."""
        groups: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for name in service.runtime.streams():
            try:
                groups.append(("stream", {"stream": name}, service.runtime.status(name)))
            except EkwsError:  # dropped meanwhile
                continue
        groups += self._rules().metrics()
        return Response(render(groups), 200, content_type=CONTENT_TYPE)

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, method: Any, rule_id: str) -> Any:
        return method(rule_id)  # RuleNotFound: 404 by the error table

    def _lifecycle(self, method: Any, rule_id: str, running: bool) -> None:
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


def list_status(status: dict[str, Any]) -> str:
    """eKuiper v2's state word for ``GET /rules`` (``internal/topo/rule/machine/state_machine.go``).

    ``running``; ``stopped`` (stopped on request, or never started); ``stopped by error``
    (a failed start or a source that gave up: the reason is in ``GET /rules/{id}/status``).
    """
    if status.get("status") == "running":
        return "running"
    reason = str(status.get("message") or "canceled manually").rstrip(".")
    return "stopped" if reason in ("canceled manually", "stopped by update") else "stopped by error"
