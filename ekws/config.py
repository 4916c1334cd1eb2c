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

import ipaddress
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError

logger = logging.getLogger(__name__)

Overflow = Literal["block", "dropOldest", "dropNewest"]

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
        for key, props in self.conf_keys.items():
            if key.casefold() == name.casefold():
                return props
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


# --------------------------------------------------------------------------- value parsers


@dataclass(frozen=True)
class _Where:
    """Where a value came from, for error messages: a file (or env var) and a dotted key."""

    file: str
    key: str

    def error(self, expected: str, value: object) -> ConfigError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return ConfigError(f"expected {expected}, got {type(value).__name__} {shown}",
                           file=self.file, key=self.key)


@dataclass(frozen=True)
class _FromEnv:
    """A value set by an environment variable; errors about it name the variable."""

    value: Any
    var: str


def _unwrap(raw: Any, file: str, key: str) -> tuple[Any, _Where]:
    if isinstance(raw, _FromEnv):
        return raw.value, _Where(raw.var, key)
    return raw, _Where(file, key)


_Parser = Callable[[Any, _Where], Any]
_DURATION_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*",
                      re.IGNORECASE)
_BYTES = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}  # KB = KiB = 1024: memory, not disks
_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _duration(*, positive: bool) -> _Parser:
    expected = ("a duration > 0" if positive else "a duration >= 0") + \
        " (seconds as a number, or a string like '500ms', '2s', '1m', '1h')"

    def parse(value: Any, where: _Where) -> float:
        seconds = math.nan
        if _is_number(value):
            try:
                seconds = float(value)
            except OverflowError:  # an int too large for a float
                seconds = math.inf
        elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
            seconds = float(match[1]) * _SECONDS[(match[2] or "s").lower()]
        if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
            raise where.error(expected, value)
        return seconds

    return parse


def _size(value: Any, where: _Where) -> int:
    size = 0
    if _is_number(value) and isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE_RE.fullmatch(value)):
        scaled = float(match[1]) * _BYTES[(match[2] or "b")[0].lower()]
        size = int(scaled) if math.isfinite(scaled) else 0
    if size < 1:
        raise where.error("a size >= 1 in bytes (an integer, or a string like '64KB', '1MB', '1MiB')", value)
    return size


def _integer(minimum: int, maximum: int | None = None) -> _Parser:
    expected = f"an integer {minimum}..{maximum}" if maximum is not None else f"an integer >= {minimum}"

    def parse(value: Any, where: _Where) -> int:
        if not (_is_number(value) and isinstance(value, int)):
            raise where.error(expected, value)
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(f"{value} is out of range; expected {expected}", file=where.file, key=where.key)
        return value

    return parse


