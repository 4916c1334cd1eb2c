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

import logging
import queue
import threading
import time
from typing import Any, Optional

from .. import Message, Runtime
from .sink_conf import COMMON_PROPS, SinkConf, parse_common
from .transform import Item, select, trans_item, transform, without_nil

# The conf (sink_conf.py) and the transforms (transform.py) are re-exported here, where they
# were first defined.
__all__ = ["COMMON_PROPS", "Item", "Sink", "SinkConf", "parse_common", "select", "trans_item", "transform",
           "without_nil"]

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
LOG_INTERVAL = 10.0


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

