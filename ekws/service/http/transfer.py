"""eKuiper's ruleset and data import/export: how a fleet of gateways is provisioned.

Export from one service (``GET /ruleset/export``, ``GET /data/export``),
import into many (``POST /ruleset/import``, ``POST /data/import``). The
documents are eKuiper's: a ruleset is ``{"streams": {name: sql}, "tables":
{}, "rules": {id: "<rule json>"}}``; data (eKuiper's ``Configuration``) adds
``sourceConfig: {"websocket": "<conf keys json>"}`` and eKuiper's other keys,
empty (ekws has no plugins, services, schemas or uploads).

Two promises eKuiper does not make, both checked by the tests:

- **All or nothing.** The whole document is checked first (every statement
  parsed, every rule compiled against the streams it will have, every conf
  key); one bad entry and the answer is 400 naming it, with nothing changed.
  If applying still fails (a port taken by a server-mode stream), what was
  there is put back.
- **Idempotent.** An entry equal to what the service holds is left alone
  (a running rule keeps running, its counters untouched); importing the same
  file twice changes nothing the second time.

``POST /data/import`` replaces: streams and rules not in the document are
dropped (as eKuiper resets before a full import); ``?partial=1`` only adds
and replaces. ``POST /ruleset/import`` adds and replaces. Streams and rules
declared in ``ekws.yaml`` can be in a document only as they are declared.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ...config import websocket_config_from_dict
from ...ddl import parse_stream
from ...errors import ConfigError, EkwsError, ReadOnly
from ...rules.definition import InvalidRule, parse_rule
from ...rules.sql import check_fields

if TYPE_CHECKING:
    from ...rules.manager import RuleManager
    from .ports import ServicePort

logger = logging.getLogger(__name__)

__all__ = ["Document", "BadImport", "apply", "export_data", "export_ruleset", "parse_document"]

MAX_FILE = 16 << 20  # a document named by {"file": path}; a body is bounded by the REST layer

_CONFIGURATION_KEYS = ("streams", "tables", "rules", "nativePlugins", "portablePlugins", "sourceConfig",
                       "sinkConfig", "connectionConfig", "Service", "Schema", "uploads", "scripts")
# eKuiper's Configuration keys that ekws has nothing for: exported empty, refused unless empty.
_EMPTY_KEYS = ("tables", "nativePlugins", "portablePlugins", "sinkConfig", "connectionConfig", "Service",
               "Schema", "uploads", "scripts")


class RulesPlugin(Protocol):
    """What an import needs of the rules plugin (:class:`.rules.RulesPlugin`)."""

    manager: Optional[RuleManager]
    declared: set[str]

    def running_rules(self) -> RuleManager: ...

    def create(self, body: Any) -> Any: ...


class BadImport(InvalidRule):
    """A document that cannot be imported; nothing was changed (400 by the error table).

    ``section`` and ``name`` say which entry (``streams``, ``demo``) when one is to blame.
    """

    def __init__(self, message: str, *, section: str = "", name: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.section, self.name, self.detail = section, name, detail or message

    def configuration(self) -> dict[str, Any]:
        """eKuiper's data-import error answer: the Configuration map with the entry's reason."""
        answer = empty_configuration()
        if self.section in answer:
            answer[self.section][self.name] = self.detail
        return answer


def _bad(section: str, name: Any, detail: str) -> BadImport:
    return BadImport(f"{section}.{name}: {detail}", section=section, name=str(name), detail=detail)


@dataclass
class Document:
    """A checked import: statements and rule bodies by name, conf keys (None: leave them)."""

    streams: dict[str, str] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    confkeys: dict[str, dict[str, Any]] | None = None


# -- export ------------------------------------------------------------------------------------------


def export_ruleset(service: ServicePort, plugin: RulesPlugin) -> dict[str, Any]:
    runtime = service.runtime
    streams = {}
    for name in runtime.streams():
        try:
            streams[name] = runtime.describe_stream(name).sql
        except EkwsError:  # dropped meanwhile
            continue
    manager = plugin.manager
    rules = {}
    for rule_id in manager.ids() if manager is not None else ():
        try:
            body = {**manager.describe(rule_id), "id": rule_id}  # type: ignore[union-attr]
            rules[rule_id] = json.dumps(body, ensure_ascii=False)
        except EkwsError:
            continue
    return {"streams": streams, "tables": {}, "rules": rules}


def export_data(service: ServicePort, plugin: RulesPlugin) -> dict[str, Any]:
    """eKuiper's ``Configuration``, its keys in its order (internal/server/import_export.go)."""
    ruleset = export_ruleset(service, plugin)
    stored = service.store.confkeys()
    document = empty_configuration()
    document.update(streams=ruleset["streams"], rules=ruleset["rules"])
    document["sourceConfig"] = {"websocket": json.dumps(stored, ensure_ascii=False)} if stored else {}
    return document


