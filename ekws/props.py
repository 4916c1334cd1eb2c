"""What a prop value may be: typed parsers and the tables of known props.

:mod:`ekws.config` reads the files and environment; this module says, for
every prop of ``sources/websocket.yaml`` and ``ekws.yaml``, its camelCase
name, its dataclass field, how a value is checked and converted (durations,
sizes, integers, booleans, choices, ``addr``, headers ...) and how an
environment variable spells it. Everything here is pure; every error is a
:class:`~ekws.errors.ConfigError` naming the file (or env var), the dotted key
and what was expected.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # typing.TypeGuard is 3.10+; only the type checker needs it
    from typing import TypeGuard

__all__ = [
    "SERVER_PROPS",
    "SERVICE_PROPS",
    "SOURCE_PROPS",
    "FromEnv",
    "Prop",
    "Where",
    "canonical",
    "dotted",
    "env_value",
    "find_prop",
    "match_name",
    "parse_props",
]

EnvMode = Literal["infer", "str", "list", "json"]


@dataclass(frozen=True)
class Where:
    """Where a value came from, for error messages: a file (or env var) and a dotted key."""

    file: str
    key: str

    def fail(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=self.key)

    def error(self, expected: str, value: object) -> ConfigError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return self.fail(f"expected {expected}, got {type(value).__name__} {shown}")


@dataclass(frozen=True)
class FromEnv:
    """A value set by an environment variable; errors about it name the variable."""

    value: Any
    var: str


def _unwrap(raw: Any, file: str, key: str) -> tuple[Any, Where]:
    if isinstance(raw, FromEnv):
        return raw.value, Where(raw.var, key)
    return raw, Where(file, key)


def dotted(prefix: str, name: object) -> str:
    """``prefix.name``, or ``name`` alone at the top level."""
    return f"{prefix}.{name}" if prefix else str(name)


def match_name(name: object, known: Iterable[str]) -> str | None:
    """The entry of ``known`` equal to ``name`` ignoring case, or None."""
    if isinstance(name, str):
        for candidate in known:
            if candidate.casefold() == name.casefold():
                return candidate
    return None


# --------------------------------------------------------------------------- value parsers

Parser = Callable[[Any, Where], Any]
_NUMBER = r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*"
_DURATION_RE = re.compile(_NUMBER + r"(ms|s|m|h)?\s*", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(_NUMBER + r"(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.IGNORECASE)
_BYTES = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}  # KB = KiB = 1024: memory, not disks
_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML true is not 1


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def duration(*, positive: bool) -> Parser:
    expected = ("a duration > 0" if positive else "a duration >= 0") + \
        " (seconds as a number, or a string like '500ms', '2s', '1m', '1h')"

    def parse(value: Any, where: Where) -> float:
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


def _size(value: Any, where: Where) -> int:
    size = 0
    if _is_int(value):
        size = value
    elif isinstance(value, str) and (match := _SIZE_RE.fullmatch(value)):
        scaled = float(match[1]) * _BYTES[(match[2] or "b")[0].lower()]
        size = int(scaled) if math.isfinite(scaled) else 0
    if size < 1:
        raise where.error("a size >= 1 in bytes (an integer, or a string like '64KB', '1MB', '1MiB')", value)
    return size


def integer(minimum: int, maximum: int | None = None) -> Parser:
    expected = f"an integer {minimum}..{maximum}" if maximum is not None else f"an integer >= {minimum}"

    def parse(value: Any, where: Where) -> int:
        if not _is_int(value):
            raise where.error(expected, value)
        if value < minimum or (maximum is not None and value > maximum):
            raise where.fail(f"{value} is out of range; expected {expected}")
        return value

    return parse


def boolean(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error("true or false", value)
    return value


def _text(*, optional: bool) -> Parser:
    expected = "a string (or nothing)" if optional else "a non-empty string"

    def parse(value: Any, where: Where) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not (value.strip() or optional):
            raise where.error(expected, value)
        return value.strip() or None

    return parse


def _choice(*options: str) -> Parser:
    by_fold = {option.casefold(): option for option in options}

    def parse(value: Any, where: Where) -> str:
        if not isinstance(value, str) or value.strip().casefold() not in by_fold:
            raise where.error("one of " + " | ".join(options), value)
        return by_fold[value.strip().casefold()]

    return parse


def _strings(value: Any, where: Where) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise where.error("a list of strings (or one comma-separated string)", value)
    return tuple(item.strip() for item in value if item.strip())


def _messages(value: Any, where: Where) -> tuple[str, ...]:
    """A list of text messages, kept verbatim (they may hold commas)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise where.error("a list of strings", value)
    return tuple(value)


