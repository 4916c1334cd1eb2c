"""Reload (SIGHUP, ``systemctl reload``): re-read the config files and apply the difference.

Two steps, so that a file that does not load changes nothing. :func:`plan`
reads ``ekws.yaml`` and ``sources/websocket.yaml`` again and checks
everything that can be checked without touching a connection: the YAML,
every prop, every declared statement and rule body, that every rule's
stream will exist, that no stream still needed loses its conf key. Any
error there is raised as a ConfigError and the running config is kept.
:func:`apply` then changes only what differs:

- a declared stream whose statement changed, or any stream (declared or
  stored over REST) whose conf key's props changed, is dropped and created
  again, and the rules that were running on it start again on it: its peers
  reconnect (client mode redials, server-mode peers get 1001 and reconnect);
- a declared stream removed from the file is dropped (a stored stream of the
  same name, shadowed until then, comes back); a new one is created;
- a declared rule removed is deleted (a shadowed stored one comes back), a
  changed one is made again from its new body, a new one is created and
  started unless ``triggered: false``;
- everything else, with its subscriptions and connections, is left alone:
  a peer sending to an untouched stream loses nothing.

What cannot change in a running process keeps its old value with a WARNING
naming it (``restIp``, ``restPort``, ``authToken``, ``dataDir``,
``functions``, and the shared server's ``source:`` block, whose port and TLS
every server-mode peer is connected through): ``systemctl restart`` applies
those. ``logLevel`` applies at once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..codec import make_decoder
from ..config import SERVICE_FILE, SOURCE_FILE, ServiceConfig, WebsocketConfig
from ..ddl import StreamDef, parse_stream
from ..errors import ConfigError, EkwsError
from ..runtime import Runtime
from ..subscription import Subscription
from .health import should_run

if TYPE_CHECKING:
    from pathlib import Path

    from ..rules.manager import RuleManager
    from .store import Store


class Service(Protocol):
    """What a reload reads and changes of :class:`ekws.service.app.Service` (which calls it):
    a Protocol, so this module does not import ``app`` (no cycle, not even for the types)."""

    settings: ServiceConfig
    yaml_keys: dict[str, Any]
    declared: dict[str, str]
    rules: RuleManager | None
    runtime: Runtime
    store: Store
    config_dir: Path

    @property
    def rules_plugin(self) -> Any: ...

    def create_stream(self, sql: str, *, declared: bool = False) -> str: ...

    def websocket_config(self, stored: Mapping[str, Mapping[str, Any]],
                         yaml_keys: Mapping[str, Any] | None = None) -> WebsocketConfig: ...

logger = logging.getLogger(__name__)

RESTART_ONLY = (("rest_ip", "restIp"), ("rest_port", "restPort"), ("auth_token", "authToken"),
                ("data_dir", "dataDir"), ("functions", "functions"))


@dataclass
class Plan:
    """What a reload changes; built by :func:`plan`, carried out by :func:`apply`."""

    settings: ServiceConfig  # the new ekws.yaml, with the restart-only props kept as they run
    yaml_keys: dict[str, Any]  # the new sources/websocket.yaml, as read
    config: WebsocketConfig  # the new conf keys (stored ones over them), the running server block
    declared: dict[str, str]  # the new declared streams: name -> statement
    stream_drop: list[str] = field(default_factory=list)  # declared streams no longer declared
    stream_add: list[str] = field(default_factory=list)  # newly declared
    stream_redo: list[str] = field(default_factory=list)  # statement or props changed: drop, create
    rule_drop: list[str] = field(default_factory=list)  # declared rules removed or changed
    rule_add: list[dict[str, Any]] = field(default_factory=list)  # declared rules new or changed
    rule_restore: list[str] = field(default_factory=list)  # stored rules a removed declared one shadowed
    kept: list[str] = field(default_factory=list)  # restart-only settings that changed (not applied)

    @property
    def changes(self) -> str:
        parts = []
        for label, items in (("streams added", self.stream_add), ("streams removed", self.stream_drop),
                             ("streams restarted", self.stream_redo),
                             ("rules added or changed", [str(b["id"]) for b in self.rule_add]),
                             ("rules removed", [r for r in self.rule_drop
                                                if r not in {b["id"] for b in self.rule_add}])):
            if items:
                parts.append(f"{label}: {', '.join(items)}")
        return "; ".join(parts) or "nothing changed"


def plan(service: Service, settings: ServiceConfig, yaml_keys: dict[str, Any]) -> Plan:
    """Check the new config against the running service; nothing is changed here.

    Raises:
        ConfigError: what is wrong, naming the file and the entry.
    """
    file = str(service.config_dir / SERVICE_FILE)
    running = service.settings
    kept = [name for attr, name in RESTART_ONLY if getattr(settings, attr) != getattr(running, attr)]
    if kept:
        settings = dataclasses.replace(settings, **{attr: getattr(running, attr) for attr, _ in RESTART_ONLY})
    old_config = service.runtime.config
    config = service.websocket_config(service.store.confkeys(), yaml_keys)
    if config.server != old_config.server:
        kept.append("source (the shared server)")
        config = dataclasses.replace(config, server=old_config.server)

    declared: dict[str, str] = {}
    definitions: dict[str, StreamDef] = {}
    for index, sql in enumerate(settings.streams):
        try:
            definition = parse_stream(sql)
            config.props(definition.conf_key)
            make_decoder(definition)
        except EkwsError as exc:
            raise ConfigError(f"streams[{index}]: {exc}", file=file) from exc
        if definition.name in declared:
            raise ConfigError(f"streams[{index}]: stream {definition.name} is declared twice", file=file)
        declared[definition.name] = sql
        definitions[definition.name] = definition

    runtime = service.runtime
    before = dict(service.declared)
    stored = service.store.streams()
    out = Plan(settings=settings, yaml_keys=yaml_keys, config=config, declared=declared, kept=kept)
    out.stream_drop = [name for name in before if name not in declared]
    out.stream_add = [name for name in declared if name not in before and name not in runtime.streams()]
    for name in runtime.streams():
        if name in out.stream_drop:
            continue
        current = runtime.describe_stream(name)
        if name in declared:
            if declared[name] != before.get(name):  # changed, or a stored stream now declared
                out.stream_redo.append(name)
                continue
            definition = definitions[name]
        else:
            definition = current
        try:
            props = config.props(definition.conf_key)
        except ConfigError as exc:
            raise ConfigError(f"stream {name} uses conf key {definition.conf_key or 'default'}, "
                              f"which is no longer in {service.config_dir / SOURCE_FILE}", file=file) from exc
        if _props(old_config, current) != props:
            out.stream_redo.append(name)
    # The streams after the reload and their fields, for the rules' checks.
    fields = {name: runtime.describe_stream(name).fields for name in runtime.streams()}
    for name in out.stream_drop:
        fields.pop(name, None)
        if name in stored:
            fields[name] = parse_stream(stored[name]).fields
    for name, definition in definitions.items():
        fields[name] = definition.fields

    out.rule_drop, out.rule_add, out.rule_restore = _plan_rules(service, settings, fields, file)
    return out


def _plan_rules(service: Service, settings: ServiceConfig, fields: Mapping[str, Any],
                file: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    from ..rules.definition import parse_rule
    from ..rules.sql import check_fields

    plugin = service.rules_plugin
    manager = service.rules
    if plugin is None or manager is None:
        if settings.rules:
            raise ConfigError("rules are not supported by this version of ekws; remove the rules: entry",
                              file=file, key="rules")
        return [], [], []
    old = {str(body["id"]): body for body in service.settings.rules if isinstance(body, dict)}
    new: dict[str, dict[str, Any]] = {}
    for index, body in enumerate(settings.rules):
        try:
            definition = parse_rule(body)
            stream = definition.query.stream
            if stream not in fields:
                raise ConfigError(f"stream {stream!r} does not exist (rule {definition.id!r})")
            check_fields(definition.query, fields[stream])
        except (ValueError, EkwsError) as exc:  # InvalidRule, SQLError, ActionError are ValueErrors
            rule_id = body.get("id") if isinstance(body, dict) else None
            named = f" (rule {rule_id!r})" if isinstance(rule_id, str) else ""
            raise ConfigError(f"rules[{index}]: {exc}{named}", file=file) from exc
        if definition.id in new:
            raise ConfigError(f"rules[{index}]: rule {definition.id} is declared twice", file=file)
        new[definition.id] = dict(body)
    stored = {rule_id for rule_id, _, _ in service.store.rules()}
    drop = [rule_id for rule_id in plugin.declared if rule_id not in new or new[rule_id] != old.get(rule_id)]
    drop += [rule_id for rule_id in new if rule_id not in plugin.declared and rule_id in manager.ids()]
    add = [body for rule_id, body in new.items() if rule_id in drop or rule_id not in manager.ids()]
    restore = [rule_id for rule_id in plugin.declared if rule_id not in new and rule_id in stored]
    # A rule that stays must still find its stream.
    staying = [r for r in manager.ids() if r not in drop] + restore
    for rule_id in staying:
        try:
            query = parse_rule(_body(service, rule_id), rule_id).query
        except (ValueError, EkwsError):
            continue
        if query.stream not in fields:
            raise ConfigError(f"stream {query.stream} is no longer declared but rule {rule_id} reads it; "
                              f"drop the rule first or keep the stream", file=file)
        try:  # the stream's new fields must still have what the rule reads
            check_fields(query, fields[query.stream])
        except (ValueError, EkwsError) as exc:
            raise ConfigError(f"rule {rule_id} on stream {query.stream}: {exc}", file=file) from exc
    return drop, add, restore


def _body(service: Service, rule_id: str) -> Any:
    assert service.rules is not None
    if rule_id in service.rules.ids():
        return service.rules.describe(rule_id)
    return next(body for stored_id, body, _ in service.store.rules() if stored_id == rule_id)


def _props(config: WebsocketConfig, definition: StreamDef) -> Any:
    try:
        return config.props(definition.conf_key)
    except ConfigError:
        return None


def apply(service: Service, change: Plan) -> None:
    """Carry out a plan: rules off the streams that change, the streams, then the rules back on.

    A step that fails (a rule whose start fails, say) is logged and the rest goes on;
    what failed shows in its status.
    """
    runtime = service.runtime
    keepers = _hold(runtime, exclude=set(change.stream_drop) | set(change.stream_redo))
    try:
        _apply(service, change)
    finally:
        for keeper in keepers:
            keeper.close()


def _hold(runtime: Runtime, exclude: set[str]) -> list[Subscription]:
    """A subscription that drops what it gets on every running stream the reload keeps.

    A stream's source stops with its last subscription (server-mode peers
    get 1001, a client disconnects), and the shared server with its last
    path. A changed rule is stopped and made again; while it is swapped these
    hold its stream, and the server, up, so its peers stay connected.
    """
    keepers = []
    for name in runtime.streams():
        if name in exclude:
            continue
        try:
            if runtime.status(name)["subscriptions"] > 0:
                keepers.append(runtime.subscribe(name, _discard, buffer_length=1, overflow="dropNewest"))
        except EkwsError as exc:  # dropped meanwhile, or its source failed: nothing to hold
            logger.debug("reload: not holding stream %s: %s", name, exc)
    return keepers


def _discard(message: Any) -> None:
    pass


def _apply(service: Service, change: Plan) -> None:
    runtime, manager = service.runtime, service.rules
    plugin = service.rules_plugin
    for rule_id in change.rule_drop:
        _quietly(f"rule {rule_id}: delete", manager.delete if manager else None, rule_id)
        if plugin is not None:
            plugin.declared.discard(rule_id)
    restart: list[str] = []
    touched = set(change.stream_drop) | set(change.stream_redo)
    if manager is not None:
        for name in sorted(touched):
            for rule_id in manager.on_stream(name):
                if should_run(manager.status(rule_id)):  # running, or failing and retried
                    restart.append(rule_id)
                _quietly(f"rule {rule_id}: stop", manager.stop, rule_id)
    for name in sorted(touched):
        _quietly(f"stream {name}: drop", runtime.drop_stream, name)
        service.declared.pop(name, None)
    runtime.config = change.config
    stored = service.store.streams()
    for name in change.stream_redo + change.stream_add:
        if name in change.declared:
            _quietly(f"stream {name}: create", service.create_stream, change.declared[name], declared=True)
        elif name in stored:
            _quietly(f"stream {name}: create", service.create_stream, stored[name])
    for name in change.stream_drop:
        if name in stored:  # shadowed by the file until now
            _quietly(f"stream {name}: restore", service.create_stream, stored[name])
    service.settings = change.settings
    service.yaml_keys = change.yaml_keys
    logging.getLogger().setLevel(change.settings.log_level)
    if manager is None or plugin is None:
        return
    for body in change.rule_add:
        rule_id = str(body["id"])
        try:
            definition = manager.create(body, start=False)
        except Exception as exc:  # noqa: BLE001 - planned, so unexpected: keep going, say why
            logger.error("reload: rule %s not created: %s", rule_id, exc)
            continue
        plugin.declared.add(rule_id)
        if definition.triggered:
            _quietly(f"rule {rule_id}: start", manager.start, rule_id)
    stored_rules = {rule_id: (body, running) for rule_id, body, running in service.store.rules()}
    for rule_id in change.rule_restore:
        body, running = stored_rules[rule_id]
        try:
            manager.create(body, rule_id=rule_id, start=False)
        except Exception as exc:  # noqa: BLE001
            logger.error("reload: rule %s from the store not restored: %s", rule_id, exc)
            continue
        if running:
            _quietly(f"rule {rule_id}: start", manager.start, rule_id)
    for rule_id in restart:
        if rule_id in manager.ids():
            _quietly(f"rule {rule_id}: start", manager.start, rule_id)


def _quietly(what: str, method: Any, *args: Any, **kwargs: Any) -> None:
    if method is None:
        return
    try:
        method(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one step's failure does not stop the reload
        logger.error("reload: %s failed: %s", what, exc)
