"""The ``log`` action: one log line per record, as eKuiper's log sink prints.

Lines go to the ``ekws.actions.log`` logger at INFO; ``ekws run`` shows them.
Props: ``level`` (``debug``, ``info`` default, ``warning``, ``error``).
"""

from __future__ import annotations

import logging
from typing import Any

from ekws import Message

from . import Action, Props, dumps

logger = logging.getLogger(__name__)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def parse(props: Props) -> int:
    return _LEVELS[props.choice("level", "info", tuple(_LEVELS))]


class LogAction(Action):
    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._level: int = config
        self._rule = name.split(",")[0]

    def send(self, msg: Message) -> None:
        if logger.isEnabledFor(self._level):
            logger.log(self._level, "sink result for %s: %s", self._rule, dumps(msg.data).decode("utf-8"))


ACTION = LogAction
