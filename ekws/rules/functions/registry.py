"""The function registry: :class:`Function`, :data:`REGISTRY`, the decorator and the lookup.

The families (:mod:`.math`, :mod:`.strings`, ...) register into it; see the
package docstring for what a function is and how a rule calls it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, TypeVar

from ...errors import EkwsError

__all__ = ["REFUSED", "REGISTRY", "Arg", "Function", "FunctionError", "NOT_CONST", "function", "load",
           "lookup", "register"]


class FunctionError(EkwsError, ValueError):
    """A function call that cannot be compiled: unknown name, wrong arity or argument kind."""


class _NotConst:
    def __repr__(self) -> str:
        return "NOT_CONST"


NOT_CONST: Any = _NotConst()  # an argument that is not a literal (known only per record)


class Arg(NamedTuple):
    """What the compiler knows of one argument: its literal value, or :data:`NOT_CONST`."""

    value: Any


# validate(args) raises ValueError with eKuiper's message; bind(args, rule_id) returns the
# implementation to call (a function may specialize on literal arguments, compiling a
# regular expression or a time format once).
Validate = Callable[[Sequence[Arg]], None]
Bind = Callable[[Sequence[Arg], str], Callable[..., Any]]


class Function(NamedTuple):
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: Optional[int]  # None: variadic
    nulls: str = "null"  # "null": any null argument gives null; "false", "zero", "pass": see _NULLS
    validate: Optional[Validate] = None
    bind: Optional[Bind] = None
    message: bool = False  # impl(m, *args): it reads the record's message (meta, event time)
    family: str = "custom"


REGISTRY: dict[str, Function] = {}
F = TypeVar("F", bound=Callable[..., Any])


def register(name: str, min_args: int, max_args: Optional[int] = -1, *, nulls: str = "null",
             validate: Optional[Validate] = None, bind: Optional[Bind] = None, message: bool = False,
             family: str = "custom") -> Callable[[F], F]:
    """Register a built-in (``max_args`` -1: the same as ``min_args``; None: variadic)."""
    def decorate(impl: F) -> F:
        most = min_args if max_args == -1 else max_args
        REGISTRY[name.lower()] = Function(name.lower(), impl, min_args, most, nulls, validate, bind,
                                          message, family)
        return impl
    return decorate


def function(name: str) -> Callable[[F], F]:
    """Register a Python function under ``name`` for rule SQL (see the module docstring).

    Raises:
        FunctionError: the name is taken, or not a plain identifier.
    """
    key = name.lower()
    if not key.isidentifier():
        raise FunctionError(f"a function name must be an identifier, got {name!r}")

    def decorate(impl: F) -> F:
        existing = REGISTRY.get(key)
        if existing is not None and (existing.family != "custom" or existing.impl is not impl):
            raise FunctionError(f"function {name} is already registered ({existing.family})")
        least, most = _arity(impl)
        REGISTRY[key] = Function(key, impl, least, most, "pass")
        return impl
    return decorate


def load(name: str, target: str) -> Function:
    """Import ``target`` (``package.module:function``) and register it as ``name``
    (``functions:`` in ``ekws.yaml``).

    Raises:
        FunctionError: the import failed, the target is not callable, or the name is taken.
    """
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # an import runs arbitrary code: report whatever it raised
        raise FunctionError(f"function {name}: cannot load {target!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise FunctionError(f"function {name}: {target!r} is not callable")
    function(name)(obj)
    return REGISTRY[name.lower()]


def _arity(impl: Callable[..., Any]) -> tuple[int, Optional[int]]:
    least, most = 0, 0
    for param in inspect.signature(impl).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return least, None
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            if param.default is param.empty:
                least += 1
    return least, most


def lookup(name: str) -> Function:
    """The function ``name`` (any case).

    Raises:
        FunctionError: no such function.
    """
    found = REGISTRY.get(name.lower())
    if found is None:
        reason = REFUSED.get(name.lower())
        if reason is not None:
            raise FunctionError(f"function {name} is not supported by ekws rules: {reason}")
        raise FunctionError(f"function {name} not found")
    return found


# eKuiper functions ekws knows and does not run, and why.
REFUSED = {
    "delay": "it would sleep on the rule's worker",
    "props": "ekws has no rule properties store",
    "window_trigger": "ekws windows do not say what fired them",
}


def check(fn: Function, args: Sequence[Arg]) -> None:
    """The call's argument count and literal kinds, as eKuiper validates them.

    Raises:
        FunctionError: eKuiper's message (``Expect 1 arguments but found 2.``).
    """
    count = len(args)
    if fn.min_args == fn.max_args and count != fn.min_args:
        raise FunctionError(f"{fn.name}: Expect {fn.min_args} arguments but found {count}.")
    if count < fn.min_args:
        raise FunctionError(f"{fn.name}: At least has {fn.min_args} argument but found {count}.")
    if fn.max_args is not None and count > fn.max_args:
        raise FunctionError(f"{fn.name}: Expect {fn.min_args} to {fn.max_args} arguments but found {count}.")
    if fn.validate is not None:
        try:
            fn.validate(args)
        except ValueError as exc:
            raise FunctionError(f"{fn.name}: {exc}") from None


def bind(fn: Function, args: Sequence[Arg], rule_id: str = "") -> Callable[..., Any]:
    """The implementation for this call (specialized on its literal arguments), without
    the null handling.

    Raises:
        ValueError: a literal argument the function refuses (a bad regular expression).
    """
    return fn.bind(args, rule_id) if fn.bind is not None else fn.impl


def implementation(fn: Function, args: Sequence[Arg], rule_id: str = "") -> Callable[..., Any]:
    """The callable with its null handling: what a call computes from argument values."""
    impl = bind(fn, args, rule_id)
    wrap = _NULLS.get(fn.nulls)
    return impl if wrap is None else wrap(impl)


def _nil(result: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(impl: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            for a in args:
                if a is None:
                    return result
            return impl(*args)
        return call
    return wrap


_NULLS = {"null": _nil(None), "false": _nil(False), "zero": _nil(0)}


def compile_call(fn: Function, impl: Callable[..., Any], args: Sequence[Any]) -> Any:
    """The call as an expression of the rule's generated code (:func:`ekws.rules.expr.call_expr`);
    ``impl`` from :func:`bind`, its null check pasted inline."""
    from ..expr import call_expr
    if fn.nulls in _RESULTS:
        return call_expr(fn.name, impl, args, null_result=_RESULTS[fn.nulls], message=fn.message)
    return call_expr(fn.name, impl, args, message=fn.message)


_RESULTS = {"null": None, "false": False, "zero": 0}
