"""The props every action shares (eKuiper's common sink props), parsed once into a :class:`SinkConf`.

Split from :mod:`ekws.actions.sink` (the pipeline that runs them; it
re-exports :data:`COMMON_PROPS`, :class:`SinkConf` and :func:`parse_common`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .. import props
from .cache import CacheConf
from .template import Template, TemplateError, compile_template

__all__ = ["COMMON_PROPS", "SinkConf", "parse_common"]


def _strings(value: Any, where: props.Where) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error("a list of field names", value)
    return tuple(value)


def _text(value: Any, where: props.Where) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise where.error("a string", value)
    return value


def _template(value: Any, where: props.Where) -> Optional[Template]:
    text = _text(value, where)
    if text is None:
        return None
    try:
        return compile_template(text)
    except TemplateError as exc:
        raise where.fail(str(exc).removeprefix("dataTemplate: ")) from None


def _millis(value: Any, where: props.Where) -> float:
    """eKuiper's durations here: an integer of milliseconds, or a string like ``"500ms"``, ``"2s"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise where.error("milliseconds >= 0 (or a duration like '1s')", value)
        return float(value) / 1000.0
    seconds: float = props.duration(positive=False)(value, where)
    return seconds


def _format(value: Any, where: props.Where) -> str:
    if isinstance(value, str) and value.lower() == "json":
        return "json"
    if isinstance(value, str) and value.lower() in ("protobuf", "delimited", "binary", "custom",
                                                    "urlencoded"):
        raise where.fail(f"format {value!r} is not supported by ekws actions (only json)")
    raise where.error("json", value)


def _zero(name: str) -> props.Parser:
    def parse(value: Any, where: props.Where) -> Any:
        if value in (None, "", 0, False, {}):
            return value
        raise where.fail(f"{name} is not supported by ekws actions")
    return parse


# Every common prop: its parser (ekws.props' parsers where one fits) and its default.
COMMON_PROPS: dict[str, tuple[props.Prop, Any]] = {
    "sendSingle": (props.Prop("send_single", props.boolean), False),
    "omitIfEmpty": (props.Prop("omit_if_empty", props.boolean), False),
    "dataTemplate": (props.Prop("template", _template), None),
    "dataField": (props.Prop("data_field", _text), None),
    "tableDataField": (props.Prop("data_field", _text), None),
    "fields": (props.Prop("fields", _strings), None),
    "excludeFields": (props.Prop("exclude_fields", _strings), None),
    "format": (props.Prop("format", _format), "json"),
    "bufferLength": (props.Prop("buffer_length", props.integer(1)), 1024),
    "runAsync": (props.Prop("run_async", props.boolean), False),
    "concurrency": (props.Prop("concurrency", props.integer(1, 64)), 1),
    "batchSize": (props.Prop("batch_size", props.integer(0)), 0),
    "lingerInterval": (props.Prop("linger", _millis), 0),
    "enableCache": (props.Prop("enable_cache", props.boolean), False),
    "memoryCacheThreshold": (props.Prop("memory_threshold", props.integer(1)), 1024),
    "maxDiskCache": (props.Prop("max_disk", props.integer(0)), 1024000),
    "bufferPageSize": (props.Prop("page_size", props.integer(1)), 256),
    "resendInterval": (props.Prop("resend_interval", _millis), 0),
    "cleanCacheAtStop": (props.Prop("clean_at_stop", props.boolean), False),
    "schemaId": (props.Prop("schema_id", _zero("schemaId (protobuf encoding)")), ""),
    "delimiter": (props.Prop("delimiter", _text), None),
    "compression": (props.Prop("compression", _zero("compression")), ""),
    "encryption": (props.Prop("encryption", _zero("encryption")), ""),
    "resendAlterQueue": (props.Prop("resend_alter_queue", _zero("resendAlterQueue")), False),
    "resendPriority": (props.Prop("resend_priority", _zero("resendPriority")), 0),
    "resendIndicatorField": (props.Prop("resend_indicator", _zero("resendIndicatorField")), ""),
    "resendDestination": (props.Prop("resend_destination", _zero("resendDestination")), ""),
    # A rule's resourceId is resolved (the sink conf key's props merged in) before the action is
    # parsed (ekws.rules.definition); one left here came another way, e.g. the connectivity check.
    "resourceId": (props.Prop("resource_id", _zero("resourceId (a sink conf key) outside a rule")), ""),
}


@dataclass(frozen=True)
class SinkConf:
    """The checked common props of one action."""

    send_single: bool = False
    omit_if_empty: bool = False
    template: Optional[Template] = None
    data_field: Optional[str] = None
    fields: Optional[tuple[str, ...]] = None
    exclude_fields: Optional[tuple[str, ...]] = None
    buffer_length: int = 1024
    run_async: bool = False
    concurrency: int = 1
    batch_size: int = 0
    linger: float = 0.0
    cache: Optional[CacheConf] = None

    @property
    def transforms(self) -> bool:
        return bool(self.template or self.data_field or self.fields or self.exclude_fields)


def parse_common(kind: str, raw: Any, *, caches: bool, concurrent: bool) -> SinkConf:
    """The common props of action ``raw`` (an :class:`ekws.actions.Props`), checked and marked used.

    Args:
        caches: the action has a far end and a queue the cache can replace.
        concurrent: the action may deliver from several threads at once.
    """
    values: dict[str, Any] = {}
    for key, (prop, default) in COMMON_PROPS.items():
        given = raw.has(key)
        value = raw.check(key, prop.parse, default)
        if given or prop.field not in values:
            values[prop.field] = value
    if kind == "python" and not raw.has("sendSingle"):
        values["send_single"] = True  # the python action's contract: one Message a record
    if values["fields"] and values["exclude_fields"]:
        raise raw.fail("excludeFields", "fields and excludeFields cannot both be set")
    if values["concurrency"] > 1 and not concurrent:
        raise raw.fail("concurrency", f"the {kind} action delivers in order from one thread; only 1")
    if values["enable_cache"] and not caches:
        raise raw.fail("enableCache", f"the {kind} action has no far end to wait for; the cache is for "
                                      "the websocket (client mode) and mqtt actions")
    cache = None
    if values["enable_cache"]:
        cache = CacheConf(memory_threshold=values["memory_threshold"], max_disk=values["max_disk"],
                          page_size=min(values["page_size"], values["memory_threshold"]),
                          resend_interval=values["resend_interval"], clean_at_stop=values["clean_at_stop"])
    return SinkConf(
        send_single=values["send_single"], omit_if_empty=values["omit_if_empty"], template=values["template"],
        data_field=values["data_field"], fields=values["fields"], exclude_fields=values["exclude_fields"],
        buffer_length=values["buffer_length"], run_async=values["run_async"] or values["concurrency"] > 1,
        concurrency=values["concurrency"], batch_size=values["batch_size"], linger=values["linger"],
        cache=cache)
