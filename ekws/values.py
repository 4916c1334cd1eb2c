"""One value system: how text becomes a number, for rule ``cast()`` and stream schemas.

Both a rule's ``cast(x, 'float')`` (:mod:`ekws.rules.functions.transform`)
and a typed stream's FLOAT and BIGINT fields (:mod:`ekws.schema`) read number
text here, so a value a rule can cast is a value a schema accepts, and the
other way round.

The grammar is eKuiper's: its ``cast`` (``pkg/cast/cast.go``: ``ToFloat64``
and ``ToInt`` with ``CONVERT_ALL``) parses with Go's ``strconv``, so

* ``_`` may separate digits (``"1_000"`` is 1000, ``"1_000.5"`` 1000.5; not
  at either end, not doubled: ``"_1"``, ``"1__0"`` are refused);
* ``"nan"``, ``"inf"``, ``"infinity"`` (any case, infinities signed) are the
  float specials: ``cast('nan', 'float')`` is NaN and so is a FLOAT field
  given ``"NaN"``; a BIGINT refuses them (they are not integral);
* only ASCII digits count (Python's ``float()`` would also read other
  scripts' digits; Go's does not).

Booleans are Go's ``strconv.ParseBool`` (eKuiper's ``ToBool`` and its JSON
schema's BOOLEAN): ``true``/``false``, ``t``/``f``, ``1``/``0``, in any case
(Go takes ``TRUE``, ``True`` and ``true`` only; ekws took any case before).

Two leniencies ekws keeps where eKuiper refuses (both were ekws's behaviour
before, in both places): white space around the number is ignored, and
BIGINT text may be an integral float (``"4.0"``, ``"1e3"``; ``"4.5"`` is
refused, as eKuiper refuses it). Not read: Go's hexadecimal floats and
``0x``/``0o``/``0b`` integer prefixes.
"""

from __future__ import annotations

__all__ = ["parse_bool", "parse_float", "parse_int"]

MAX_TEXT = 4300  # characters: Python's default int() digit limit; longer text is no number here


def parse_float(text: str) -> float:
    """The float that ``text`` spells.

    Raises:
        ValueError: ``text`` is no number in the grammar above.
    """
    stripped = text.strip()
    if not stripped.isascii() or len(stripped) > MAX_TEXT:
        raise ValueError(f"not a number: {text!r}")
    lowered = stripped.lower()
    if lowered.lstrip("+-") in ("nan",) and lowered != "nan":  # Go reads no sign on NaN
        raise ValueError(f"not a number: {text!r}")
    return float(stripped)  # Python's float() grammar is Go's ParseFloat's, decimal and ASCII


def parse_int(text: str) -> int:
    """The integer that ``text`` spells: an integer literal, or an integral float (``"4.0"``).

    Raises:
        ValueError: ``text`` is no number, or not an integral one.
    """
    stripped = text.strip()
    if not stripped.isascii() or len(stripped) > MAX_TEXT:
        raise ValueError(f"not an integer: {text!r}")
    try:
        return int(stripped)  # Python's int() reads "1_000" as Go's ParseInt(s, 0) does
    except ValueError:
        pass
    number = parse_float(stripped)
    if not number.is_integer():  # also False for nan and inf
        raise ValueError(f"not an integer: {text!r}")
    return int(number)


_TRUE = frozenset(("true", "t", "1"))
_FALSE = frozenset(("false", "f", "0"))


def parse_bool(text: str) -> bool:
    """The boolean that ``text`` spells (see the module docstring).

    Raises:
        ValueError: ``text`` is no boolean.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")
