"""Configuration: ``etc/sources/websocket.yaml``, conf keys and env overrides.

Pure functions over plain values: files are read once, merged and checked, and
the result is a tree of frozen dataclasses. Every error is a
:class:`~ekws.errors.ConfigError` that names the file (or the environment
variable), the key and what was expected.

The steps, in order: read YAML (``yaml.safe_load`` only); map prop names,
matched case-insensitively, to their eKuiper camelCase spelling; apply
``WEBSOCKET__<CONFKEY>__<PROP>[__<SUB>]`` environment overrides; parse every
prop into its type; overlay each conf key on ``default``. ``etc/ekws.yaml``
(the service) goes the same way with ``EKWS__<PROP>`` overrides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .props import (
    SERVER_PROPS,
    SERVICE_PROPS,
    SOURCE_PROPS,
    FromEnv,
    Prop,
    Where,
    canonical,
    dotted,
    env_value,
    find_prop,
    match_name,
    parse_props,
)

logger = logging.getLogger(__name__)

Overflow = Literal["block", "dropOldest", "dropNewest"]
Delivery = Literal["queue", "inline"]

SOURCE_FILE = "sources/websocket.yaml"
SERVICE_FILE = "ekws.yaml"
RESERVED_KEY = "source"  # the shared-server block in websocket.yaml
BUILTIN = "<built-in defaults>"


@dataclass(frozen=True)
class Reconnect:
    """Client-mode reconnection policy (seconds; ``max_retries`` 0 = forever)."""

    initial_delay: float = 0.1
    max_delay: float = 10.0
    max_retries: int = 0


@dataclass(frozen=True)
class SourceProps:
    """The props of one conf key, ``default`` overlaid by the named key.

    ``addr`` empty means server mode; ``"host:port"`` means client mode.
    Durations are seconds.
    """

    name: str = "default"
    addr: str = ""
    # client mode
    scheme: str = "ws"
    request_header: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    insecure_skip_verify: bool = False
    root_ca_path: str | None = None
    certification_path: str | None = None
    private_key_path: str | None = None
    tls_min_version: str = "1.2"
    connect_timeout: float = 10.0
    reconnect: Reconnect = field(default_factory=Reconnect)
    ping_interval: float = 30.0  # 0 disables keepalive pings
    ping_timeout: float = 10.0
    open_messages: tuple[str, ...] = ()
    max_message_size: int = 1 << 20
    # server mode
    max_connections: int = 0  # 0 = unlimited
    allowed_origins: tuple[str, ...] = ()  # empty = any Origin
    auth_token: str | None = None
    # subscriptions
    buffer_length: int = 1024
    overflow: Overflow = "block"
    delivery: Delivery = "queue"  # inline: callbacks on the reading thread (ekws.subscription)

    @property
    def is_server(self) -> bool:
        return not self.addr


@dataclass(frozen=True)
class TlsConfig:
    """``source.httpServerTls``: server certificate, optional client CA."""

    certfile: str
    keyfile: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    """The reserved ``source:`` block: the shared server-mode server."""

    http_server_ip: str = "0.0.0.0"
    http_server_port: int = 10081
    http_server_tls: TlsConfig | None = None
    handshake_timeout: float = 10.0  # seconds for a peer's TLS and HTTP handshake


@dataclass(frozen=True)
class WebsocketConfig:
    """Everything in ``sources/websocket.yaml`` after env overrides."""

    path: str | None = None  # the file it came from; None for built-in defaults
    conf_keys: dict[str, SourceProps] = field(default_factory=lambda: {"default": SourceProps()})
    server: ServerConfig = field(default_factory=ServerConfig)

    def props(self, conf_key: str | None) -> SourceProps:
        """The props of ``conf_key`` (case-insensitive; None means ``default``).

        Raises:
            ConfigError: no such conf key; the message lists the known ones.
        """
        name = "default" if conf_key is None else conf_key
        key = match_name(name, self.conf_keys)
        if key is not None:
            return self.conf_keys[key]
        known = ", ".join(sorted(self.conf_keys))
        raise ConfigError(f"unknown conf key; known conf keys: {known}", file=self.path or BUILTIN, key=name)


@dataclass(frozen=True)
class ServiceConfig:
    """``etc/ekws.yaml``: the service (REST API, store, logging, declarative streams).

    ``data_dir`` is absolute: a relative ``dataDir`` is resolved against the
    parent of the config dir, so ``ekws run -c etc`` keeps its store in ``./data``.
    """

    rest_ip: str = "127.0.0.1"
    rest_port: int = 9081
    auth_token: str | None = None
    data_dir: str = "data"
    log_level: str = "INFO"
    streams: tuple[str, ...] = ()  # CREATE STREAM statements
    rules: tuple[dict[str, Any], ...] = ()
    functions: tuple[tuple[str, str], ...] = ()  # rule SQL name -> "package.module:function"


# --------------------------------------------------------------------------- reading


def _read_yaml(path: Path) -> object:
    """``yaml.safe_load`` one file; a missing file or bad YAML is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error{where}: {exc.problem or exc.context}",
                          file=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from exc


