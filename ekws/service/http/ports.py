"""What the HTTP views need of the service: one Protocol, so ``service/http`` never imports ``service/app``.

``service/app`` builds the REST app from the views in this package and hands
itself to them; the views only type their argument. Typing it as
:class:`ekws.service.app.Service` would make an import cycle (even one under
``TYPE_CHECKING`` reads as one: the layers would know each other), so the
views name :class:`ServicePort`, the part of the service they use, and
``Service`` satisfies it structurally (mypy checks that where ``app`` passes
itself). Data flows one way: ``app`` -> ``http`` -> the SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Protocol

from ... import Runtime
from ...config import ServiceConfig
from ...rules.manager import RuleManager
from ..check import CheckResult
from ..output import LinePrinter
from ..store import Store
from .rest import RestServer

__all__ = ["ServicePort"]


class ServicePort(Protocol):
    """The service as the views see it (:class:`ekws.service.app.Service` provides it)."""

    rules: Optional[RuleManager]  # set by the rules plugin when it starts
    declared: dict[str, str]  # stream name -> statement, for the streams declared in ekws.yaml

    @property
    def config_dir(self) -> Path: ...

    @property
    def settings(self) -> ServiceConfig: ...

    @property
    def plugins(self) -> Sequence[Any]: ...

    @property
    def store(self) -> Store: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def printer(self) -> Optional[LinePrinter]: ...

    @property
    def rest(self) -> Optional[RestServer]: ...

    @property
    def started(self) -> float: ...

    def confkeys(self) -> dict[str, Any]: ...

    def put_confkey(self, key: str, props: dict[str, Any]) -> None: ...

    def delete_confkey(self, key: str) -> None: ...

    def check(self, body: dict[str, Any]) -> CheckResult: ...

    def origin(self, name: str) -> str: ...

    def health(self) -> str: ...

    def create_stream(self, sql: str, *, declared: bool = False) -> str: ...

    def drop_stream(self, name: str) -> None: ...

    def replace_stream(self, name: str, sql: str) -> None: ...