def _boolean(value: Any, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error("true or false", value)
    return value


def _text(*, optional: bool) -> _Parser:
    expected = "a string (or nothing)" if optional else "a non-empty string"

    def parse(value: Any, where: _Where) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not (value.strip() or optional):
            raise where.error(expected, value)
        return value.strip() or None

    return parse


def _choice(*options: str) -> _Parser:
    by_fold = {option.casefold(): option for option in options}

    def parse(value: Any, where: _Where) -> str:
        if not isinstance(value, str) or value.strip().casefold() not in by_fold:
            raise where.error("one of " + " | ".join(options), value)
        return by_fold[value.strip().casefold()]

    return parse


def _strings(value: Any, where: _Where) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise where.error("a list of strings (or one comma-separated string)", value)
    return tuple(item.strip() for item in value if item.strip())


def _messages(value: Any, where: _Where) -> tuple[str, ...]:
    """A list of text messages, kept verbatim (they may hold commas)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise where.error("a list of strings", value)
    return tuple(value)


def _addr(value: Any, where: _Where) -> str:
    expected = "'' (server mode) or 'host:port' with port 1..65535 ('[::1]:8080' for IPv6)"
    if value is None:
        return ""
    if not isinstance(value, str):
        raise where.error(expected, value)
    text = value.strip()
    if not text:
        return ""
    if "://" in text:
        raise ConfigError(f"{text!r} holds a URL; addr is host:port and the scheme goes in 'scheme'",
                          file=where.file, key=where.key)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        try:
            ok = bool(sep) and bool(ipaddress.IPv6Address(host.split("%")[0]))
        except ValueError:
            ok = False
    else:
        host, sep, port = text.rpartition(":")
        ok = bool(sep) and _HOST_RE.fullmatch(host) is not None
    if not ok or re.fullmatch("[0-9]{1,9}", port) is None:
        raise where.error(expected, value)
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"port {int(port)} is out of range; expected {expected}",
                          file=where.file, key=where.key)
    return text


def _tls_version(value: Any, where: _Where) -> str:
    text = f"{value:.1f}" if _is_number(value) and isinstance(value, float) else value
    if text not in ("1.0", "1.1", "1.2", "1.3"):
        raise where.error("a TLS version '1.0' | '1.1' | '1.2' | '1.3'", value)
    return str(text)


def _headers(value: Any, where: _Where) -> tuple[tuple[str, str], ...]:
    """``{name: value | [values]}`` flattened to ``(name, value)`` pairs, one per list item."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.error("a map of header name to string or list of strings", value)
    pairs: list[tuple[str, str]] = []
    for name, raw in value.items():
        items, at = _unwrap(raw, where.file, _key(where.key, name))
        if not isinstance(name, str) or _HEADER_RE.fullmatch(name) is None:
            raise at.error("a header name (letters, digits, '-')", name)
        for item in items if isinstance(items, list) else [items]:
            if not (isinstance(item, str) or _is_number(item)) or any(c in str(item) for c in "\r\n\0"):
                raise at.error("a header value: a string or list of strings on one line", items)
            pairs.append((name, str(item)))
    return tuple(pairs)


# --------------------------------------------------------------------------- prop tables


@dataclass(frozen=True)
class _Prop:
    """One known prop: its dataclass field, parser and how an env var spells it.

    ``env``: "infer" types the value int > bool > float > str; "str" keeps it
    verbatim (a token of digits stays a string); "list" takes a JSON array or a
    comma-separated string; "json" takes a JSON value or else one string.
    ``sub`` is a nested map of known props; ``free`` a map of free names (headers).
    """

    field: str
    parse: _Parser | None = None
    env: Literal["infer", "str", "list", "json"] = "infer"
    sub: Mapping[str, _Prop] | None = None
    free: bool = False


_RECONNECT = {
    "initialDelay": _Prop("initial_delay", _duration(positive=False)),
    "maxDelay": _Prop("max_delay", _duration(positive=False)),
    "maxRetries": _Prop("max_retries", _integer(0)),
}
_SOURCE = {
    "addr": _Prop("addr", _addr, "str"),
    "scheme": _Prop("scheme", _choice("ws", "wss"), "str"),
    "requestHeader": _Prop("request_header", _headers, "str", free=True),
    "subprotocols": _Prop("subprotocols", _strings, "list"),
    "insecureSkipVerify": _Prop("insecure_skip_verify", _boolean),
    "rootCaPath": _Prop("root_ca_path", _text(optional=True), "str"),
    "certificationPath": _Prop("certification_path", _text(optional=True), "str"),
    "privateKeyPath": _Prop("private_key_path", _text(optional=True), "str"),
    "tlsMinVersion": _Prop("tls_min_version", _tls_version, "str"),
    "connectTimeout": _Prop("connect_timeout", _duration(positive=True)),
    "reconnect": _Prop("reconnect", sub=_RECONNECT),
    "pingInterval": _Prop("ping_interval", _duration(positive=False)),
    "pingTimeout": _Prop("ping_timeout", _duration(positive=True)),
    "openMessages": _Prop("open_messages", _messages, "list"),
    "maxMessageSize": _Prop("max_message_size", _size),
    "maxConnections": _Prop("max_connections", _integer(0)),
    "allowedOrigins": _Prop("allowed_origins", _strings, "list"),
    "authToken": _Prop("auth_token", _text(optional=True), "str"),
    "bufferLength": _Prop("buffer_length", _integer(1)),
    "overflow": _Prop("overflow", _choice("block", "dropOldest", "dropNewest"), "str"),
}
_TLS = {
    "certfile": _Prop("certfile", _text(optional=False), "str"),
    "keyfile": _Prop("keyfile", _text(optional=False), "str"),
    "clientCaFile": _Prop("client_ca_file", _text(optional=True), "str"),
}
_SERVER = {
    "httpServerIp": _Prop("http_server_ip", _text(optional=False), "str"),
    "httpServerPort": _Prop("http_server_port", _integer(0, 65535)),
    "httpServerTls": _Prop("http_server_tls", sub=_TLS),
}


def _log_level(value: Any, where: _Where) -> str:
    level = _choice("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")(value, where)
    return "WARNING" if level == "WARN" else str(level)


def _statements(value: Any, where: _Where) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    return _messages(items, where)


def _rules(value: Any, where: _Where) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(rule, dict) and all(isinstance(key, str) for key in rule) for rule in value):
        raise where.error("a list of rule maps ({id: ..., stream: ..., actions: [...]})", value)
    return tuple(value)


