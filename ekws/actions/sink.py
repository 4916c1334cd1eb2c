"""eKuiper's common sink properties, applied in one place for every action.

A rule hands each emission (the one record of a plain rule, or the rows a
window fired) to its actions' :class:`Sink`, which runs eKuiper's sink
pipeline (``internal/topo/node/transform_op.go``, ``batch_op.go``,
``cache_op.go``) before the action's own :meth:`~ekws.actions.Action.deliver`:

    sendNilField -> omitIfEmpty -> batch -> transform (sendSingle,
    dataTemplate, dataField, fields/excludeFields) -> encode (json) ->
    [runAsync/concurrency workers] -> action (its queue or its cache)

* ``sendSingle`` false (eKuiper's default): one message per emission, the JSON
  array of its rows (``[{"a":1}]`` for a plain rule); true: one per row. The
  ``python`` action, which eKuiper has not, keeps one call per record unless
  it says ``sendSingle: false``.
* ``dataTemplate``: :mod:`ekws.actions.template`, applied to the row
  (sendSingle) or the list; with ``format: json`` its text is sent as it is,
  or parsed as JSON when ``dataField``/``fields`` follow (eKuiper's order).
* ``dataField``: that field of the map (of the first row, for a list);
  ``fields``: only those keys (a missing one is null, as eKuiper);
  ``excludeFields``: all but those.
* ``omitIfEmpty``: an empty emission (no rows, or only ``{}``) is not sent.
* ``batchSize``/``lingerInterval`` (ms): rows collected until that many or
  that long after the first, then sent as one emission.
* ``runAsync``/``concurrency``: delivery in ``concurrency`` named threads fed
  by a queue of ``bufferLength`` that blocks the rule when full (lossless back
  pressure, eKuiper's ``bufferLength`` meaning). Without them, delivery is in
  the rule's worker thread.
* ``enableCache`` and its tuning (``memoryCacheThreshold``, ``maxDiskCache``,
  ``bufferPageSize``, ``resendInterval`` (ms), ``cleanCacheAtStop``): only for
  actions whose far end can be away (``websocket`` client, ``mqtt``), which
  then queue in :class:`~ekws.actions.cache.DiskCache`; refused by name on the
  others.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from .. import Message, Peer, Runtime, props
from .cache import CacheConf
from .jsonout import dumps
from .template import Template, TemplateError, compile_template

__all__ = ["COMMON_PROPS", "Item", "Sink", "SinkConf", "parse_common"]

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
LOG_INTERVAL = 10.0


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
    "resourceId": (props.Prop("resource_id", _zero("resourceId (sink conf files)")), ""),
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


# --------------------------------------------------------------------------- transform (pure)


class Item:
    """One outgoing message: ``value`` (a row, a list of rows, or a template's text) and its bytes."""

    __slots__ = ("value", "source", "peer", "timestamp", "_payload")

    def __init__(self, value: Any, source: Any, peer: Peer, timestamp: int,
                 payload: Optional[bytes] = None) -> None:
        self.value = value
        self.source = source  # the row or rows before the transform: dynamic props (mqtt topic) use it
        self.peer = peer
        self.timestamp = timestamp
        self._payload = payload

    @property
    def payload(self) -> bytes:
        """The encoded message (json; a template's text as it is)."""
        payload = self._payload
        if payload is None:
            payload = self._payload = dumps(self.value)
        return payload

    @property
    def encoded(self) -> bool:
        return self._payload is not None

    def rows(self) -> list[Any]:
        """The records in this message, for outputs that print one line a record."""
        value = self.value
        return list(value) if isinstance(value, list) else [value]


def select(data: Any, fields: Optional[tuple[str, ...]], exclude: Optional[tuple[str, ...]]) -> Any:
    """eKuiper's ``selectMap``: keep ``fields`` (missing ones null) or drop ``exclude``, per map."""
    if fields:
        if isinstance(data, Mapping):
            return {f: data.get(f) for f in fields}
        if isinstance(data, list):
            return [{f: row.get(f) for f in fields} for row in data]
        raise ValueError(f"unsupported type {_short(data)}")
    if exclude:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if k not in exclude}
        if isinstance(data, list):
            return [{k: v for k, v in row.items() if k not in exclude} for row in data]
        raise ValueError(f"unsupported type {_short(data)}")
    return data


