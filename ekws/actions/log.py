"""The ``log`` action: what eKuiper's log sink writes, and the service's record output.

Every outgoing message is logged as eKuiper's ``internal/io/sink/log_sink.go``
logs it: ``sink result for rule r1: [{"a":1}]`` (the encoded message: the
JSON array of an emission's rows by default, one row with ``sendSingle``, a
``dataTemplate``'s text), on the ``ekws.actions.log`` logger at ``level``.

In ``ekws run`` the records are the service's output: one JSON line per
record on stdout (and eKuiper's line is logged at DEBUG, not to print each
record twice), ``{"data": {...}, "meta": {...}}`` (the service calls
:func:`set_output` with its printer), whatever ``sendSingle`` says, so
``ekws run -c etc`` shows the demo stream's records through the same
machinery a user extends.

Props: ``level`` (``debug``, ``info`` default, ``warning``, ``error``; the
logger's level, not used for the service's stdout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from .. import Message
from . import Action, Item, Props

logger = logging.getLogger(__name__)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

# One record output per process: the service's stdout. Read once per record (an
# assignment is atomic), so set_output needs no lock.
_output: Optional[Callable[[Message], None]] = None


def set_output(write: Optional[Callable[[Message], None]]) -> None:
    """Send every ``log`` action's records to ``write`` (None: back to the logger)."""
    global _output
    _output = write


def parse(props: Props) -> int:
    return _LEVELS[props.choice("level", "info", tuple(_LEVELS))]


class LogAction(Action):
    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._level: int = config
        self._rule = name.split(",")[0]

    def deliver(self, item: Item) -> None:
        output = _output
        # With the service's stdout, eKuiper's line goes to the log at DEBUG: the records are
        # already on stdout, and INFO would print every record twice.
        level = self._level if output is None else logging.DEBUG
        if logger.isEnabledFor(level):
            text = item.payload.decode("utf-8", "replace")
            logger.log(level, "sink result for %s: %s", self._rule, text)
        if output is not None:
            for row in item.rows():
                output(Message(row, item.peer, item.timestamp))

    def send(self, msg: Message) -> None:  # the Action interface; the sink calls deliver()
        self.deliver(Item(msg.data, msg.data, msg.peer, msg.timestamp))


ACTION = LogAction