def export_rules(service: ServicePort, plugin: RulesPlugin, rule_ids: list[str]) -> dict[str, Any]:
    """eKuiper's partial export (``POST /data/export``): the rules, the streams they read and the
    stored conf keys those streams name.

    Raises:
        RuleNotFound: an id that is no rule (eKuiper exports an empty entry for it).
    """
    manager = plugin.running_rules()
    document = empty_configuration()
    stored = service.store.confkeys()
    keys: dict[str, Any] = {}
    for rule_id in rule_ids:
        body = {**manager.describe(rule_id), "id": rule_id}  # a body PUT without its id has it here
        document["rules"][rule_id] = json.dumps(body, ensure_ascii=False)
        stream = _stream_of(body)
        if stream is None or stream in document["streams"]:
            continue
        definition = service.runtime.describe_stream(stream)
        document["streams"][stream] = definition.sql
        if definition.conf_key is not None:
            keys.update({k: v for k, v in stored.items() if k.casefold() == definition.conf_key.casefold()})
    if keys:
        document["sourceConfig"] = {"websocket": json.dumps(keys, ensure_ascii=False)}
    return document


def empty_configuration() -> dict[str, Any]:
    """Every key of eKuiper's ``Configuration``, empty: what a successful import answers as its
    ``ConfigResponse`` (eKuiper lists there what failed, by name)."""
    return {key: {} for key in _CONFIGURATION_KEYS}


# -- import ------------------------------------------------------------------------------------------


def read_content(body: Any) -> Any:
    """eKuiper's import body ``{"content": "<json>"}`` (or ``{"file": path}`` on the service's disk)."""
    if not isinstance(body, Mapping):
        raise BadImport("Invalid body: expected {\"content\": \"...\"} or {\"file\": \"...\"}")
    content, path = body.get("content"), body.get("file")
    if content and path:
        raise BadImport("Invalid body: Cannot specify both content and file")
    if not content and not path:
        raise BadImport("Invalid body: must specify content or file")
    if path:
        if not isinstance(path, str) or "://" in path and not path.startswith("file://"):
            raise BadImport("file: ekws reads a path on the service's disk (no URLs)")
        content = _read_file(path[7:] if path.startswith("file://") else path)
    if isinstance(content, (dict, list)):
        return content
    if not isinstance(content, str):
        raise BadImport("content: expected the document as a JSON string")
    try:
        return json.loads(content)
    except ValueError as exc:
        raise BadImport(f"invalid import file: {exc}") from None


