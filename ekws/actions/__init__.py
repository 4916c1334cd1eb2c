"""Rule actions (eKuiper's sinks): the registry, the base class and config helpers.

An action is named in a rule body as ``{"kind": {props}}``. Its props are
checked when the rule is created (:func:`parse_action`: every error is an
:class:`ActionError` naming the action and the key) and the action is built
and started each time the rule starts. Modules are imported only when a rule
names them, so ``mqtt`` needs paho-mqtt only where it is used.

The rule hands each emission to the action's :class:`~ekws.actions.sink.Sink`
(:meth:`ActionSpec.build`), which applies eKuiper's common sink props
(``sendSingle``, ``dataTemplate``, ``fields``, ``dataField``, ``omitIfEmpty``,
batching, ``runAsync``, the cache: see :mod:`ekws.actions.sink`) once for
every kind and calls :meth:`Action.deliver` with each outgoing
:class:`~ekws.actions.sink.Item` (its ``value`` and its encoded ``payload``),
from the rule's worker thread unless ``runAsync``; :meth:`Action.flush` when
no more records are waiting (a file action writes through a buffer and
flushes then: one flush per burst, not per record). A raising ``deliver`` is
counted for that action alone. Actions that deliver in the background
(``websocket``, ``mqtt``) count what they delivered themselves and say so
with ``asynchronous = True``; those two also take the queue the sink gives
them (:attr:`Action.queue`: memory, or the disk cache with ``enableCache``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from .. import EkwsError, Message, Runtime, props
from ..errors import ConfigError
from .jsonout import dumps, dumps_line, dumps_lines
from .sink import Item, Sink, SinkConf, parse_common

__all__ = ["KINDS", "Action", "ActionError", "ActionSpec", "Item", "Props", "Sink", "SinkConf", "dumps",
           "dumps_line", "dumps_lines", "parse_action"]

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
    # The module's answer to "can enableCache replace this action's queue?", per config.

    def __init__(self, config: Any, name: str) -> None:
        self.config = config
        self.name = name  # "rule r1, action file #0": for logs and errors
        # The rule's runtime, set before start(): the server-mode websocket action mounts on it.
        self.runtime: Optional[Runtime] = None
        # enableCache: (its conf, a table name unique to rule and action), set before start().
        self.cache: Optional[tuple[Any, str]] = None

    def start(self) -> None:
        """Open what the action needs (a file, a connection). Errors stop the rule's start."""

    def deliver(self, item: Item) -> None:
        """Send one outgoing message; the default hands :meth:`send` a Message of its value."""
        self.send(Message(item.value, item.peer, item.timestamp))

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
    sink: SinkConf

    def build(self, rule_id: str, *, drop_nil: bool = False) -> Sink:
        """The action of a starting rule behind its common pipeline.

        ``drop_nil``: leave null columns out of each row (the rule's ``sendNilField`` false).
        """
        action = self.factory(self.config, f"rule {rule_id}, action {self.kind} #{self.index}")
        if self.sink.cache is not None:
            action.cache = (self.sink.cache, f"{rule_id}/{self.kind}/{self.index}")
        return Sink(self.sink, action, drop_nil=drop_nil)


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
    module = importlib.import_module(KINDS[kind])
    config = module.parse(props)
    sink = parse_common(kind, props, caches=getattr(module, "can_cache", _never)(config),
                        concurrent=getattr(module, "CONCURRENT", False))
    props.check_unknown()
    return ActionSpec(kind, index, config, module.ACTION, sink)


def _never(config: Any) -> bool:
    return False
