"""The sink pipeline's pure part: a row or rows to one outgoing :class:`Item`.

eKuiper's ``transform.TransItem`` and ``selectMap`` (``dataTemplate``,
``dataField``, ``fields``, ``excludeFields``) and ``sendNilField``. Split
from :mod:`ekws.actions.sink`, which re-exports every name here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from .. import Peer
from .jsonout import dumps
from .sink_conf import SinkConf
from .template import TemplateError

__all__ = ["Item", "select", "trans_item", "transform", "without_nil"]


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
