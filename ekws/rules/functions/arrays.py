"""Array and object functions: eKuiper's ``funcs_array.go`` and ``funcs_obj.go`` (docs
``array_functions.md``, ``object_functions.md``).

Elements are compared as rule SQL's ``=`` compares (a number and a boolean
are unequal; ``1`` and ``1.0`` are equal). ``array_map("round", xs)`` calls a
one-argument scalar function (built-in or your own) on each element, looked
up by name once per distinct name.
Results are new lists and objects: a function never changes its argument.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..expr import EvalError, equal
from .args import go_str, to_int
from .registry import NOT_CONST, Arg, FunctionError, check, implementation, lookup, register

MAX_ELEMENTS = 1_000_000  # repeat() and sequence() refuse to build more


def _array(value: Any, which: str = "first") -> list[Any]:
    if type(value) is not list:
        raise EvalError(f"{which} argument should be array of interface{{}}")
    return value


def _object(value: Any, which: str = "first") -> dict[str, Any]:
    if type(value) is not dict:
        raise EvalError(f"{which} argument should be map[string]interface{{}}")
    return value


def _key(value: Any) -> Any:
    """A hashable stand-in for set membership that keeps booleans apart from numbers."""
    return (type(value) is bool, value) if type(value) in (int, float, str, bool) or value is None \
        else (2, repr(value))


@register("array_create", 0, None, nulls="pass", family="array")
def array_create(*args: Any) -> Any:
    items = [a for a in args if a is not None]
    return items or None


@register("array_position", 2, nulls="pass", family="array")
def array_position(array: Any, value: Any) -> int:
    if array is None:
        return -1
    for i, item in enumerate(_array(array)):
        if equal(item, value):
            return i
    return -1


@register("array_last_position", 2, nulls="pass", family="array")
def array_last_position(array: Any, value: Any) -> int:
    if array is None:
        return -1
    items = _array(array)
    for i in range(len(items) - 1, -1, -1):
        if equal(items[i], value):
            return i
    return -1


@register("element_at", 2, family="array")
def element_at(container: Any, index: Any) -> Any:
    if type(container) is list:
        n = to_int(index, "element_at")
        if n >= len(container) or -n > len(container):
            raise EvalError("index out of range")
        return container[n]
    if type(container) is dict:
        if type(index) is not str:
            raise EvalError("second argument should be string")
        return container.get(index)
    raise EvalError("first argument should be []interface{} or map[string]interface{}")


@register("array_contains", 2, nulls="pass", family="array")
def array_contains(array: Any, value: Any) -> bool:
    return array is not None and any(equal(item, value) for item in _array(array))


@register("array_contains_any", 2, nulls="pass", family="array")
def array_contains_any(a: Any, b: Any) -> bool:
    if a is None:
        return False
    other = _array(b, "second")
    return any(equal(x, y) for x in _array(a) for y in other)


@register("array_remove", 2, nulls="pass", family="array")
def array_remove(array: Any, value: Any) -> Any:
    if array is None:
        return None
    return [item for item in _array(array) if not equal(item, value)]


def _unique(items: Sequence[Any], skip: set[Any]) -> list[Any]:
    out = []
    for item in items:
        key = _key(item)
        if key not in skip:
            skip.add(key)
            out.append(item)
    return out


@register("array_intersect", 2, family="array")
def array_intersect(a: Any, b: Any) -> list[Any]:
    first = {_key(x) for x in _array(a)}
    out = []
    for item in _array(b, "second"):
        key = _key(item)
        if key in first:
            first.discard(key)
            out.append(item)
    return out


@register("array_union", 2, nulls="pass", family="array")
def array_union(a: Any, b: Any) -> list[Any]:
    first = [] if a is None else _array(a)
    second = [] if b is None else _array(b, "second")
    return _unique(list(first) + list(second), set())


@register("array_except", 2, nulls="pass", family="array")
def array_except(a: Any, b: Any) -> Any:
    if a is None:
        return None
    second = [] if b is None else _array(b, "second")
    return _unique(_array(a), {_key(x) for x in second})


def _extreme(array: Any, name: str, pick: Any) -> Any:
    """The first non-null element's kind rules, as eKuiper's ``common_array_funcs.go``: numbers
    (an int and a float compare as numbers: a JSON array's numbers are all float64 in eKuiper)
    or strings; any other element is eKuiper's error."""
    items = [x for x in _array(array) if x is not None]
    if not items:
        return None
    first = type(items[0])
    wanted: tuple[type, ...]
    if first is int or first is float:
        expected, wanted = ("int64" if first is int else "float64"), (int, float)
    elif first is str:
        expected, wanted = "string", (str,)
    else:
        raise EvalError(f"found invalid arg {_go_type(items[0])}({go_str(items[0])})")
    for x in items:
        if type(x) not in wanted:
            raise EvalError(f"requires {expected} but found {_go_type(x)}({go_str(x)})")
    return pick(items)


def _go_type(value: Any) -> str:
    """Go's ``%T`` of a JSON value as eKuiper holds it."""
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int:
        return "int64"
    if kind is float:
        return "float64"
    if kind is str:
        return "string"
    if kind is list:
        return "[]interface {}"
    if kind is dict:
        return "map[string]interface {}"
    return kind.__name__


@register("array_max", 1, family="array")
def array_max(array: Any) -> Any:
    return _extreme(array, "array_max", max)


@register("array_min", 1, family="array")
def array_min(array: Any) -> Any:
    return _extreme(array, "array_min", min)


@register("repeat", 2, family="array")
def repeat(value: Any, count: Any) -> list[Any]:
    if type(count) is not int:
        raise EvalError("second argument should be int")
    if count > MAX_ELEMENTS:
        raise EvalError(f"repeat: at most {MAX_ELEMENTS} elements")
    return [value] * max(count, 0)


def _sequence_check(args: Sequence[Arg]) -> None:
    if len(args) not in (2, 3):
        raise ValueError(f"Expect two or three arguments but found {len(args)}.")


@register("sequence", 2, 3, validate=_sequence_check, family="array")
def sequence(start: Any, stop: Any, step: Any = None) -> list[int]:
    for value, which in ((start, "first"), (stop, "second")):
        if type(value) is not int:
            raise EvalError(f"{which} argument should be int")
    if step is None:
        step = 1 if start < stop else -1
    elif type(step) is not int:
        raise EvalError("third argument should be int")
    elif step == 0:
        raise EvalError("invalid step: should not be zero")
    count = (stop - start) // step + 1 if (stop - start) * step >= 0 else 0
    if count > MAX_ELEMENTS:
        raise EvalError(f"sequence: at most {MAX_ELEMENTS} elements")
    return [start + i * step for i in range(count)]


@register("array_cardinality", 1, nulls="zero", family="array")
def array_cardinality(array: Any) -> int:
    return sum(1 for x in _array(array) if x is not None)  # eKuiper's getCount: nulls not counted


@register("cardinality", 1, nulls="zero", family="array")
def cardinality(value: Any) -> int:
    return len(value) if type(value) is list else 0


@register("array_flatten", 1, family="array")
def array_flatten(array: Any) -> list[Any]:
    out: list[Any] = []
    for item in _array(array):
        if type(item) is list:
            out.extend(item)
        else:
            out.append(item)
    return out


@register("array_distinct", 1, family="array")
def array_distinct(array: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in _array(array):
        if type(item) in (list, dict):
            out.append(item)  # as eKuiper: unhashable elements are kept
            continue
        key = _key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@register("array_join", 2, 3, family="array")
def array_join(array: Any, delimiter: Any, null_text: Any = "") -> str:
    if type(delimiter) is not str:
        raise EvalError("second argument should be string")
    if type(null_text) is not str:
        raise EvalError("third argument should be string")
    parts = []
    for item in _array(array):
        if item is None:
            if null_text:
                parts.append(null_text)
        elif type(item) in (list, dict):
            raise EvalError("array elements should be string")
        else:
            parts.append(go_str(item))
    return delimiter.join(parts)


@register("array_shuffle", 1, family="array")
def array_shuffle(array: Any) -> list[Any]:
    items = list(_array(array))
    random.shuffle(items)
    return items


@register("array_sort", 1, family="array")
def array_sort(array: Any) -> list[Any]:
    if type(array) is not list:
        raise EvalError("array elements should be array")
    return sorted(array, key=go_str)  # eKuiper sorts by fmt.Sprint


@register("array_concat", 1, None, nulls="pass", family="array")
def array_concat(*arrays: Any) -> list[Any]:
    out: list[Any] = []
    for array in arrays:
        if array is None:
            continue
        if type(array) is not list:
            raise EvalError("array elements should be array")
        out.extend(array)
    return out


@register("kvpair_array_to_obj", 1, family="array")
def kvpair_array_to_obj(array: Any) -> dict[str, Any]:
    out = {}
    for item in _array(array):
        if type(item) is not dict:
            raise EvalError("array item should be map[string]interface{}")
        if len(item) != 2 or type(item.get("key")) is not str or "value" not in item:
            raise EvalError("array item should be key-value pair")
        out[item["key"]] = item["value"]
    return out


# --------------------------------------------------------------------------- objects


@register("keys", 1, family="object")
def keys(obj: Any) -> list[str]:
    return list(_object(obj))


@register("values", 1, family="object")
def values(obj: Any) -> list[Any]:
    return list(_object(obj).values())


@register("object_size", 1, nulls="zero", family="object")
def object_size(obj: Any) -> int:
    return len(_object(obj))


@register("items", 1, family="object")
def items(obj: Any) -> list[list[Any]]:
    return [[k, v] for k, v in _object(obj).items()]


@register("obj_to_kvpair_array", 1, family="object")
def obj_to_kvpair_array(obj: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in sorted(_object(obj).items())]


@register("object", 2, family="object")
def object_(names: Any, vals: Any) -> dict[str, Any]:
    if type(names) is not list or any(type(k) is not str for k in names):
        raise EvalError("first argument should be []string")
    if type(vals) is not list:
        raise EvalError("second argument should be []interface{}")
    if len(names) != len(vals):
        raise EvalError("the length of the arguments should be same")
    return dict(zip(names, vals))


@register("zip", 1, family="object")
def zip_(pairs: Any) -> Any:
    if type(pairs) is not list:
        raise EvalError("each argument should be [][2]interface{}")
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        if pair is None:
            continue  # eKuiper skips a null entry
        if type(pair) is not list or len(pair) != 2:
            raise EvalError("each argument should be [][2]interface{}")
        if type(pair[0]) is not str:
            raise EvalError("the first element in the list item should be string")
        out[pair[0]] = pair[1]
    return out


@register("object_concat", 1, None, nulls="pass", family="object")
def object_concat(*objects: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, obj in enumerate(objects):
        if obj is None:
            continue
        if type(obj) is not dict:
            raise EvalError(f"the argument should be map[string]interface{{}}, got {i + 1}th")
        out.update(obj)
    return out


@register("erase", 2, family="object")
def erase(obj: Any, names: Any) -> dict[str, Any]:
    source = _object(obj)
    if type(names) is str:
        drop = {names}
    elif type(names) is list and all(type(n) is str for n in names):
        drop = set(names)
    else:
        raise EvalError("erase should use string or array of string as the second argument")
    return {k: v for k, v in source.items() if k not in drop}


@register("object_pick", 2, None, nulls="pass", family="object")
def object_pick(obj: Any, *names: Any) -> Any:
    """eKuiper's object_pick: keys as strings or one array of strings; ``a.b`` picks a nested
    key (keeping its parents); a key that is not a string is skipped, as eKuiper logs and skips."""
    if obj is None:
        return None
    if type(obj) is not dict:
        raise EvalError(f"the first argument should be a map, got {go_str(obj)}")
    first = names[0]
    wanted = first if type(first) is list else names if type(first) is str else ()
    out: dict[str, Any] = {}
    for name in wanted:
        if type(name) is str:
            _pick(out, obj, name)
    return out


def _pick(out: dict[str, Any], source: dict[str, Any], key: str) -> None:
    *parents, last = key.split(".")
    node: Any = source
    for part in parents:
        node = node.get(part)
        if type(node) is not dict:
            return
    if last not in node:
        return
    target = out
    for part in parents:
        nested = target.get(part)
        if type(nested) is not dict:
            nested = target[part] = {}
        target = nested
    target[last] = node[last]


def _construct_check(args: Sequence[Arg]) -> None:
    if len(args) % 2:
        raise ValueError("the args must be key value pairs")
    for i in range(0, len(args), 2):
        if type(args[i].value) in (int, float, bool):
            raise ValueError(f"Expect string type for parameter {i + 1}")


@register("object_construct", 0, None, nulls="pass", validate=_construct_check, family="object")
def object_construct(*args: Any) -> dict[str, Any]:
    """A null key is skipped; a null value is kept, as eKuiper's code and tests do
    (``funcs_obj_test.go``; the reference page says such a pair is left out)."""
    out = {}
    for i in range(0, len(args), 2):
        key = args[i]
        if key is None:
            continue
        if type(key) is not str:
            raise EvalError(f"key {go_str(key)} is not a string")
        out[key] = args[i + 1]
    return out


_MAPPERS: dict[str, Any] = {}


def _mapper(name: str) -> Any:
    found = _MAPPERS.get(name)
    if found is not None:
        return found
    from ..aggregates import AGGREGATES
    from .analytic import ANALYTIC
    if name.lower() in AGGREGATES or name.lower() in ANALYTIC:
        raise EvalError("first argument should be a scalar function.")
    try:
        fn = lookup(name)
    except FunctionError:
        raise EvalError(f"unknown built-in function: {name}.") from None
    args = [Arg(NOT_CONST)]
    try:
        if fn.message:
            raise FunctionError(name)
        check(fn, args)
        found = implementation(fn, args)
    except (FunctionError, ValueError):
        raise EvalError(f"validate {name} arguments failed") from None
    if len(_MAPPERS) < 1000:  # names come from records: keep the cache bounded
        _MAPPERS[name] = found
    return found


@register("array_map", 2, family="array")
def array_map(name: Any, array: Any) -> list[Any]:
    if type(name) is not str:
        raise EvalError("first argument should be string")
    if type(array) is not list:
        raise EvalError("second argument should be array of interface{}")
    fn = _mapper(name)
    return [fn(v) for v in array]
