"""The ``log`` action: one line per record, as eKuiper's log sink prints.

In ``ekws run`` the line is the service's record output: one JSON line per
record on stdout, ``{"data": {...}, "meta": {...}}`` (the service calls
:func:`set_output` with its printer), so ``ekws run -c etc`` shows the demo
stream's records through the same machinery a user extends. Without an
output (a :class:`~ekws.rules.manager.RuleManager` used on its own) lines go
to the ``ekws.actions.log`` logger at ``level``.

Props: ``level`` (``debug``, ``info`` default, ``warning``, ``error``; the
logger's level, not used for the service's stdout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Optional

from .. import Message
from . import Action, Props, dumps

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

    def send(self, msg: Message) -> None:
        output = _output
        if output is not None:
            output(msg)
        elif logger.isEnabledFor(self._level):
            logger.log(self._level, "sink result for %s: %s", self._rule, dumps(msg.data).decode("utf-8"))


ACTION = LogAction
