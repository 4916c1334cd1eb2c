"""What the rule and action suites share besides the fixtures in conftest.py."""

from __future__ import annotations

import json
from typing import Any

import ekws
from helpers.server import ws_connect


def send(runtime: ekws.Runtime, *records: Any) -> None:
    """Send each record as one JSON text message to the demo stream, then close."""
    address = runtime.server_address
    assert address is not None
    with ws_connect(f"ws://127.0.0.1:{address[1]}/api/data") as ws:
        for record in records:
            ws.send(json.dumps(record))