def trans_item(data: Any, data_field: Optional[str], fields: Optional[tuple[str, ...]],
               exclude: Optional[tuple[str, ...]]) -> Any:
    """eKuiper's ``transform.TransItem``: ``dataField`` then ``fields``/``excludeFields``.

    Raises:
        ValueError: the data is not a map or a list of maps where one is needed.
    """
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            raise ValueError(f"fail to decode data {_short(data)}: not JSON") from None
    if data_field:
        if isinstance(data, Mapping):
            data = data.get(data_field)
        elif isinstance(data, list):
            if not data:
                return None
            first = data[0]
            if not isinstance(first, Mapping):
                raise ValueError(f"fail to decode data {_short(data)}")
            data = first.get(data_field)
        else:
            raise ValueError(f"fail to decode data {_short(data)}")
    if isinstance(data, list):
        if not all(isinstance(v, Mapping) for v in data):
            raise ValueError(f"unsupported type {_short(data)}")
        data = [dict(v) for v in data]
    return select(data, fields, exclude)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def transform(conf: SinkConf, data: Any, peer: Peer, timestamp: int) -> Item:
    """One message from a row (sendSingle) or a list of rows; raises ValueError on a bad record."""
    if conf.template is not None:
        try:
            text = conf.template.render(data)
        except TemplateError as exc:
            raise ValueError(f"fail to encode data with dataTemplate: {exc}") from None
        if not (conf.data_field or conf.fields or conf.exclude_fields):
            return Item(text, data, peer, timestamp, text.encode("utf-8"))
        return Item(trans_item(text, conf.data_field, conf.fields, conf.exclude_fields), data, peer,
                    timestamp)
    if conf.data_field or conf.fields or conf.exclude_fields:
        return Item(trans_item(data, conf.data_field, conf.fields, conf.exclude_fields), data, peer,
                    timestamp)
    return Item(data, data, peer, timestamp)


def without_nil(row: Any) -> Any:
    """``sendNilField`` false (eKuiper's default): a row's null columns are left out."""
    if isinstance(row, dict):
        for value in row.values():
            if value is None:
                return {k: v for k, v in row.items() if v is not None}
    return row


# --------------------------------------------------------------------------- the pipeline


