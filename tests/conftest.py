"""Fixtures the rule and action suites share (tests/rules/, tests/actions/).

``runtime``: a Runtime with a server-mode ``demo`` stream on ``/api/data``
(shared server on port 0); ``rules``: a RuleManager over it, closed after the
test. A module that defines a fixture of the same name uses its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.server import create_sql, write_etc

import ekws
from ekws.rules.manager import RuleManager


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ekws.Runtime]:
    with ekws.Runtime(config_dir=write_etc(tmp_path)) as rt:
        rt.create_stream(create_sql("demo", "/api/data"))
        yield rt


@pytest.fixture
def rules(runtime: ekws.Runtime) -> Iterator[RuleManager]:
    manager = RuleManager(runtime)
    yield manager
    manager.close()