_SERVICE = {
    "restIp": _Prop("rest_ip", _text(optional=False), "str"),
    "restPort": _Prop("rest_port", _integer(0, 65535)),
    "authToken": _Prop("auth_token", _text(optional=True), "str"),
    "dataDir": _Prop("data_dir", _text(optional=False), "str"),
    "logLevel": _Prop("log_level", _log_level, "str"),
    "streams": _Prop("streams", _statements, "json"),
    "rules": _Prop("rules", _rules, "json"),
}


# --------------------------------------------------------------------------- tree steps


def _key(prefix: str, name: object) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _match(name: object, table: Mapping[str, _Prop]) -> str | None:
    if isinstance(name, str):
        for known in table:
            if known.casefold() == name.casefold():
                return known
    return None


def _canonical(raw: object, table: Mapping[str, _Prop], file: str, prefix: str) -> dict[str, Any]:
    """Rename the keys of one YAML map to their camelCase spelling, checking each is known."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _Where(file, prefix).error("a map of props", raw)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        known = _match(name, table)
        if known is None:
            raise ConfigError(f"unknown prop {name!r}; expected one of {', '.join(table)}",
                              file=file, key=_key(prefix, name))
        if known in out:
            raise ConfigError(f"prop {known!r} is given twice (names are case-insensitive)",
                              file=file, key=_key(prefix, name))
        sub = table[known].sub
        out[known] = _canonical(value, sub, file, _key(prefix, known)) if sub is not None else value
    return out


def _env_value(text: str, mode: Literal["infer", "str", "list", "json"]) -> Any:
    """Type an env value: int > bool > float > str, or per the prop's ``env`` mode."""
    if mode == "str":
        return text
    if mode in ("list", "json"):
        try:
            return json.loads(text) if mode == "json" or text.lstrip().startswith("[") else text
        except ValueError:
            return text
    try:
        return int(text)
    except ValueError:
        pass
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _set_from_env(tree: dict[str, Any], table: Mapping[str, _Prop], path: list[str],
                  text: str, var: str, prefix: str) -> None:
    """Set ``tree[path...]`` from env var ``var``, matching names case-insensitively."""
    name = _match(path[0], table)
    if name is None:
        raise ConfigError(f"unknown prop {path[0]!r}; expected one of {', '.join(table)}",
                          file=var, key=_key(prefix, path[0]))
    prop, rest, key = table[name], path[1:], _key(prefix, name)
    if prop.sub is not None or prop.free:
        if not rest or (prop.free and len(rest) != 1) or not rest[0]:
            raise ConfigError("names a map; add __<NAME> for one of its entries", file=var, key=key)
        child = tree.get(name)
        child = tree[name] = dict(child) if isinstance(child, dict) else {}
        if prop.sub is not None:
            _set_from_env(child, prop.sub, rest, text, var, key)
            return
        for header in [header for header in child if str(header).casefold() == rest[0].casefold()]:
            del child[header]
        child[rest[0]] = _FromEnv(text, var)
        return
    if rest:
        raise ConfigError("is not a map; remove what follows it", file=var, key=key)
    tree[name] = _FromEnv(_env_value(text, prop.env), var)
    logger.debug("%s overrides %s", var, key)