def _statements(value: Any, where: Where) -> tuple[str, ...]:
    """``CREATE STREAM`` statements: a list of strings, or one string."""
    return _messages([value] if isinstance(value, str) else value, where)


def _rules(value: Any, where: Where) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(rule, dict) and all(isinstance(key, str) for key in rule) for rule in value):
        raise where.error("a list of rule maps ({id: ..., stream: ..., actions: [...]})", value)
    return tuple(value)


def _functions(value: Any, where: Where) -> tuple[tuple[str, str], ...]:
    """``{c_to_f: "package.module:function"}``: Python functions for rule SQL."""
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
            isinstance(name, str) and name.isidentifier() and isinstance(target, str) and ":" in target
            for name, target in value.items()):
        raise where.error("a map of function name to 'package.module:function'", value)
    return tuple(value.items())


def _addr(value: Any, where: Where) -> str:
    expected = "'' (server mode) or 'host:port' with port 1..65535 ('[::1]:8080' for IPv6)"
    if value is None:
        return ""
    if not isinstance(value, str):
        raise where.error(expected, value)
    text = value.strip()
    if not text:
        return ""
    if "://" in text:
        raise where.fail(f"{text!r} holds a URL; addr is host:port and the scheme goes in 'scheme'")
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
        raise where.fail(f"port {int(port)} is out of range; expected {expected}")
    return text


def _tls_version(value: Any, where: Where) -> str:
    text = f"{value:.1f}" if isinstance(value, float) else value  # YAML reads 1.2 as a float
    if text not in ("1.0", "1.1", "1.2", "1.3"):
        raise where.error("a TLS version '1.0' | '1.1' | '1.2' | '1.3'", value)
    return str(text)