def _read_file(path: str) -> str:
    """A regular file of at most MAX_FILE bytes (never a device or a pipe, which could be endless)."""
    try:
        with open(path, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise BadImport(f"fail to read file {path}: not a regular file")
            data = file.read(MAX_FILE + 1)
    except OSError as exc:
        raise BadImport(f"fail to read file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE:
        raise BadImport(f"fail to read file {path}: over {MAX_FILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadImport(f"fail to read file {path}: not UTF-8") from None


def parse_document(raw: Any, service: ServicePort, plugin: RulesPlugin, *, replace: bool,
                   with_confkeys: bool) -> Document:
    """Check a whole document against what the service will hold after it; change nothing."""
    if not isinstance(raw, Mapping):
        raise BadImport("invalid import file: expected a JSON object")
    known = ("streams", "rules", "sourceConfig", *_EMPTY_KEYS)
    for key, value in raw.items():
        if key not in known:
            raise BadImport(f"invalid import file: unknown key {key!r}")
        if value is not None and not isinstance(value, Mapping):
            raise BadImport(f"{key}: expected a map of names, got {type(value).__name__}")
        if key in _EMPTY_KEYS and value:
            raise BadImport(f"{key}: ekws has no {key}; the document must leave it empty")
    document = Document()
    for name, sql in (raw.get("streams") or {}).items():
        if not isinstance(sql, str):
            raise _bad("streams", name, "expected a CREATE STREAM statement")
        document.streams[str(name)] = sql
    for rule_id, text in (raw.get("rules") or {}).items():
        try:
            body = json.loads(text) if isinstance(text, str) else text
        except ValueError as exc:
            raise _bad("rules", rule_id, f"invalid rule json: {exc}") from None
        if not isinstance(body, dict):
            raise _bad("rules", rule_id, "expected a rule object")
        document.rules[str(rule_id)] = {**body, "id": body.get("id", rule_id)}
    if with_confkeys:
        document.confkeys = _confkeys(raw.get("sourceConfig") or {})
    _check(document, service, plugin, replace=replace)
    return document


def _confkeys(source_config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    for plugin, text in source_config.items():
        if plugin != "websocket":
            raise _bad("sourceConfig", plugin, "ekws has only the websocket source")
        try:
            value = json.loads(text) if isinstance(text, str) else text
        except ValueError as exc:
            raise _bad("sourceConfig", "websocket", f"invalid json: {exc}") from None
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise _bad("sourceConfig", "websocket", "expected {\"<conf key>\": {props}}")
        try:
            websocket_config_from_dict(value, path="sourceConfig.websocket")
        except ConfigError as exc:
            raise _bad("sourceConfig", "websocket", str(exc)) from None
        keys.update(value)
    return keys


def _check(document: Document, service: ServicePort, plugin: RulesPlugin, *, replace: bool) -> None:
    runtime = service.runtime
    fields: dict[str, Any] = {}
    if not replace:
        for name in runtime.streams():
            try:
                fields[name] = runtime.describe_stream(name).fields
            except EkwsError:
                continue
    for name in service.declared:
        fields[name] = runtime.describe_stream(name).fields
    for name, sql in document.streams.items():
        try:
            definition = parse_stream(sql)
        except EkwsError as exc:
            raise _bad("streams", name, f"{exc}") from None
        if definition.name != name:
            raise _bad("streams", name, f"the statement defines stream {definition.name!r}")
        if definition.conf_key is not None:
            _check_conf_key(definition.conf_key, name, document, service, replace=replace)
        if name in service.declared and service.declared[name] != sql:
            raise ReadOnly(f"streams.{name}: stream {name} is declared in ekws.yaml; the document must "
                           "hold it as declared or leave it out", name=name)
        fields[name] = definition.fields
    for rule_id, body in document.rules.items():
        try:
            rule_def = parse_rule(body, rule_id)
        except (EkwsError, ValueError) as exc:
            raise _bad("rules", rule_id, f"{exc}") from None
        if rule_id in plugin.declared:
            assert plugin.manager is not None
            if {**plugin.manager.describe(rule_id), "id": rule_id} != body:
                raise ReadOnly(f"rules.{rule_id}: rule {rule_id} is declared in ekws.yaml; the document must "
                               "hold it as declared or leave it out", name=rule_id)
        stream = rule_def.query.stream
        if stream not in fields:
            raise _bad("rules", rule_id, f"stream {stream!r} does not exist")
        try:
            check_fields(rule_def.query, fields[stream])
        except (EkwsError, ValueError) as exc:
            raise _bad("rules", rule_id, f"{exc}") from None


def _check_conf_key(key: str, stream: str, document: Document, service: ServicePort, *,
                    replace: bool) -> None:
    """The stream's CONF_KEY must exist after the import: in the document, the file or (partial) the store."""
    folded = key.casefold()
    if document.confkeys is not None and any(k.casefold() == folded for k in document.confkeys):
        return
    stored = any(k.casefold() == folded for k in service.store.confkeys())
    if stored and replace and document.confkeys is not None:
        raise _bad("streams", stream, f"conf key {key} is dropped by this import (not in its sourceConfig)")
    try:
        service.runtime.config.props(key)
    except ConfigError as exc:
        raise _bad("streams", stream, str(exc)) from None


def _stream_of(body: Mapping[str, Any]) -> str | None:
    try:
        return parse_rule(body).query.stream
    except (EkwsError, ValueError):
        return None


def apply(document: Document, service: ServicePort, plugin: RulesPlugin, *, replace: bool) -> list[int]:
    """Make the service hold the document; ``[streams, tables, rules]`` counts of the document.

    On a failure midway, the state before is put back (best effort, logged) and the error raised.
    """
    before = parse_document(export_data(service, plugin), service, plugin, replace=True, with_confkeys=True)
    try:
        _apply(document, service, plugin, replace=replace)
    except BaseException:
        logger.error("import failed midway; restoring the streams and rules held before")
        try:
            _apply(before, service, plugin, replace=True)
        except Exception:
            logger.exception("import: restoring the state before failed")
        raise
    return [len(document.streams), 0, len(document.rules)]


def _apply(document: Document, service: ServicePort, plugin: RulesPlugin, *, replace: bool) -> None:
    runtime = service.runtime
    manager = plugin.running_rules()
    current_sql = {name: runtime.describe_stream(name).sql for name in runtime.streams()}
    changed_streams = {name for name, sql in document.streams.items() if current_sql.get(name) != sql}
    gone_streams = {name for name in current_sql if replace and name not in document.streams
                    and name not in service.declared}
    # rules: those that differ, those on a stream that changes, and (replace) those not in the document
    recreate: dict[str, dict[str, Any]] = {}
    drop: list[str] = []
    for rule_id in manager.ids():
        if rule_id in plugin.declared:
            continue
        body = {**manager.describe(rule_id), "id": rule_id}  # a body PUT without its id has it here
        wanted = document.rules.get(rule_id)
        stream = _stream_of(body)
        differs = wanted is not None and wanted != body
        if differs or (wanted is None and (replace or stream in gone_streams)):
            drop.append(rule_id)
        elif stream in changed_streams:
            drop.append(rule_id)
            recreate[rule_id] = wanted if wanted is not None else body
    for rule_id, body in document.rules.items():
        if rule_id in plugin.declared:
            continue
        if rule_id not in manager.ids() or rule_id in drop:
            recreate[rule_id] = body
    if document.confkeys is not None:
        for key, props in document.confkeys.items():
            if service.store.confkeys().get(key) != props:
                service.put_confkey(key, props)
    for rule_id in drop:
        manager.delete(rule_id)
        service.store.delete_rule(rule_id)
    for name in sorted(gone_streams | (changed_streams & set(current_sql))):
        service.drop_stream(name)
    for name in sorted(changed_streams):
        service.create_stream(document.streams[name])
    if document.confkeys is not None and replace:
        for key in list(service.store.confkeys()):
            if key not in document.confkeys:
                service.delete_confkey(key)
    for rule_id in sorted(recreate):
        plugin.create(recreate[rule_id])
    logger.info("import: %d streams and %d rules (re)created, %d rules and %d streams dropped",
                len(changed_streams), len(recreate), len(drop) - len(set(drop) & set(recreate)),
                len(gone_streams))
