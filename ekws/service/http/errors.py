"""The one table from domain errors to HTTP statuses and eKuiper's error codes.

Domain code (runtime, service, rule manager) raises :mod:`ekws.errors`
classes and knows no status codes; the REST app asks :func:`answer` here for
every exception a handler lets through. The body is eKuiper's
``{"error": <code>, "message": "..."}`` with the numeric codes of eKuiper's
``pkg/errorx/error_code.go``, and the statuses of its ``handleError``
(``internal/server/rest.go``): 404 for a NOT_FOUND error, 400 for every
other error, including a name that is taken (eKuiper answers 400 there, not
409).

Two ekws outcomes have no eKuiper counterpart and keep 409: a stream, rule
or conf key declared in a file (:class:`~ekws.errors.ReadOnly`) and a shared
server path taken by another stream (:class:`~ekws.errors.ServerError`).
"""

from __future__ import annotations

from typing import Final

from ...errors import BindError, Exists, InUse, NotFound, ReadOnly, ServerError

__all__ = ["GENERAL", "NOT_FOUND", "STREAM_TABLE", "UNDEFINED", "answer", "code_for_status"]

# eKuiper's pkg/errorx codes
UNDEFINED: Final = 1000
GENERAL: Final = 1001
NOT_FOUND: Final = 1002
STREAM_TABLE: Final = 3000  # what eKuiper's stream statements answer (internal/processor/stream.go)

# (class, HTTP status, eKuiper code); the first match wins, so subclasses come first.
TABLE: Final[tuple[tuple[type[BaseException], int, int], ...]] = (
    (NotFound, 404, NOT_FOUND),
    (Exists, 400, UNDEFINED),
    (InUse, 400, UNDEFINED),
    (ReadOnly, 409, UNDEFINED),
    (BindError, 400, UNDEFINED),
    (ServerError, 409, UNDEFINED),
    (ValueError, 400, UNDEFINED),  # ConfigError, DDLError, InvalidRule, SQLError, ActionError
)


def answer(exc: BaseException) -> tuple[int, int] | None:
    """``(status, code)`` for a domain error; ``None`` for one this table does not know (a bug: 500)."""
    for cls, status, code in TABLE:
        if isinstance(exc, cls):
            return status, code
    return None


def code_for_status(status: int) -> int:
    """eKuiper's code for an error the REST layer itself answers (bad body, 404 path, 413 ...)."""
    return NOT_FOUND if status == 404 else UNDEFINED