def _headers(value: Any, where: Where) -> tuple[tuple[str, str], ...]:
    """``{name: value | [values]}`` flattened to ``(name, value)`` pairs, one per list item."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise where.error("a map of header name to string or list of strings", value)
    pairs: list[tuple[str, str]] = []
    for name, raw in value.items():
        items, at = _unwrap(raw, where.file, dotted(where.key, name))
        if not isinstance(name, str) or _HEADER_RE.fullmatch(name) is None:
            raise at.error("a header name (letters, digits, '-')", name)
        for item in items if isinstance(items, list) else [items]:
            if not (isinstance(item, str) or _is_number(item)) or any(c in str(item) for c in "\r\n\0"):
                raise at.error("a header value: a string or list of strings on one line", items)
            pairs.append((name, str(item)))
    return tuple(pairs)


def _log_level(value: Any, where: Where) -> str:
    level = _choice("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")(value, where)
    return "WARNING" if level == "WARN" else str(level)


# --------------------------------------------------------------------------- prop tables


@dataclass(frozen=True)
class Prop:
    """One known prop: its dataclass field, parser and how an env var spells it.

    ``env``: "infer" types the value int > bool > float > str; "str" keeps it
    verbatim (a token of digits stays a string); "list" takes a JSON array or a
    comma-separated string; "json" takes a JSON value or else one string.
    ``sub`` is a nested map of known props; ``free`` a map of free names (headers).
    """

    field: str
    parse: Parser | None = None  # None when ``sub`` is set
    env: EnvMode = "infer"
    sub: Mapping[str, Prop] | None = None
    free: bool = False


_RECONNECT = {
    "initialDelay": Prop("initial_delay", duration(positive=False)),
    "maxDelay": Prop("max_delay", duration(positive=False)),
    "maxRetries": Prop("max_retries", integer(0)),
}
SOURCE_PROPS = {
    "addr": Prop("addr", _addr, "str"),
    "scheme": Prop("scheme", _choice("ws", "wss"), "str"),
    "requestHeader": Prop("request_header", _headers, "str", free=True),
    "subprotocols": Prop("subprotocols", _strings, "list"),
    "insecureSkipVerify": Prop("insecure_skip_verify", boolean),
    "rootCaPath": Prop("root_ca_path", _text(optional=True), "str"),
    "certificationPath": Prop("certification_path", _text(optional=True), "str"),
    "privateKeyPath": Prop("private_key_path", _text(optional=True), "str"),
    "tlsMinVersion": Prop("tls_min_version", _tls_version, "str"),
    "connectTimeout": Prop("connect_timeout", duration(positive=True)),
    "reconnect": Prop("reconnect", sub=_RECONNECT),
    "pingInterval": Prop("ping_interval", duration(positive=False)),
    "pingTimeout": Prop("ping_timeout", duration(positive=True)),
    "openMessages": Prop("open_messages", _messages, "list"),
    "maxMessageSize": Prop("max_message_size", _size),
    "maxConnections": Prop("max_connections", integer(0)),
    "allowedOrigins": Prop("allowed_origins", _strings, "list"),
    "authToken": Prop("auth_token", _text(optional=True), "str"),
    "bufferLength": Prop("buffer_length", integer(1)),
    "overflow": Prop("overflow", _choice("block", "dropOldest", "dropNewest"), "str"),
    "delivery": Prop("delivery", _choice("queue", "inline"), "str"),
}
_TLS = {
    "certfile": Prop("certfile", _text(optional=False), "str"),
    "keyfile": Prop("keyfile", _text(optional=False), "str"),
    "clientCaFile": Prop("client_ca_file", _text(optional=True), "str"),
}
SERVER_PROPS = {
    "httpServerIp": Prop("http_server_ip", _text(optional=False), "str"),
    "httpServerPort": Prop("http_server_port", integer(0, 65535)),
    "httpServerTls": Prop("http_server_tls", sub=_TLS),
    "handshakeTimeout": Prop("handshake_timeout", duration(positive=True)),
}
SERVICE_PROPS = {
    "restIp": Prop("rest_ip", _text(optional=False), "str"),
    "restPort": Prop("rest_port", integer(0, 65535)),
    "authToken": Prop("auth_token", _text(optional=True), "str"),
    "dataDir": Prop("data_dir", _text(optional=False), "str"),
    "logLevel": Prop("log_level", _log_level, "str"),
    "streams": Prop("streams", _statements, "json"),
    "rules": Prop("rules", _rules, "json"),
    "functions": Prop("functions", _functions, "json"),
}


# --------------------------------------------------------------------------- tree steps


def find_prop(name: object, table: Mapping[str, Prop], file: str, prefix: str) -> str:
    """The camelCase spelling of prop ``name`` (case-insensitive).

    Raises:
        ConfigError: ``name`` is not in ``table``; the message lists the known props.
    """
    known = match_name(name, table)
    if known is None:
        raise ConfigError(f"unknown prop {name!r}; expected one of {', '.join(table)}",
                          file=file, key=dotted(prefix, name))
    return known


def canonical(raw: object, table: Mapping[str, Prop], file: str, prefix: str) -> dict[str, Any]:
    """Rename the keys of one YAML map to their camelCase spelling, checking each is known."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Where(file, prefix).error("a map of props", raw)
    out: dict[str, Any] = {}
    for name, value in raw.items():
        known = find_prop(name, table, file, prefix)
        if known in out:
            raise ConfigError(f"prop {known!r} is given twice (names are case-insensitive)",
                              file=file, key=dotted(prefix, name))
        sub = table[known].sub
        out[known] = canonical(value, sub, file, dotted(prefix, known)) if sub is not None else value
    return out


def env_value(text: str, mode: EnvMode) -> Any:
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


def parse_props(tree: Mapping[str, Any], table: Mapping[str, Prop], file: str, prefix: str) -> dict[str, Any]:
    """Parse canonical props into ``{field: value}``; nested maps stay dicts."""
    values: dict[str, Any] = {}
    for name, raw in tree.items():
        prop = table[name]
        if prop.sub is not None:
            values[prop.field] = parse_props(raw, prop.sub, file, dotted(prefix, name))
            continue
        value, where = _unwrap(raw, file, dotted(prefix, name))
        assert prop.parse is not None
        values[prop.field] = prop.parse(value, where)
    return values