def _set_from_env(tree: dict[str, Any], table: Mapping[str, Prop], path: list[str],
                  text: str, var: str, prefix: str) -> None:
    """Set ``tree[path...]`` from env var ``var``, matching names case-insensitively."""
    name = find_prop(path[0], table, var, prefix)
    prop, rest, key = table[name], path[1:], dotted(prefix, name)
    if prop.sub is not None or prop.free:
        if not rest or (prop.free and len(rest) != 1) or not rest[0]:
            raise ConfigError("names a map; add __<NAME> for one of its entries", file=var, key=key)
        child = tree.get(name)
        child = tree[name] = dict(child) if isinstance(child, dict) else {}
        if prop.sub is not None:
            _set_from_env(child, prop.sub, rest, text, var, key)
            return
        # A free map (headers): the variable replaces every entry of that name, in any case.
        for entry in [entry for entry in child if str(entry).casefold() == rest[0].casefold()]:
            del child[entry]
        child[rest[0]] = FromEnv(text, var)
        return
    if rest:
        raise ConfigError("is not a map; remove what follows it", file=var, key=key)
    tree[name] = FromEnv(env_value(text, prop.env), var)
    logger.debug("%s overrides %s", var, key)


# --------------------------------------------------------------------------- websocket.yaml


def websocket_config_from_dict(data: object, *, path: str | None = None,
                               environ: Mapping[str, str] | None = None) -> WebsocketConfig:
    """Build a :class:`WebsocketConfig` from an already loaded YAML value (pure).

    Args:
        data: the YAML document: conf keys to prop maps, plus ``source``.
        path: the file it came from, for error messages and ``WebsocketConfig.path``.
        environ: environment for ``WEBSOCKET__...`` overrides (none if None).

    Raises:
        ConfigError: naming the file (or env var), ``confkey.prop`` and what was expected.
    """
    file = path or BUILTIN
    if data is not None and not isinstance(data, dict):
        raise Where(file, "").error("a map of conf keys (and the reserved 'source' block)", data)
    server_tree: dict[str, Any] = {}
    trees: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for name, raw in (data or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise Where(file, str(name)).error("a conf key name (a string)", name)
        if name.casefold() in seen:
            raise ConfigError("conf key is given twice (names are case-insensitive)", file=file, key=name)
        seen.add(name.casefold())
        if name.casefold() == RESERVED_KEY:
            server_tree = canonical(raw, SERVER_PROPS, file, name)
        else:
            trees[name] = canonical(raw, SOURCE_PROPS, file, name)

    for var, text in sorted((environ or {}).items()):
        parts = var.split("__")
        if parts[0] != "WEBSOCKET" or len(parts) < 2:
            continue
        if len(parts) < 3 or not parts[1]:
            raise ConfigError("expected WEBSOCKET__<CONFKEY>__<PROP>", file=var)
        if parts[1].casefold() == RESERVED_KEY:
            _set_from_env(server_tree, SERVER_PROPS, parts[2:], text, var, RESERVED_KEY)
            continue
        conf = match_name(parts[1], trees) or (parts[1].lower() if parts[1].casefold() == "default" else None)
        if conf is None:  # a typo (WEBSOCKET__DEFUALT__ADDR) must not pass silently
            known = ", ".join(sorted({"default", *trees}))
            raise ConfigError(f"names conf key {parts[1]!r}, which {file} does not define; "
                              f"known conf keys: {known}", file=var)
        _set_from_env(trees.setdefault(conf, {}), SOURCE_PROPS, parts[2:], text, var, conf)

    default_name = match_name("default", trees) or "default"
    default = parse_props(trees.pop(default_name, {}), SOURCE_PROPS, file, default_name)
    conf_keys = {default_name: _build_props(default_name, default, {}, file)}
    for name, tree in trees.items():
        conf_keys[name] = _build_props(name, default, parse_props(tree, SOURCE_PROPS, file, name), file)
    return WebsocketConfig(path=path, conf_keys=conf_keys, server=_build_server(server_tree, file))


def _build_props(name: str, default: dict[str, Any], values: dict[str, Any], file: str) -> SourceProps:
    """Overlay ``values`` on ``default`` (``reconnect`` key by key), then check pings.

    A maxDelay below the default initialDelay is what the user meant (the
    backoff caps the first delay). Keepalive: a ping unanswered for
    pingTimeout drops the peer, so pingTimeout must be below pingInterval
    when both are set; a lone pingInterval below the default pingTimeout
    lowers the timeout to half the interval.
    """
    reconnect = Reconnect(**{**default.get("reconnect", {}), **values.get("reconnect", {})})
    merged = {**default, **values, "name": name, "reconnect": reconnect}
    interval = merged.get("ping_interval", SourceProps.ping_interval)
    timeout = merged.get("ping_timeout", SourceProps.ping_timeout)
    if interval and timeout >= interval:
        if "ping_timeout" in merged:
            raise ConfigError(f"pingTimeout ({timeout:g} s) must be below pingInterval ({interval:g} s): "
                              "a ping is sent after pingInterval of silence and must be answered "
                              "within pingTimeout", file=file, key=f"{name}.pingTimeout")
        merged["ping_timeout"] = interval / 2
    return SourceProps(**merged)


def _build_server(tree: dict[str, Any], file: str) -> ServerConfig:
    values = parse_props(tree, SERVER_PROPS, file, RESERVED_KEY)
    tls = values.pop("http_server_tls", None)
    if tls:
        for needed in ("certfile", "keyfile"):
            if needed not in tls:
                raise ConfigError(f"httpServerTls needs {needed} (a PEM file path)",
                                  file=file, key=f"{RESERVED_KEY}.httpServerTls.{needed}")
        values["http_server_tls"] = TlsConfig(**tls)
    return ServerConfig(**values)


def load_websocket_config(config_dir: str | os.PathLike[str] | None,
                          environ: Mapping[str, str] | None = None) -> WebsocketConfig:
    """Read ``<config_dir>/sources/websocket.yaml`` and apply ``WEBSOCKET__...`` env overrides.

    ``config_dir`` None gives the built-in defaults (plus env overrides);
    ``environ`` None means ``os.environ``. TLS files are only typed here, not opened.

    Raises:
        ConfigError: a missing file, bad YAML (with its line) or a bad prop.
    """
    env = os.environ if environ is None else environ
    if config_dir is None:
        return websocket_config_from_dict(None, environ=env)
    path = Path(config_dir) / SOURCE_FILE
    config = websocket_config_from_dict(_read_yaml(path), path=str(path), environ=env)
    logger.debug("loaded %s: conf keys %s", path, ", ".join(config.conf_keys))
    return config


# --------------------------------------------------------------------------- ekws.yaml


def load_service_config(config_dir: str | os.PathLike[str] | None,
                        environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """Read ``<config_dir>/ekws.yaml`` (missing: defaults) and apply ``EKWS__<PROP>`` overrides.

    A relative ``dataDir`` is resolved against the parent of ``config_dir``
    (the current directory when ``config_dir`` is None).
    """
    env = os.environ if environ is None else environ
    data: object = None
    file = BUILTIN
    if config_dir is not None:
        path = Path(config_dir) / SERVICE_FILE
        file = str(path)
        if path.exists():
            data = _read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise Where(file, "").error("a map of service props", data)
    tree = canonical(data, SERVICE_PROPS, file, "")
    for var, text in sorted(env.items()):
        parts = var.split("__")
        if parts[0] == "EKWS" and len(parts) > 1:
            _set_from_env(tree, SERVICE_PROPS, parts[1:], text, var, "")
    values = parse_props(tree, SERVICE_PROPS, file, "")
    base = Path(config_dir).absolute().parent if config_dir is not None else Path.cwd()
    values["data_dir"] = str(base / values.get("data_dir", ServiceConfig.data_dir))
    return ServiceConfig(**values)
