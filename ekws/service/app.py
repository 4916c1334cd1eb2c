"""The service object: one runtime, its store, the REST API and the signals.

``ekws run -c etc`` builds a :class:`Service`, calls :meth:`Service.run` and
exits with what it returns. Start-up, in order: read ``etc/ekws.yaml`` and
``etc/sources/websocket.yaml`` (conf keys stored over REST overlay the file and
win over environment overrides, as in eKuiper; see :mod:`.settings`), open the
store, create the streams declared in ``ekws.yaml``, restore the streams stored over REST, start
the plugins (the rules: declared, then stored; see :mod:`.http.rules`), start
the REST API, tell systemd READY=1.

Streams from two places, one name space. ``ekws.yaml`` wins a clash: its
streams are created first and are read-only over REST (PUT/DELETE answer
409: edit the file); a stored stream of the same name is skipped with a
WARNING and left in the store, so removing the entry from the file brings it
back. As in eKuiper a stream does nothing until a rule reads it: a rule's
start subscribes (a server-mode stream mounts its path then), and a stream
that rules read cannot be dropped (409 naming them). The ``log`` action writes
to the service's record output: one JSON line per record on stdout (see
:mod:`.output`).

Reload (SIGHUP): both files read again and the difference applied, see
:mod:`.reload`; a file that does not load is logged and changes nothing.

Stop (SIGTERM, SIGINT, or stdout closed): STOPPING=1, the REST API stops
accepting, the rules stop (each subscription delivers what it holds to the
rule's actions, then the actions close; the last one on a stream stops its
source: server-mode peers get 1001), then the runtime closes; all within
:data:`STOP_DEADLINE` seconds. Records still undelivered at the deadline are
counted in one WARNING.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import yaml

from .. import BindError, ConfigError, DDLError, EkwsError, Runtime, ServerError, StreamExists
from ..config import SERVICE_FILE, SOURCE_FILE, ServiceConfig, WebsocketConfig
from ..ddl import parse_stream
from ..errors import InUse, ReadOnly
from ..signals import SignalWait
from ..wire.tls import check_client_files
from . import health
from .http import streams as api
from .http.rest import RestApp, RestServer, Route
from .notify import Notifier
from .output import LinePrinter
from .settings import ConfKeys, read_source_keys
from .settings import load_settings as load_settings  # re-exported: `ekws run` imports it from here
from .store import Store

if TYPE_CHECKING:
    from ..rules.manager import RuleManager

logger = logging.getLogger(__name__)

STOP_DEADLINE = 9.0  # seconds; systemd's and the budget is 10
HEALTH_PERIOD = 2.0  # seconds between two looks at the rules' health (STATUS=, a log line on change)


class Plugin(Protocol):
    """What another service module (rules) plugs in: routes, and a start and stop step."""

    routes: Sequence[Route]

    def start(self, service: Service) -> None: ...

    def stop(self, service: Service) -> None: ...


class Service(ConfKeys):
    """``ekws run``: streams, store, REST API and systemd glue around one :class:`ekws.Runtime`.

    Args:
        config_dir: the folder of ``ekws.yaml`` and ``sources/websocket.yaml``.
        settings: the loaded ``ekws.yaml`` (see :func:`load_settings`).
        environ: for ``WEBSOCKET__...`` overrides and ``NOTIFY_SOCKET`` (default os.environ).
        out: where the rules' ``log`` actions write records as JSON lines (default
            stdout); None: they log them instead.
        plugins: modules adding routes and start/stop steps (the rules engine).

    Raises:
        ConfigError: bad config files or a bad declared stream (naming file and entry).
    """

    def __init__(self, config_dir: str | os.PathLike[str], settings: ServiceConfig, *,
                 environ: Mapping[str, str] | None = None, out: TextIO | None = sys.stdout,
                 plugins: Sequence[Plugin] = (), log_level: str | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.settings = settings
        self._log_level = log_level  # --log-level, which a reload keeps over ekws.yaml's
        self.environ = dict(os.environ if environ is None else environ)
        self.plugins = list(plugins)
        if settings.rules and not any(getattr(p, "runs_rules", False) for p in self.plugins):
            raise ConfigError("rules are not supported by this version of ekws; remove the rules: entry",
                              file=str(self.config_dir / SERVICE_FILE), key="rules")
        self._register_functions(settings.functions)
        self._source_file = self.config_dir / SOURCE_FILE
        self.yaml_keys: dict[str, Any] = read_source_keys(self.config_dir, self.environ)
        self.store = Store(settings.data_dir)
        self.runtime = Runtime(config=self.websocket_config(self.store.confkeys()))
        self.declared: dict[str, str] = {}
        self.rules: RuleManager | None = None  # set by the rules plugin
        self._lock = threading.RLock()
        self.printer = LinePrinter(out, self._stdout_closed) if out is not None else None
        self.notifier = Notifier(self.environ)
        self.rest: RestServer | None = None
        self.started = time.time()
        self._health = health.OK  # as last logged and told to systemd
        self._stop = threading.Event()
        self._stop_reason = ""
        self._signals = SignalWait(reload=True)  # run()'s wait, woken by request_stop from any thread

    # -- streams ---------------------------------------------------------------------------

    def origin(self, name: str) -> str:
        return SERVICE_FILE if name in self.declared else "rest"

    def create_stream(self, sql: str, *, declared: bool = False) -> str:
        """Create and (unless declared in ekws.yaml) store a stream; returns its name."""
        with self._lock:
            try:
                definition = self.runtime.create_stream(sql)
            except StreamExists:
                name = _name_of(sql)
                if name in self.declared:
                    raise StreamExists(f"Item {name} already exists (declared in "
                                       f"{self.config_dir / SERVICE_FILE}).", name=name) from None
                raise
            name = definition.name
            try:
                if declared:
                    self.declared[name] = sql
                else:
                    self.store.put_stream(name, sql)
            except BaseException:
                self.runtime.drop_stream(name)
                raise
        self._status_changed()
        return name

    def drop_stream(self, name: str) -> None:
        with self._lock:
            self._check_writable(name)
            self.runtime.describe_stream(name)  # StreamNotFound
            users = self.rules.on_stream(name) if self.rules is not None else []
            if users:  # eKuiper's check, and its words
                raise InUse(f"stream {name} has been referenced by other rules: {', '.join(users)}; "
                            "drop them first", name=name)
            self.runtime.drop_stream(name)
            self.store.delete_stream(name)
        logger.info("stream %s dropped", name)
        self._status_changed()

    def replace_stream(self, name: str, sql: str) -> None:
        """PUT /streams/{name}: the new statement must keep the name; on failure the old one stays.

        Running rules on the stream stop for the swap and start again on the new definition.
        """
        with self._lock:
            self._check_writable(name)
            old = self.runtime.describe_stream(name)
            new_name = _name_of(sql)
            if new_name != name:
                raise DDLError(f"the statement defines stream {new_name!r}, not {name!r}")
            rules = self.rules
            running = [r for r in rules.on_stream(name) if rules.is_running(r)] if rules is not None else []
            for rule_id in running:
                assert rules is not None
                rules.stop(rule_id)
            self.runtime.drop_stream(name)
            try:
                self.create_stream(sql)
            except BaseException:
                self.runtime.create_stream(old.sql)
                raise
            finally:
                for rule_id in running:
                    assert rules is not None
                    try:
                        rules.start(rule_id)
                    except Exception:  # noqa: S110 - logged by the rule, shown in its status
                        pass

    def _check_writable(self, name: str) -> None:
        if name in self.declared:
            raise ReadOnly(f"stream {name} is declared in {self.config_dir / SERVICE_FILE}; edit the file",
                           name=name)

    def _status_changed(self) -> None:
        if self.rest is not None:
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        """systemd's STATUS=: the health when degraded, the stream count and the REST address."""
        count = len(self.runtime.streams())
        rest = "http://{}:{}".format(*self.rest.address) if self.rest else "not started"
        line = f"{count} stream{'s' if count != 1 else ''}; REST API {rest}"
        state = self.health()
        return line if state == health.OK else f"{state}; {line}"

    def health(self) -> str:
        """``ok`` or ``degraded: 1 rule failing (r1: ...)`` (see :mod:`.health`)."""
        return health.summary(health.failing(self.rules, self.runtime))

    def _check_health(self) -> None:
        """Log a change of health and tell systemd (run()'s loop, every HEALTH_PERIOD)."""
        state = self.health()
        if state == self._health:
            return
        if state == health.OK:
            logger.info("healthy again: no rule failing")
        else:
            logger.warning("%s", state)
        self._health = state
        self._status_changed()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Streams from ekws.yaml, then from the store, then the REST API, then READY=1.

        Raises:
            ConfigError: a declared stream is wrong (names the file and the entry).
            BindError: the REST port or the shared server's port is taken.
        """
        file = self.config_dir / SERVICE_FILE
        for index, sql in enumerate(self.settings.streams):
            try:
                self.create_stream(sql, declared=True)
            except BindError:
                raise
            except (DDLError, ConfigError, StreamExists, ServerError) as exc:
                raise ConfigError(f"streams[{index}]: {exc}", file=str(file)) from exc
        for name, sql in self.store.streams().items():
            if name in self.declared:
                logger.warning("stream %s from the store is shadowed by %s (the file wins)", name, file)
                continue
            try:
                self.create_stream(sql)
            except BindError:
                raise
            except EkwsError as exc:
                logger.error("stream %s from the store not restored: %s", name, exc)
        for plugin in self.plugins:
            plugin.start(self)
        self._fail_on_config_errors()
        self._check_declared_tls()
        routes = list(api.ROUTES) + [route for plugin in self.plugins for route in plugin.routes]
        app = RestApp(self, routes, self.settings.auth_token)
        self.rest = RestServer(app, self.settings.rest_ip, self.settings.rest_port)
        self.rest.start()
        host, port = self.rest.address
        paths = ", ".join(self._urls()) or "none"
        rules = len(self.rules.ids()) if self.rules is not None else 0
        logger.info("ready: REST API on http://%s:%s, %d stream(s), %d rule(s), server-mode paths: %s",
                    host, port, len(self.runtime.streams()), rules, paths)
        self.notifier.ready(self.status_line())
        self.notifier.start_watchdog(lambda: self.rest is not None and self.rest.alive)
        self._check_health()

    def _fail_on_config_errors(self) -> None:
        """A declared rule that did not start for a config reason ends the start (ekws run exits 2).

        Raises:
            ConfigError: naming ekws.yaml, ``rules[i]``, the rule and the reason.
            BindError: a rule's websocket action cannot bind the shared server's port (exit 1).
        """
        failures = getattr(self.rules_plugin, "start_failures", None) or {}
        index = {body.get("id"): i for i, body in enumerate(self.settings.rules) if isinstance(body, dict)}
        for rule_id, exc in failures.items():
            bind = health.bind_error(exc)
            if bind is not None:
                raise bind
            if health.is_config_failure(exc):
                raise ConfigError(f"rule {rule_id} cannot start: {exc}",
                                  file=str(self.config_dir / SERVICE_FILE),
                                  key=f"rules[{index.get(rule_id, '?')}]") from exc

    def _check_declared_tls(self, settings: ServiceConfig | None = None,
                            config: WebsocketConfig | None = None,
                            only: Collection[str] | None = None) -> None:
        """Every declared client-mode wss stream's TLS files load, whether or not a rule reads it yet.

        At start a rule on such a stream has failed already (naming
        ``rules[i]``); this catches the stream that no rule reads, before a rule
        created over REST would find it at its start. A reload checks the
        streams it adds or re-creates (``only``) against the new config.

        Raises:
            ConfigError: naming ekws.yaml, ``streams[i]``, the stream, the prop and the file.
        """
        settings = settings or self.settings
        config = config or self.runtime.config
        for index, sql in enumerate(settings.streams):
            definition = parse_stream(sql)
            if only is not None and definition.name not in only:
                continue
            try:
                check_client_files(config.props(definition.conf_key))
            except ConfigError as exc:
                raise ConfigError(f"stream {definition.name}: {exc}",
                                  file=str(self.config_dir / SERVICE_FILE), key=f"streams[{index}]") from exc

    @property
    def rules_plugin(self) -> Any:
        """The plugin that runs the rules (its ``declared`` ids), or None."""
        return next((p for p in self.plugins if getattr(p, "runs_rules", False)), None)

    def reload(self) -> bool:
        """SIGHUP: re-read both config files and apply the difference (see :mod:`.reload`).

        Never raises: a config that does not load is logged (ERROR, naming the
        file and key) and the running one kept. True if the new config was applied.
        """
        from . import reload

        logger.info("reload: reading %s and %s", self.config_dir / SERVICE_FILE, self._source_file)
        self.notifier.reloading()
        try:
            with self._lock:
                try:
                    settings = load_settings(self.config_dir, self.environ, self._log_level)
                    yaml_keys = read_source_keys(self.config_dir, self.environ)
                    change = reload.plan(self, settings, yaml_keys)
                    self._check_declared_tls(change.settings, change.config,
                                             only={*change.stream_add, *change.stream_redo})
                except (EkwsError, OSError, yaml.YAMLError) as exc:
                    logger.error("reload failed, keeping the running configuration: %s", exc)
                    return False
                if change.kept:
                    logger.warning("reload: %s changed; `systemctl restart ekws` (or a new ekws run) "
                                   "applies it, the running value is kept", ", ".join(change.kept))
                reload.apply(self, change)
            logger.info("reload: done (%s)", change.changes)
            return True
        except Exception:  # a bug must not end the service on a reload
            logger.exception("reload failed")
            return False
        finally:
            self.notifier.ready(self.status_line())

    def _urls(self) -> list[str]:
        address = self.runtime.server_address
        if address is None:
            return []
        scheme = "wss" if self.runtime.config.server.http_server_tls else "ws"
        host = address[0] if ":" not in address[0] else f"[{address[0]}]"
        out = []
        for name in self.runtime.streams():
            definition = self.runtime.describe_stream(name)
            mounted = self.runtime.status(name)["subscriptions"] > 0  # a running rule reads it
            if mounted and self.runtime.config.props(definition.conf_key).is_server:
                out.append(f"{scheme}://{host}:{address[1]}{definition.datasource}")
        return out

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            self._signals.wake()

    def _stdout_closed(self) -> None:
        logger.warning("stdout was closed: stopping")
        # One line on stderr at most after the reader went away (`ekws run | head -n 1`).
        logging.getLogger().setLevel(logging.CRITICAL)
        self.request_stop("stdout closed")

    def run(self) -> bool:
        """Start, serve until a signal or a closed stdout, stop. True if the stop was clean."""
        waiter = self._signals
        waiter.install()  # before start(): READY=1 and the "ready" line invite a SIGTERM at once
        try:
            try:
                self.start()
            except BaseException:
                self.shutdown()
                raise
            name = waiter.wait(self._stop.is_set, HEALTH_PERIOD)
            while name is None and not self._stop.is_set():
                if waiter.take_reload():
                    self.reload()
                self._check_health()
                name = waiter.wait(self._stop.is_set, HEALTH_PERIOD)
            if name is not None:
                logger.info("received %s: stopping", name)
                self.request_stop(name)
            return self.shutdown()
        finally:
            waiter.restore()
            if len(waiter.received) > 1:
                logger.info("received %s again while stopping", ", ".join(waiter.received[1:]))

    def shutdown(self) -> bool:
        """Stop everything within STOP_DEADLINE; False if something had to be left behind."""
        deadline = time.monotonic() + STOP_DEADLINE
        self.notifier.stopping()
        if self.rest is not None:
            self.rest.stop()
        subs = self.rules.subscriptions() if self.rules is not None else []
        closer = threading.Thread(target=self._close, name="ekws-stop", daemon=True)  # joined below
        closer.start()
        closer.join(max(0.0, deadline - time.monotonic()))
        # A callback stuck past the deadline (a stdout nobody reads) leaves records behind.
        left = sum(sub.buffered for sub in subs)
        clean = not closer.is_alive() and not left
        if not clean:
            logger.warning("stopped at the deadline (%.0f s): %d received record(s) not delivered",
                           STOP_DEADLINE, left)
        self.notifier.close()
        self.store.close()
        logger.info("stopped")
        return clean

    def _close(self) -> None:
        """Plugins first (rules deliver what they hold, then close their actions), then the runtime."""
        for plugin in reversed(self.plugins):
            try:
                plugin.stop(self)
            except Exception:
                logger.exception("stopping %s failed", type(plugin).__name__)
        self.runtime.close()


def _name_of(sql: str) -> str:
    return parse_stream(sql).name
