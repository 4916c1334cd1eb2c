"""eKuiper's sink conf keys: props stored once, named by actions with ``resourceId``.

``PUT /metadata/sinks/{kind}/confKeys/{key}`` stores a map of action props
(for ``websocket``, ``mqtt`` ... any ekws action kind) in the service's
store; ``DELETE`` removes it; ``GET /metadata/sinks/yaml/{kind}`` lists a
kind's keys (secrets masked, as eKuiper's docs say). An action
``{"websocket": {"resourceId": "k", "path": "/out"}}`` runs with the key's
props, its own over them (eKuiper's ``internal/topo/node/conf/sink.go``).

Where ekws differs from eKuiper, so a rule never runs with props other than
those it shows: a ``resourceId`` naming no key refuses the rule (eKuiper logs
a warning and runs without the key's props); a PUT reaches the rules using
the key at once (each is checked with the new props first, a refusal changes
nothing; a running one restarts, as an update does), where eKuiper's rules
read it at their next restart; a DELETE of a key rules use is refused (400,
naming them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol

from werkzeug.wrappers import Request, Response

from ...actions import KINDS
from ...ddl import id_problem
from ...errors import InUse, NotFound
from ...rules.manager import RuleManager, RuleNotFound
from .rest import ApiError, Route, json_object, json_response, text_response

if TYPE_CHECKING:
    from .ports import ServicePort

__all__ = ["SinkConfKeys"]

logger = logging.getLogger(__name__)

_MASK = "******"
_SECRETS = ("password", "token", "authtoken")


class RulesHost(Protocol):
    """What the conf keys need of the rules plugin (:class:`.rules.RulesPlugin`)."""

    def running_rules(self) -> RuleManager: ...


class SinkConfKeys:
    """The sink conf key routes of the rules plugin."""

    def __init__(self, plugin: RulesHost) -> None:
        self._plugin = plugin
        self._lock = threading.Lock()  # one change at a time: check the rules, store, apply
        self.routes: Sequence[Route] = [
            Route("/metadata/sinks/yaml/<kind>", ("GET",), self.list_keys),
            Route("/metadata/sinks/<kind>/confKeys/<key>", ("PUT",), self.put_key),
            Route("/metadata/sinks/<kind>/confKeys/<key>", ("DELETE",), self.delete_key),
        ]

    def list_keys(self, service: ServicePort, request: Request, kind: str) -> Response:
        _check_kind(kind)
        keys = service.store.sink_confkeys(kind)
        return json_response({key: _masked(props) for key, props in keys.items()})

    def put_key(self, service: ServicePort, request: Request, kind: str, key: str) -> Response:
        _check_kind(kind)
        _check_key(key)
        props = json_object(request)
        if len(props) == 1:  # {"<key>": {props}} as for source conf keys; the bare props work too
            (only, value), = props.items()
            if only == key and isinstance(value, dict):
                props = value
        if any(str(name).casefold() == "resourceid" for name in props):
            raise ApiError(400, f"sink conf key {kind}.{key}: resourceId cannot name another conf key")
        rules = self._plugin.running_rules()
        with self._lock:
            def candidate(k: str, r: str) -> Optional[Mapping[str, Any]]:
                return props if (k, r) == (kind, key) else service.store.sink_confkeys(k).get(r)

            users = rules.on_resource(kind, key)
            for rule_id in users:  # every rule using the key must take the new props
                try:
                    rules.validate(rules.describe(rule_id), rule_id, resources=candidate)
                except RuleNotFound:
                    continue
                except ValueError as exc:  # InvalidRule, SQLError, ActionError
                    raise ApiError(400, f"sink conf key {kind}.{key}: rule {rule_id} cannot use these "
                                        f"props: {exc}") from exc
            service.store.put_sink_confkey(kind, key, props)
            for rule_id in users:
                try:
                    rules.update(rule_id, rules.describe(rule_id))  # a running rule restarts with them
                except RuleNotFound:
                    continue
                except Exception as exc:  # noqa: BLE001 - the rule shows why in its status
                    logger.error("rule %s did not restart with sink conf key %s.%s: %s",
                                 rule_id, kind, key, exc)
        logger.info("sink conf key %s.%s saved (rules using it: %s)", kind, key, ", ".join(users) or "none")
        return text_response(f"Sink conf key {kind}.{key} is saved.")

    def delete_key(self, service: ServicePort, request: Request, kind: str, key: str) -> Response:
        _check_kind(kind)
        _check_key(key)
        with self._lock:
            if key not in service.store.sink_confkeys(kind):
                raise NotFound(f"sink conf key {kind}.{key} is not found", name=key)
            users = self._plugin.running_rules().on_resource(kind, key)
            if users:
                raise InUse(f"sink conf key {kind}.{key} is used by rule(s) {', '.join(users)}; "
                            "change or drop them first", name=key)
            service.store.delete_sink_confkey(kind, key)
        logger.info("sink conf key %s.%s deleted", kind, key)
        return text_response(f"Sink conf key {kind}.{key} is deleted.")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"sink {kind!r:.40} is not found; ekws has {', '.join(KINDS)}", name=kind)


def _check_key(key: str) -> None:
    problem = id_problem(key)  # eKuiper's validate.ValidateID
    if problem is not None:
        raise ApiError(400, f"Invalid confKey: {problem[:120]}")


def _masked(props: Any) -> Any:
    """Secrets replaced: ``password``, ``token``, ``authToken`` and every ``requestHeader`` value."""
    if not isinstance(props, dict):
        return props
    out: dict[str, Any] = {}
    for name, value in props.items():
        folded = str(name).casefold()
        if folded in _SECRETS and value:
            out[name] = _MASK
        elif folded == "requestheader" and isinstance(value, dict):
            out[name] = {header: _MASK for header in value}
        else:
            out[name] = _masked(value)
    return out
