"""Rule actions (eKuiper's sinks): the registry, the base class and config helpers.

An action is named in a rule body as ``{"kind": {props}}``. Its props are
checked when the rule is created (:func:`parse_action`: every error is an
:class:`ActionError` naming the action and the key) and the action is built
and started each time the rule starts. Modules are imported only when a rule
names them, so ``mqtt`` needs paho-mqtt only where it is used.

The rule calls :meth:`Action.send` once per output record, from its one
worker thread; :meth:`Action.flush` when no more records are waiting (a file
action writes through a buffer and flushes then: one flush per burst, not per
record). A raising ``send`` is counted for that action alone. Actions that
deliver in the background (``websocket``, ``mqtt``) count what they delivered
themselves and say so with ``asynchronous = True``.

Common props accepted by every action, as eKuiper spells them:
``sendSingle`` (records are always sent one by one), ``omitIfEmpty`` (skip
``{}``), ``format`` (``json`` only), ``concurrency`` (1 only).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from .. import EkwsError, Message, Runtime, props
from ..errors import ConfigError
from .jsonout import dumps, dumps_line, dumps_lines

__all__ = ["KINDS", "Action", "ActionError", "ActionSpec", "Props", "dumps", "dumps_line", "dumps_lines",
           "parse_action"]

# kind -> module; each module has ``parse(props: Props) -> config`` and ``ACTION`` (the class).
KINDS: dict[str, str] = {
    "log": "ekws.actions.log",
    "file": "ekws.actions.file",
    "websocket": "ekws.actions.websocket",
    "python": "ekws.actions.python",
    "mqtt": "ekws.actions.mqtt",
}




class ActionError(EkwsError, ValueError):
    """An action's props are wrong, or it cannot be built; names the action and key."""


class Action:
    """One running action of one rule. Subclasses implement :meth:`send`."""

    asynchronous: ClassVar[bool] = False  # counts its own records_out_total

    def __init__(self, config: Any, name: str) -> None:
        self.config = config
        self.name = name  # "rule r1, action file #0": for logs and errors
        # The rule's runtime, set before start(): the server-mode websocket action mounts on it.
        self.runtime: Optional[Runtime] = None

    def start(self) -> None:
        """Open what the action needs (a file, a connection). Errors stop the rule's start."""

    def send(self, msg: Message) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """The rule has no more records waiting: make what was sent durable or visible."""

    def close(self) -> None:
        """Flush and release everything; idempotent."""

    def metrics(self) -> dict[str, Any]:
        """Action-specific metrics (eKuiper names where they exist)."""
        return {}


@dataclass(frozen=True)
class ActionSpec:
    """A checked action of a rule body, ready to be built at each rule start."""

    kind: str
    index: int
    config: Any
    factory: Callable[[Any, str], Action]
    omit_if_empty: bool = False

    def build(self, rule_id: str) -> Action:
        return self.factory(self.config, f"rule {rule_id}, action {self.kind} #{self.index}")


class Props:
    """An action's props with typed, case-insensitive lookups whose errors name the action and key."""

    def __init__(self, kind: str, index: int, raw: Any, *, where: Optional[str] = None) -> None:
        self.where = where or f"action {kind} #{index}"
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ActionError(f"{self.where}: expected a map of props, got {type(raw).__name__}")
        self._raw = {str(k).lower(): (str(k), v) for k, v in raw.items()}
        self._used: set[str] = set()

    def sub(self, key: str) -> Props:
        """The nested map under ``key`` (empty when absent), its errors naming ``key`` too."""
        return Props("", 0, self.get(key, {}), where=f"{self.where}: {key}")

    def fail(self, key: str, message: str) -> ActionError:
        return ActionError(f"{self.where}: {key}: {message}")

    def has(self, key: str) -> bool:
        return key.lower() in self._raw

    def get(self, key: str, default: Any = None) -> Any:
        self._used.add(key.lower())
        entry = self._raw.get(key.lower())
        return default if entry is None or entry[1] is None else entry[1]

    def string(self, key: str, default: Optional[str] = None, *, required: bool = False) -> Any:
        value = self.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {type(value).__name__} {value!r:.60}")
        return value

    def check(self, key: str, parser: props.Parser, default: Any) -> Any:
        """``key`` checked by one of :mod:`ekws.props`' parsers, the ones source props use."""
        try:
            return parser(self.get(key, default), props.Where(self.where, key))
        except ConfigError as exc:
            raise self.fail(key, exc.message) from None

    def boolean(self, key: str, default: bool = False) -> bool:
        result: bool = self.check(key, props.boolean, default)
        return result

    def integer(self, key: str, default: int, minimum: int = 0, maximum: Optional[int] = None) -> int:
        result: int = self.check(key, props.integer(minimum, maximum), default)
        return result

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise self.fail(key, f"expected a number >= {minimum:g}, got {value!r:.60}")
        return float(value)

    def duration(self, key: str, default: float) -> float:
        """Seconds: a number, or a string like ``"500ms"``, ``"2s"``, ``"1m"``."""
        result: float = self.check(key, props.duration(positive=False), default)
        return result

    def choice(self, key: str, default: Any, options: tuple[Any, ...]) -> Any:
        value = self.get(key, default)
        for option in options:
            if value == option and type(value) is type(option):
                return option
            if isinstance(value, str) and isinstance(option, str) and value.lower() == option.lower():
                return option
        raise self.fail(key, f"expected one of {', '.join(map(str, options))}, got {value!r:.60}")

    def raw(self) -> dict[str, Any]:
        """Every prop as given (original spelling)."""
        return {name: value for name, value in self._raw.values()}

    def check_unknown(self) -> None:
        unknown = [name for key, (name, _) in self._raw.items() if key not in self._used]
        if unknown:
            raise self.fail(unknown[0], "unknown prop for this action")


def parse_action(entry: Any, index: int) -> ActionSpec:
    """Check one entry of a rule's ``actions`` list: ``{"kind": {props}}``.

    Raises:
        ActionError: an unknown kind, a bad prop (named), a missing dependency.
    """
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise ActionError(f"action #{index}: expected a map with one action kind, like "
                          '{"log": {}}, got ' + f"{entry!r:.80}")
    ((kind, raw),) = entry.items()
    if kind not in KINDS:
        raise ActionError(f"action #{index}: unknown action kind {kind!r}; ekws has {', '.join(KINDS)}")
    props = Props(kind, index, raw)
    props.boolean("sendSingle", True)
    omit = props.boolean("omitIfEmpty", False)
    props.choice("format", "json", ("json",))
    props.choice("concurrency", 1, (1,))
    module = importlib.import_module(KINDS[kind])
    config = module.parse(props)
    props.check_unknown()
    return ActionSpec(kind, index, config, module.ACTION, omit)
