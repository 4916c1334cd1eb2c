"""eKuiper's scalar functions, and Python functions of your own, in one registry.

Every function a rule may call is a :class:`Function` in :data:`REGISTRY`
under its lower-case name (rule SQL names functions case-insensitively, as
eKuiper does). The rule compiler (:mod:`ekws.rules.sql`) looks a name up
once, checks the argument count and the literal arguments' kinds while the
rule is created (a mistake is a :class:`~ekws.rules.sql.SQLError`, a 400
over REST), and pastes a call to the implementation into the rule's
generated code: no lookup happens per record.

The families follow eKuiper's function reference (``docs/en_US/sqls/functions``
in ``lf-edge/ekuiper``) and its Go code (``internal/binder/function``):
:mod:`.math`, :mod:`.strings`, :mod:`.arrays` (array and object functions),
:mod:`.hashing`, :mod:`.transform`, :mod:`.datetime`, :mod:`.other`.

Null handling is per function, as eKuiper's: most functions of a null are
null, but ``concat`` skips a null (``concat("a", null, "b")`` is ``"ab"``),
``length(null)`` is 0, ``startswith``/``endswith``/``regexp_matches`` of a
null are false, ``indexof`` of a null is -1, and ``isnull``/``coalesce``
look at the null itself.

A function raising at run time (a wrong type, say) fails that record only:
the rule skips it, counts an exception and goes on.

Functions with state or with more than one value are not in the registry:
the analytic functions (``lag``, ``acc_sum`` ...) and ``changed_cols`` are in
:mod:`.analytic`; ``unnest``/``extract``, ``row_number`` and
``last_hit_count``/``last_hit_time`` are compiled by :mod:`ekws.rules.sql`.
Refused by name (:data:`REFUSED`): ``delay``, ``props``, ``window_trigger``.

Functions of your own
---------------------
A Python function registers with the :func:`function` decorator (exported
as ``ekws.rules.function``) and is then usable in any rule created after it,
in a device script or in the service (import the module before the rule is
made)::

    import ekws.rules

    @ekws.rules.function("c_to_f")
    def c_to_f(celsius):
        return None if celsius is None else celsius * 9 / 5 + 32

    # SELECT c_to_f(temperature) AS f FROM demo

The argument count is read from the signature (``*args`` is variadic) and
checked when a rule is created. The function gets the argument values as
they are (``None`` for null: it decides what a null means) and returns a
JSON-like value; raising fails the record, as a built-in does. A name may be
registered once; a built-in name is refused.

In the service, ``ekws.yaml`` declares them by import path; each is loaded
at start-up (a failed import stops the start, naming the entry)::

    functions:
      c_to_f: mypkg.convert:c_to_f
"""

from __future__ import annotations

# The built-in families register themselves into .registry when imported.
from . import arrays, datetime, hashing, jsonpath, math, other, strings, transform  # noqa: E402, F401, I001
from .registry import (
    NOT_CONST,
    REFUSED,
    REGISTRY,
    Arg,
    Bind,
    F,
    Function,
    FunctionError,
    Validate,
    bind,
    check,
    compile_call,
    function,
    implementation,
    load,
    lookup,
    register,
)

__all__ = [
    "Arg",
    "Bind",
    "F",
    "Function",
    "FunctionError",
    "NOT_CONST",
    "REFUSED",
    "REGISTRY",
    "Validate",
    "bind",
    "check",
    "compile_call",
    "function",
    "implementation",
    "load",
    "lookup",
    "register",
]
