"""Is the service healthy? Which rules fail, and is a failure the config's fault or the network's?

A rule is failing when it should run and does not (its start failed, or its
source gave up: eKuiper's "stopped by error"), or when it runs on a
client-mode stream that cannot connect (the dial fails and is retried).
The service says so in one line, the same in systemd's ``STATUS=``, the
status page's JSON and ``GET /health``: ``ok``, or ``degraded: 1 rule
failing (r1: ...)``.

At start a declared rule whose start fails for a configuration reason is
fatal (``ekws run`` exits 2, naming it): a missing or unreadable TLS file,
a path another stream already serves, an action's bad props, a ``file``
action whose folder does not exist. So is a declared client-mode ``wss``
stream whose TLS files do not load, even one no rule reads yet (exit 2
naming ``streams[i]``). Anything else (a dial, a broker that is
down) is transient: the rule is retried per its ``restartStrategy`` and the
service runs degraded meanwhile.
"""

from __future__ import annotations

from typing import Any

from ..errors import BindError, ConfigError, EkwsError, ServerError
from ..message import State

OK = "ok"
_STOPPED_ON_PURPOSE = ("", "canceled manually", "stopped by update")
_REASON_CHARS = 160
_SHOWN = 3  # reasons spelled out in the line; the rest are counted


def bind_error(exc: BaseException) -> BindError | None:
    """The BindError behind ``exc`` (a websocket action wraps it), if any: a taken port."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BindError):
            return seen
        seen = seen.__cause__
    return None


def is_config_failure(exc: BaseException) -> bool:
    """True if retrying cannot help: the files must change (see the module docstring)."""
    from ..actions import ActionError

    if bind_error(exc) is not None:  # a port another process holds: exit 1, as for a stream
        return False
    if isinstance(exc, (ConfigError, ServerError, ActionError)):
        return True
    return isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))


def should_run(status: dict[str, Any]) -> bool:
    """A rule status that is running, or stopped by an error (not on request, nor never started)."""
    if status.get("status") == "running":
        return True
    return str(status.get("message") or "").rstrip(".") not in _STOPPED_ON_PURPOSE


def failing(rules: Any, runtime: Any) -> list[tuple[str, str]]:
    """``(rule id, reason)`` of every failing rule, by id; ``rules`` is a RuleManager or None."""
    if rules is None:
        return []
    stream_of: dict[str, str] = {}
    for name in runtime.streams():
        for rule_id in rules.on_stream(name):
            stream_of[rule_id] = name
    out = []
    for rule_id in rules.ids():
        try:
            status = rules.status(rule_id)
        except EkwsError:  # deleted meanwhile
            continue
        if status.get("status") != "running":
            if should_run(status):
                out.append((rule_id, str(status.get("message") or "").rstrip(".")))
            continue
        name = stream_of.get(rule_id)
        try:
            metrics = runtime.status(name) if name is not None else {}
        except EkwsError:  # dropped meanwhile
            continue
        error = metrics.get("last_error")
        if error and metrics.get("state") != State.CONNECTED:
            out.append((rule_id, f"stream {name}: {error}"))
    return out


def summary(failures: list[tuple[str, str]]) -> str:
    """``ok`` or ``degraded: 2 rules failing (r1: ...; r2: ...)``."""
    if not failures:
        return OK
    count = len(failures)
    shown = [f"{rule_id}: {_short(reason)}" for rule_id, reason in failures[:_SHOWN]]
    if count > _SHOWN:
        shown.append(f"{count - _SHOWN} more")
    return f"degraded: {count} rule{'s' if count != 1 else ''} failing ({'; '.join(shown)})"


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= _REASON_CHARS else reason[:_REASON_CHARS - 3] + "..."
