"""Hashing functions: eKuiper's ``funcs_misc.go`` (docs ``hashing_functions.md``).

Each hashes the argument's string form (Go's ``%v``) and returns lower-case
hex; ``crc32`` is IEEE's, as hex too. A null gives null.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Any

from .args import STRING, expect, go_str
from .registry import register


def _digest(algorithm: str) -> Callable[[Any], str]:
    return lambda value: hashlib.new(algorithm, go_str(value).encode()).hexdigest()


for _name in ("md5", "sha1", "sha256", "sha384", "sha512"):
    register(_name, 1, validate=expect(STRING), family="hashing")(_digest(_name))


@register("crc32", 1, validate=expect(STRING), family="hashing")
def crc32(value: Any) -> str:
    return format(zlib.crc32(go_str(value).encode()) & 0xFFFFFFFF, "x")
