"""The ``mqtt`` action: publish each record to a broker through paho-mqtt (``pip install 'ekws[mqtt]'``).

This is how a fleet of devices fans in to an existing broker cluster
(Mosquitto, EMQX): each device runs ekws and publishes what its rules select.

Props, as eKuiper's MQTT sink names them: ``server`` (``tcp://host:1883``,
``ssl://host:8883``; also ``mqtt://``/``mqtts://``), ``topic`` (required; may
hold ``{field}`` or eKuiper's ``{{.field}}`` templates filled from each
record, ``{a.b}`` for nested fields), ``qos`` (0 default, 1, 2), ``clientId``
(default ``ekws-<random>``), ``username``, ``password``, ``retained``,
``protocolVersion`` (``3.1.1`` default, ``3.1``), ``certificationPath``,
``privateKeyPath``, ``rootCaPath``, ``insecureSkipVerify``; ekws's own
``keepAlive`` (seconds, default 60), ``reconnect`` (``initialDelay``,
``maxDelay``: paho's reconnect backoff), ``bufferLength`` (default 1024).

Delivery: paho's network thread connects, reconnects and delivers; the rule
only queues. QoS 1 and 2 messages published while the broker is away wait in
paho's queue (up to ``bufferLength``, then dropped and counted) and go out,
in order, once it is back; unacknowledged ones are sent again. QoS 0 messages
published while disconnected are dropped and counted (at most once).
``records_out_total`` counts what the broker acknowledged (QoS 0: written).

With ``enableCache`` (see :mod:`ekws.actions.sink`), messages go to the
disk cache (:class:`~ekws.actions.cache.DiskCache`) instead of paho's
queue, and the action's sender thread publishes them one at a time, in
order, each removed only once the broker acknowledged it (eKuiper's
synchronous resend): a broker outage, a rule restart or a service restart
loses nothing (use QoS 1: a QoS 0 message written to a dying connection is
gone). After a reconnect the backlog is resent ``resendInterval`` apart.

The topic may hold eKuiper's dynamic props: ``{{.field}}`` (any template of
:mod:`ekws.actions.template`, applied to the row, or to the list of rows
without ``sendSingle``: ``{{index . 0 "topic"}}``) or ekws's ``{field}``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from .. import ConfigError, Message, SourceProps
from ..wire.tls import client_context
from . import Action, ActionError, Item, Props
from .cache import CacheConf, DiskCache
from .template import Template, TemplateError, compile_template

paho: Any  # typed loosely on purpose: mypy must pass with and without the [mqtt] extra
try:
    import paho.mqtt.client as _paho

    paho = _paho
except ImportError:  # pragma: no cover - the [mqtt] extra is optional
    paho = None

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # seconds to wait, at stop, for the broker to acknowledge what is queued
ACK_TIMEOUT = 10.0  # seconds the cache's sender waits for one acknowledgement before it tries again
_TEMPLATE_RE = re.compile(r"\{\{\s*\.([^{}\s]+)\s*\}\}|\{([^{}\s]+)\}")
_BRACES_RE = re.compile(r"(?<!\{)\{([^{}\s]+)\}(?!\})")  # ekws's {field}, not a {{...}}
_SCHEMES = {"tcp": (1883, False), "mqtt": (1883, False), "ssl": (8883, True), "tls": (8883, True),
            "mqtts": (8883, True)}


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    tls: Optional[SourceProps]  # the TLS props, when the scheme is ssl/mqtts
    topic: str
    template: Optional[Template]  # the topic's {{...}} or {field} parts, as a template
    qos: int
    client_id: str
    username: Optional[str]
    password: Optional[str]
    retained: bool
    protocol: str
    keep_alive: int
    reconnect_min: float
    reconnect_max: float
    buffer_length: int


def parse(props: Props) -> MqttConfig:
    if paho is None or not hasattr(paho, "CallbackAPIVersion"):
        raise ActionError(f"{props.where}: the mqtt action needs paho-mqtt 2: pip install 'ekws[mqtt]'")
    server = props.string("server", required=True)
    parts = urlsplit(server if "://" in server else f"tcp://{server}")
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise props.fail("server", f"expected tcp://host:port or ssl://host:port, got {server!r}")
    default_port, secure = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise props.fail("server", f"bad port in {server!r}") from None
    topic = props.string("topic", required=True)
    template: Optional[Template] = None
    if _TEMPLATE_RE.search(topic):
        go_form = _BRACES_RE.sub(lambda m: "{{." + m.group(1) + "}}", topic)
        try:
            template = compile_template(go_form, "topic")
        except TemplateError as exc:
            raise props.fail("topic", str(exc)) from None
    if not topic or (template is None and ("+" in topic or "#" in topic)):
        raise props.fail("topic", f"expected a topic to publish to (no wildcards), got {topic!r}")
    tls = SourceProps(
        name=props.where, scheme="wss",
        insecure_skip_verify=props.boolean("insecureSkipVerify", False),
        root_ca_path=props.string("rootCaPath"),
        certification_path=props.string("certificationPath"),
        private_key_path=props.string("privateKeyPath"),
    )
    sub = props.sub("reconnect")
    reconnect_min = sub.duration("initialDelay", 1.0)
    reconnect_max = max(sub.duration("maxDelay", 30.0), reconnect_min)
    sub.check_unknown()
    return MqttConfig(
        host=parts.hostname, port=port, tls=tls if secure else None, topic=topic, template=template,
        qos=props.choice("qos", 0, (0, 1, 2)),
        client_id=props.string("clientId") or f"ekws-{uuid.uuid4().hex[:12]}",
        username=props.string("username"), password=props.string("password"),
        retained=props.boolean("retained", False),
        protocol=props.choice("protocolVersion", "3.1.1", ("3.1.1", "3.1")),
        keep_alive=props.integer("keepAlive", 60, minimum=5, maximum=65535),
        reconnect_min=reconnect_min, reconnect_max=reconnect_max,
        buffer_length=props.integer("bufferLength", 1024, minimum=1),
    )


def can_cache(config: Any) -> bool:
    return True


class MqttAction(Action):
    asynchronous = True

    def __init__(self, config: Any, name: str) -> None:
        super().__init__(config, name)
        self._config: MqttConfig = config
        self._client: Any = None
        self._lock = threading.Lock()
        self.records_out = 0
        self.dropped = 0
        self.exceptions = 0
        self.last_exception: Optional[str] = None
        self.pending = 0  # published, not yet acknowledged
        self.connected = False
        self.connects = 0
        self._cache: Optional[DiskCache] = None
        self._cond = threading.Condition()  # the cache, connected, the acknowledgement awaited
        self._acks: set[int] = set()  # mids acknowledged since the cache's sender last published
        self._stopping = threading.Event()
        self._sender: Optional[threading.Thread] = None
        self._resend = 0.0

    def start(self) -> None:
        config = self._config
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=config.client_id,
            protocol=paho.MQTTv31 if config.protocol == "3.1" else paho.MQTTv311)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls is not None:
            try:
                context = client_context(config.tls)
            except ConfigError as exc:
                raise ActionError(str(exc)) from exc
            client.tls_set_context(context)
            if config.tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        if self.cache is not None:
            conf, table = self.cache
            assert isinstance(conf, CacheConf)
            self._cache = DiskCache(conf, table)
            self._resend = conf.resend_interval
        client.max_queued_messages_set(config.buffer_length)
        client.reconnect_delay_set(config.reconnect_min, config.reconnect_max)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(config.host, config.port, keepalive=config.keep_alive)
        self._client = client
        client.loop_start()
        if self._cache is not None:
            self._sender = threading.Thread(target=self._drain, name=f"ekws-action-mqtt-{id(self):x}")
            self._sender.start()

    def send(self, msg: Message) -> None:  # the Action interface; the sink calls deliver()
        self.deliver(Item(msg.data, msg.data, msg.peer, msg.timestamp))

    def _topic(self, item: Item) -> str:
        template = self._config.template
        if template is None:
            return self._config.topic
        try:
            topic = template.render(item.source)
        except TemplateError as exc:
            raise ActionError(f"topic: {exc}") from None
        if "<no value>" in topic:
            raise ActionError(f"the topic template {self._config.topic!r} needs a field the record lacks")
        return topic

    def deliver(self, item: Item) -> None:
        config = self._config
        topic = self._topic(item)
        cache = self._cache
        if cache is not None:
            # The topic travels with the payload: "topic\0payload" (a topic holds no NUL).
            with self._cond:
                cache.push(topic.encode("utf-8") + b"\0" + item.payload)
                self._cond.notify_all()
            return
        info = self._client.publish(topic, item.payload, qos=config.qos, retain=config.retained)
        rc = info.rc
        if rc == paho.MQTT_ERR_SUCCESS or (rc == paho.MQTT_ERR_NO_CONN and config.qos > 0):
            with self._lock:
                self.pending += 1  # QoS > 0 without a connection: queued, sent on reconnect
            return
        with self._lock:
            self.dropped += 1
        if rc not in (paho.MQTT_ERR_NO_CONN, paho.MQTT_ERR_QUEUE_SIZE):
            raise ActionError(f"publish to {topic!r} failed: {paho.error_string(rc)}")

    def _drain(self) -> None:
        """enableCache: publish the oldest cached message, wait for its acknowledgement, repeat."""
        cache, cond, config = self._cache, self._cond, self._config
        assert cache is not None
        backlog = 0
        was_connected = False
        while not self._stopping.is_set():
            with cond:
                if not self.connected or not len(cache):
                    was_connected = was_connected and self.connected
                    cond.wait(0.5)
                    continue
                if not was_connected:  # (re)connected: what waits now is resent resendInterval apart
                    was_connected, backlog = True, len(cache) if self._resend else 0
                entry = cache.peek()
                client = self._client
            if entry is None or client is None:
                continue
            topic, _, payload = entry.partition(b"\0")
            with cond:
                self._acks.clear()
            # Not under our lock: paho calls on_publish holding its own message lock, which publish takes.
            info = client.publish(topic.decode("utf-8"), payload, qos=config.qos, retain=config.retained)
            with cond:
                mid = info.mid
                if info.rc == paho.MQTT_ERR_SUCCESS:
                    cond.wait_for(lambda mid=mid: mid in self._acks or not self.connected  # type: ignore[misc]
                                  or self._stopping.is_set(), ACK_TIMEOUT)
                if mid in self._acks:
                    cache.ack()
                    self.records_out += 1
                else:
                    cache.release()  # not acknowledged: sent again (after the reconnect)
                    if self.connected and not self._stopping.is_set():
                        cond.wait(0.5)
                    continue
            if backlog:
                backlog -= 1
                self._stopping.wait(self._resend)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._stopping.set()
        if self._sender is not None:
            with self._cond:
                self._cond.notify_all()
            self._sender.join(STOP_TIMEOUT + ACK_TIMEOUT)
            assert self._cache is not None
            with self._cond:
                self._cache.close()  # what is left waits on disk for the next start
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.connected and self.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # paho has no flush(); its thread delivers meanwhile
        client.disconnect()
        client.loop_stop()

    def metrics(self) -> dict[str, Any]:
        out = {
            "records_out_total": self.records_out,
            "exceptions_total": self.exceptions,
            "last_exception": self.last_exception,
            "dropped_total": self.dropped,
            "buffer_length": self.pending,
            "connection_status": 1 if self.connected else -1,
            "connects_total": self.connects,
        }
        if self._cache is not None:
            out.update(self._cache.metrics())
        return out

    # -- paho's network thread ------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._failed(f"connection refused: {reason}")
            return
        with self._cond:
            self.connected = True
            self._cond.notify_all()
        self.connects += 1
        logger.info("%s: connected to %s:%s", self.name, self._config.host, self._config.port)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._failed("cannot connect (refused, unreachable or a TLS failure)")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self.connected
        with self._cond:
            self.connected = False
            self._cond.notify_all()
        if was and self._client is not None:
            self._failed(f"disconnected: {reason}")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if self._cache is not None:
            with self._cond:
                self._acks.add(mid)
                self._cond.notify_all()
            return
        with self._lock:
            self.records_out += 1
            self.pending = max(self.pending - 1, 0)

    def _failed(self, text: str) -> None:
        self.exceptions += 1
        self.last_exception = f"{self._config.host}:{self._config.port}: {text}"
        logger.warning("%s: %s", self.name, self.last_exception)


ACTION = MqttAction
