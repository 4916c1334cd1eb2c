"""The service's configuration: ``ekws.yaml`` and the conf keys of ``sources/websocket.yaml``.

:func:`load_settings` reads ``ekws.yaml`` (``ekws run`` and a reload).
:class:`ConfKeys` is the part of :class:`~ekws.service.app.Service` that
keeps conf keys: the file's, overlaid by those stored over REST (a stored key
also wins over ``WEBSOCKET__...`` environment overrides, as in eKuiper), the
``functions:`` entry, and the connectivity check of ``POST
/metadata/sources/connection/websocket``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .. import ConfigError, Runtime, StreamDef
from ..config import (
    SERVICE_FILE,
    SOURCE_FILE,
    ServiceConfig,
    WebsocketConfig,
    load_service_config,
    load_websocket_config,
    websocket_config_from_dict,
)
from ..errors import InUse, NotFound, ReadOnly
from .check import CheckResult, check_client, check_server
from .store import Store

logger = logging.getLogger(__name__)

RESERVED_KEY = "source"
_MASK = "******"


def load_settings(config_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
                  log_level: str | None = None) -> ServiceConfig:
    """``ekws.yaml`` with env overrides; ``log_level`` (``--log-level``) wins and is checked alike.

    Raises:
        ConfigError: no such config dir, no ekws.yaml in it, or a bad value.
    """
    folder = Path(config_dir)
    if not folder.is_dir():
        raise ConfigError(f"config dir {str(folder)!r} does not exist (expected a folder holding "
                          f"{SERVICE_FILE} and {SOURCE_FILE}, like the shipped etc/)")
    if not (folder / SERVICE_FILE).is_file():
        raise ConfigError(f"file not found; `ekws run` needs it (copy the shipped etc/{SERVICE_FILE})",
                          file=str(folder / SERVICE_FILE))
    env = dict(os.environ if environ is None else environ)
    if log_level is None:
        return load_service_config(folder, env)
    env["EKWS__LOGLEVEL"] = log_level
    try:
        return load_service_config(folder, env)
    except ConfigError as exc:
        if exc.file != "EKWS__LOGLEVEL":
            raise
        prefix = f"{exc.file}:{exc.key}: "
        message = str(exc)[len(prefix):] if str(exc).startswith(prefix) else str(exc)
        raise ConfigError(message, file="--log-level") from None


def read_source_keys(config_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """``sources/websocket.yaml``'s conf keys as written; the file and env checked first (clean errors).

    Raises:
        ConfigError: a bad file or override (naming the file and key).
        OSError, yaml.YAMLError: the file changed under the check.
    """
    load_websocket_config(config_dir, environ)
    raw = yaml.safe_load((config_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    return dict(raw) if isinstance(raw, dict) else {}


class ConfKeys:
    """Conf keys from the file and the store, and ``functions:`` (a mixin of the Service)."""

    config_dir: Path
    environ: dict[str, str]
    yaml_keys: dict[str, Any]
    store: Store
    runtime: Runtime
    _source_file: Path
    _lock: threading.RLock

    def _register_functions(self, declared: Sequence[tuple[str, str]]) -> None:
        """``functions:`` in ekws.yaml: each imported and registered before any rule is made."""
        from ..rules.functions import FunctionError, load

        for name, target in declared:
            try:
                load(name, target)
            except FunctionError as exc:
                raise ConfigError(str(exc), file=str(self.config_dir / SERVICE_FILE),
                                  key=f"functions.{name}") from None

    def websocket_config(self, stored: Mapping[str, Mapping[str, Any]],
                         yaml_keys: Mapping[str, Any] | None = None) -> WebsocketConfig:
        """The file's conf keys overlaid by stored ones; a stored key also beats env overrides."""
        data = self._merged_keys(stored, yaml_keys)
        stored_names = {key.casefold() for key in stored}
        environ = {var: value for var, value in self.environ.items()
                   if not (var.startswith("WEBSOCKET__") and var.split("__")[1].casefold() in stored_names)}
        return websocket_config_from_dict(data, path=str(self._source_file), environ=environ)

    def _merged_keys(self, stored: Mapping[str, Mapping[str, Any]],
                     yaml_keys: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = dict(self.yaml_keys if yaml_keys is None else yaml_keys)
        for key, props in stored.items():
            for same in [k for k in data if str(k).casefold() == key.casefold()]:
                del data[same]
            data[key] = dict(props)
        return data

    def confkeys(self) -> dict[str, Any]:
        """Conf keys as ``GET /metadata/sources/yaml/websocket`` shows them (secrets masked)."""
        return {str(key): _masked(props) for key, props in self._merged_keys(self.store.confkeys()).items()}

    def put_confkey(self, key: str, props: dict[str, Any]) -> None:
        """Store a conf key (over the file's and env's); streams created afterwards use it."""
        if key.casefold() == RESERVED_KEY:
            raise ConfigError(f"{RESERVED_KEY!r} is the shared server's block; set it in {self._source_file}")
        with self._lock:
            stored = self.store.confkeys()
            stored = {k: v for k, v in stored.items() if k.casefold() != key.casefold()}
            # Errors name the request body, not the file:
            websocket_config_from_dict({key: props}, path="request body")
            stored[key] = props
            config = self.websocket_config(stored)
            self.store.put_confkey(key, props)
            for same in [k for k in self.store.confkeys() if k != key and k.casefold() == key.casefold()]:
                self.store.delete_confkey(same)
            self.runtime.config = config  # read by create_stream; running streams keep their props
        logger.info("conf key %s saved", key)

    def delete_confkey(self, key: str) -> None:
        with self._lock:
            stored = self.store.confkeys()
            match = next((k for k in stored if k.casefold() == key.casefold()), None)
            if match is None:
                in_file = any(str(k).casefold() == key.casefold() for k in self.yaml_keys)
                if in_file:
                    raise ReadOnly(f"conf key {key} is defined in {self._source_file}; edit the file",
                                   name=key)
                raise NotFound(f"conf key {key} is not found", name=key)
            rest = {k: v for k, v in stored.items() if k != match}
            config = self.websocket_config(rest)
            users = [name for name in self.runtime.streams()
                     if _conf_key_gone(self.runtime.describe_stream(name), config)]
            if users:
                raise InUse(f"conf key {key} is used by stream(s) {', '.join(users)}; drop them first",
                            name=key)
            self.store.delete_confkey(match)
            self.runtime.config = config
        logger.info("conf key %s deleted", key)

    def check(self, body: dict[str, Any]) -> CheckResult:
        """The connectivity check for props given as a request body (see :mod:`.check`)."""
        props_body = dict(body)
        datasource = props_body.pop("datasource", "/")
        if not isinstance(datasource, str) or not datasource.startswith("/"):
            raise ConfigError("expected a path starting with '/'", key="datasource")
        data = self._merged_keys(self.store.confkeys())
        default = next((v for k, v in data.items() if str(k).casefold() == "default"), None)
        config = websocket_config_from_dict(
            {"default": default or {}, "request": props_body}, path="request body")
        props = config.props("request")
        if props.is_server:
            return check_server(self.runtime.config.server, self.runtime.server_address)
        return check_client(props, datasource)


def _conf_key_gone(definition: StreamDef, config: WebsocketConfig) -> bool:
    try:
        config.props(definition.conf_key)
    except ConfigError:
        return True
    return False


def _masked(props: Any) -> Any:
    """Props with secrets replaced: authToken and every requestHeader value."""
    if not isinstance(props, dict):
        return props
    out: dict[str, Any] = {}
    for key, value in props.items():
        name = str(key).casefold()
        if name == "authtoken" and value:
            out[str(key)] = _MASK
        elif name == "requestheader" and isinstance(value, dict):
            out[str(key)] = {str(h): _MASK for h in value}
        else:
            out[str(key)] = _masked(value) if isinstance(value, dict) else value
    return out