class Sink:
    """One action of a running rule behind the common pipeline; the rule sees only this.

    It has the :class:`~ekws.actions.Action` methods the rule calls
    (``start``, ``send``, ``emit``, ``flush``, ``close``, ``metrics``).
    """

    def __init__(self, conf: SinkConf, action: Any, *, drop_nil: bool = True) -> None:
        self.conf = conf
        self.action = action
        self.name: str = action.name
        self.asynchronous: bool = getattr(action, "asynchronous", False)
        self._drop_nil = drop_nil
        self._plain = not conf.transforms and not conf.send_single
        # The common case, kept short: no batch, no omitIfEmpty, no transform, delivered in the caller.
        self._direct = not (conf.batch_size or conf.linger or conf.omit_if_empty or conf.transforms
                            or conf.run_async)
        self._batch: list[Message] = []
        self._batch_since = 0.0
        self._lock = threading.Lock()  # the batch: the rule's worker, a window's timer, the linger thread
        self._queue: Optional[queue.Queue[Optional[Item]]] = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Condition(self._lock)
        self.delivered = 0
        self.omitted = 0
        self.exceptions = 0
        self.last_exception: Optional[str] = None
        self._log_time = 0.0

    @property
    def runtime(self) -> Optional[Runtime]:
        runtime: Optional[Runtime] = self.action.runtime
        return runtime

    @runtime.setter
    def runtime(self, runtime: Optional[Runtime]) -> None:
        self.action.runtime = runtime

    def start(self) -> None:
        self.action.start()
        conf = self.conf
        if conf.run_async:
            self._queue = queue.Queue(conf.buffer_length)
            for n in range(conf.concurrency):
                self._spawn(self._work, f"ekws-sink-{id(self):x}-{n}")
        if conf.linger > 0:
            self._spawn(self._linger, f"ekws-sink-linger-{id(self):x}")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name)
        self._threads.append(thread)
        thread.start()

    # -- in: the rule's worker (and a window's timer) -----------------------------------------

    def send(self, msg: Message) -> None:
        """A one-record emission (a plain rule's output, a sendError record)."""
        if not self._direct:
            self.emit([msg])
            return
        data = msg.data
        if self._drop_nil and None in data.values():
            data = msg.data = without_nil(data)
        value = data if self.conf.send_single else [data]
        self.action.deliver(Item(value, value, msg.peer, msg.timestamp))
        self.delivered += 1

    def emit(self, msgs: list[Message]) -> None:
        """An emission: the rows a window fired, or one record."""
        conf = self.conf
        if self._drop_nil:
            for msg in msgs:
                msg.data = without_nil(msg.data)
        if conf.batch_size or conf.linger:
            with self._lock:
                if not self._batch:
                    self._batch_since = time.monotonic()
                    self._wake.notify_all()
                self._batch.extend(msgs)
                if not conf.batch_size or len(self._batch) < conf.batch_size:
                    return
                msgs, self._batch = self._batch, []
        self._dispatch(msgs)

    def _dispatch(self, msgs: list[Message]) -> None:
        conf = self.conf
        if conf.omit_if_empty and not any(m.data for m in msgs):
            self.omitted += 1
            return
        if not msgs:
            return
        first = msgs[0]
        if not conf.send_single:
            rows = [m.data for m in msgs]
            items = [Item(rows, rows, first.peer, first.timestamp) if self._plain
                     else transform(conf, rows, first.peer, first.timestamp)]
        else:
            items = []
            for m in msgs:
                if conf.omit_if_empty and not m.data:
                    self.omitted += 1
                    continue
                items.append(transform(conf, m.data, m.peer, m.timestamp))
        work = self._queue
        if work is not None:
            for item in items:
                work.put(item)  # full: blocks the rule (eKuiper's bufferLength back pressure)
            return
        failure: Optional[BaseException] = None
        for item in items:
            try:
                self.action.deliver(item)
                self.delivered += 1
            except Exception as exc:
                if failure is not None:
                    self._failed(exc)
                failure = failure or exc
        if failure is not None:
            raise failure

    def flush(self) -> None:
        if self._queue is None:
            self.action.flush()

    # -- the worker and linger threads ---------------------------------------------------------

    def _work(self) -> None:
        work = self._queue
        assert work is not None
        while True:
            try:
                item = work.get(timeout=0.5)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            if item is None:
                return
            try:
                self.action.deliver(item)
                self.delivered += 1
            except Exception as exc:
                self._failed(exc)
            if work.empty():
                try:
                    self.action.flush()
                except Exception as exc:
                    self._failed(exc)

    def _linger(self) -> None:
        linger = self.conf.linger
        with self._lock:
            while not self._stopping.is_set():
                if not self._batch:
                    self._wake.wait(0.5)
                    continue
                due = self._batch_since + linger - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
                msgs, self._batch = self._batch, []
                self._lock.release()
                try:
                    self._dispatch(msgs)
                    self.flush()
                except Exception as exc:
                    self._failed(exc)
                finally:
                    self._lock.acquire()

    def _failed(self, exc: BaseException) -> None:
        self.exceptions += 1
        self.last_exception = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._log_time >= LOG_INTERVAL:
            self._log_time = now
            logger.error("%s: %s", self.name, self.last_exception)

    # -- out ------------------------------------------------------------------------------

    def close(self) -> None:
        """Send the batch still held, let the workers drain (bounded), close the action; idempotent."""
        try:
            with self._lock:
                msgs, self._batch = self._batch, []
                self._stopping.set()
                self._wake.notify_all()
            if msgs:
                try:
                    self._dispatch(msgs)
                except Exception as exc:
                    self._failed(exc)
            work = self._queue
            if work is not None:
                for _ in range(self.conf.concurrency):
                    try:
                        work.put(None, timeout=STOP_TIMEOUT)
                    except queue.Full:
                        break
            deadline = time.monotonic() + STOP_TIMEOUT
            for thread in self._threads:
                thread.join(max(deadline - time.monotonic(), 0.1))
            self._threads = []
        finally:
            self.action.close()

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.action.metrics())
        if "records_out_total" not in out:
            out["records_out_total"] = self.delivered
        if self.exceptions:
            out["exceptions_total"] = out.get("exceptions_total", 0) + self.exceptions
            out["last_exception"] = self.last_exception
        if self.omitted:
            out["omitted_total"] = self.omitted
        work = self._queue
        if work is not None:
            out["buffer_length"] = out.get("buffer_length", 0) + work.qsize()
        return out