def _parse(tree: Mapping[str, Any], table: Mapping[str, _Prop], file: str,
           prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse canonical props into ``{field: value}`` (nested maps stay dicts) and ``{field: origin}``."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, raw in tree.items():
        prop = table[name]
        if prop.sub is not None:
            values[prop.field], sub_origins = _parse(raw, prop.sub, file, _key(prefix, name))
            origins.update({f"{prop.field}.{k}": v for k, v in sub_origins.items()})
            continue
        value, where = _unwrap(raw, file, _key(prefix, name))
        assert prop.parse is not None
        values[prop.field] = prop.parse(value, where)
        origins[prop.field] = where.file
    return values, origins


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
        raise _Where(file, "").error("a map of conf keys (and the reserved 'source' block)", data)
    server_tree: dict[str, Any] = {}
    trees: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for name, raw in (data or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise _Where(file, str(name)).error("a conf key name (a string)", name)
        if name.casefold() in seen:
            raise ConfigError("conf key is given twice (names are case-insensitive)", file=file, key=name)
        seen.add(name.casefold())
        if name.casefold() == RESERVED_KEY:
            server_tree = _canonical(raw, _SERVER, file, name)
        else:
            trees[name] = _canonical(raw, _SOURCE, file, name)

    for var, text in sorted((environ or {}).items()):
        parts = var.split("__")
        if parts[0] != "WEBSOCKET" or len(parts) < 2:
            continue
        if len(parts) < 3 or not parts[1]:
            raise ConfigError("expected WEBSOCKET__<CONFKEY>__<PROP>", file=var)
        if parts[1].casefold() == RESERVED_KEY:
            _set_from_env(server_tree, _SERVER, parts[2:], text, var, RESERVED_KEY)
            continue
        conf = next((known for known in trees if known.casefold() == parts[1].casefold()), parts[1].lower())
        _set_from_env(trees.setdefault(conf, {}), _SOURCE, parts[2:], text, var, conf)

    default_name = next((name for name in trees if name.casefold() == "default"), "default")
    default, default_origins = _parse(trees.pop(default_name, {}), _SOURCE, file, default_name)
    conf_keys = {default_name: _build_props(default_name, default, {}, default_origins, file)}
    for name, tree in trees.items():
        values, origins = _parse(tree, _SOURCE, file, name)
        conf_keys[name] = _build_props(name, default, values, {**default_origins, **origins}, file)
    return WebsocketConfig(path=path, conf_keys=conf_keys, server=_build_server(server_tree, file))


def _build_props(name: str, default: dict[str, Any], values: dict[str, Any],
                 origins: dict[str, str], file: str) -> SourceProps:
    """Overlay ``values`` on ``default`` (``reconnect`` key by key)."""
    merged = {**default, **values}
    reconnect = Reconnect(**{**default.get("reconnect", {}), **values.get("reconnect", {})})
    props = SourceProps(**{**merged, "name": name, "reconnect": reconnect})
    # No cross-prop rules: a maxDelay below the default initialDelay, or a
    # pingInterval below the default pingTimeout, is what the user meant.
    # The backoff caps the first delay too.
    return props


def _build_server(tree: dict[str, Any], file: str) -> ServerConfig:
    values, _ = _parse(tree, _SERVER, file, RESERVED_KEY)
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
        raise _Where(file, "").error("a map of service props", data)
    tree = _canonical(data, _SERVICE, file, "")
    for var, text in sorted(env.items()):
        parts = var.split("__")
        if parts[0] == "EKWS" and len(parts) > 1:
            _set_from_env(tree, _SERVICE, parts[1:], text, var, "")
    values, _ = _parse(tree, _SERVICE, file, "")
    base = Path(config_dir).absolute().parent if config_dir is not None else Path.cwd()
    values["data_dir"] = str(base / values.get("data_dir", ServiceConfig.data_dir))
    return ServiceConfig(**values)
