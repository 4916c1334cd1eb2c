"""The ``python`` action: call ``"callable": "pkg.mod:fn"`` with each :class:`ekws.Message`.

It gets one Message a record (``sendSingle`` is true by default here: the
contract of this ekws-only action); with ``sendSingle: false`` its ``data``
is the list of an emission's rows, and with a ``dataTemplate`` the text.
``concurrency: N`` calls it from N threads (for a callable that waits on
I/O); the order of calls is then not kept.

The callable is imported when the rule is created, so a typo or an import
error is an :class:`~ekws.actions.ActionError` then, not a failure per
record. It runs in the rule's worker thread: a slow callable holds back the
rule (``bufferLength``/``overflow`` decide what waits or drops), and one that
raises is counted for this action, never stopping the rule. The message's
``data`` is the rule's output record; treat it as read-only (``SELECT *``
passes the stream's record, shared with other rules).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .. import Message
from . import Action, Props

CONCURRENT = True  # the sink may call it from several threads (concurrency > 1)


def parse(props: Props) -> Callable[[Message], Any]:
    target = props.string("callable", required=True)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise props.fail("callable", f"expected 'package.module:function', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import runs arbitrary code: report whatever it raised
        raise props.fail("callable", f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise props.fail("callable", f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise props.fail("callable", f"{target!r} is not callable")
    fn: Callable[[Message], Any] = obj
    return fn


class PythonAction(Action):
    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self.send = config  # type: ignore[method-assign]  # the call itself: nothing to add per record


ACTION = PythonAction
