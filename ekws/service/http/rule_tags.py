"""eKuiper's rule tags and the bulk start/stop by tags (internal/server/rule_tag.go).

``PUT /rules/{id}/tags`` sets a rule's tags, ``PATCH`` adds to them,
``DELETE`` removes some (each a body ``{"tags": [...]}``); ``GET
/rules/tags/match`` answers the rules holding all the tags given;
``POST /rules/bulkstart`` and ``/rules/bulkstop`` start or stop them, one
``{"ruleId", "success", "error"?}`` a rule. A tag change is no new
definition: a versioned rule keeps its ``version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.wrappers import Request, Response

from ...errors import EkwsError
from ...rules.manager import RuleManager, RuleNotFound
from .rest import ApiError, Route, json_body, json_response

if TYPE_CHECKING:
    from .ports import ServicePort

__all__ = ["RuleTags"]


class RulesHost(Protocol):
    """What the tag routes need of the rules plugin (:class:`.rules.RulesPlugin`)."""

    def running_rules(self) -> RuleManager: ...

    def check_writable(self, rule_id: str) -> None: ...

    def lifecycle(self, method: Any, rule_id: str, running: bool) -> None: ...


class RuleTags:
    """The tag and bulk routes of the rules plugin."""

    def __init__(self, plugin: RulesHost) -> None:
        self._plugin = plugin
        self.routes: Sequence[Route] = [
            Route("/rules/<rule_id>/tags", ("PUT", "PATCH", "DELETE"), self.rule_tags),
            Route("/rules/tags/match", ("GET",), self.match_tags),
            Route("/rules/bulkstart", ("POST",), self.bulk_start),
            Route("/rules/bulkstop", ("POST",), self.bulk_stop),
        ]

    def rule_tags(self, service: ServicePort, request: Request, rule_id: str) -> Response:
        """PUT sets a rule's tags, PATCH adds to them, DELETE removes some (eKuiper's rule_tag.go)."""
        tags = _tags(request)
        rules = self._plugin.running_rules()
        body = rules.describe(rule_id)  # RuleNotFound: 404 by the error table
        self._plugin.check_writable(rule_id)
        old = [t for t in body.get("tags") or () if isinstance(t, str)]
        if request.method == "PUT":
            new = tags
        elif request.method == "PATCH":
            new = old + [t for t in tags if t not in old]
        else:
            new = [t for t in old if t not in tags]
        body["tags"] = new
        wish = next((running for stored, _, running in service.store.rules() if stored == rule_id), True)
        rules.update(rule_id, body)  # a running rule restarts with its new definition
        service.store.put_rule(rule_id, rules.describe(rule_id), wish)
        return Response("", 200)

    def match_tags(self, service: ServicePort, request: Request) -> Response:
        """eKuiper's ``GET /rules/tags/match`` (a body ``{"tags": [...]}``): rules holding all of them."""
        matching = self._matching(_tags(request))
        return json_response({"rules": matching} if matching else {})  # eKuiper: omitempty

    def _matching(self, wanted: list[str]) -> list[str]:
        rules = self._plugin.running_rules()
        out = []
        for rule_id in rules.ids():
            try:
                tags = rules.describe(rule_id).get("tags") or []
            except RuleNotFound:
                continue
            if all(tag in tags for tag in wanted):
                out.append(rule_id)
        return out

    def bulk_start(self, service: ServicePort, request: Request) -> Response:
        return self._bulk(request, self._plugin.running_rules().start, True)

    def bulk_stop(self, service: ServicePort, request: Request) -> Response:
        return self._bulk(request, self._plugin.running_rules().stop, False)

    def _bulk(self, request: Request, method: Any, running: bool) -> Response:
        """eKuiper's bulk start/stop by tags: ``[{"ruleId", "success", "error"?}]``."""
        out = []
        for rule_id in self._matching(_tags(request)):
            try:
                self._plugin.lifecycle(method, rule_id, running)
            except (ApiError, EkwsError) as exc:
                out.append({"ruleId": rule_id, "success": False, "error": getattr(exc, "message", str(exc))})
                continue
            out.append({"ruleId": rule_id, "success": True})
        return json_response(out)


def _tags(request: Request) -> list[str]:
    """eKuiper's ``{"tags": ["a", "b"]}`` body (required, as eKuiper's decoder requires it)."""
    body = json_body(request)
    tags = body.get("tags", []) if isinstance(body, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, "decode body error: expected {\"tags\": [\"tag\", ...]}")
    return tags
