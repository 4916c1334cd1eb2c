"""What every CLI command shares: the REST client, the session its output goes to, the exit codes.

Split from :mod:`ekws.cli.commands` (which holds the command table and
``run_command``); the commands themselves are in :mod:`ekws.cli.streams`,
:mod:`ekws.cli.rules` and :mod:`ekws.cli.transfer`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

OK, FAILED, USAGE = 0, 1, 2
TIMEOUT = 30.0  # a connectivity check may take connectTimeout (10 s by default)
HELP_WORDS = ("-h", "--help")


class UsageError(Exception):
    """The command line is wrong; exit 2."""


class Unreachable(Exception):
    """No ekws answers at the address; exit 1."""


class BadName(Exception):
    """A rule id or stream name eKuiper's ``ValidateID`` refuses; exit 1, as the service would answer."""


def checked_name(name: str, what: str) -> str:
    """The name URL-quoted for a path, after eKuiper's id check (rpc.go checks before any call)."""
    from ..ddl import id_problem

    problem = id_problem(name)
    if problem is not None:
        raise BadName(f"invalid {what}: {problem}")
    return quote(name, safe="")


class Client:
    """One REST call per command, with the bearer token when one is set."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.host, self.port, self.token = host, port, token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise Unreachable(f"cannot reach ekws at {self.host}:{self.port}: is `ekws run` running? "
                              f"({reason})") from None
        finally:
            conn.close()


def error_message(text: str) -> str:
    """The ``message`` of an eKuiper error body, else the text itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return text.strip()


class Commands:
    """The session of one command: the client and where its output goes."""

    def __init__(self, client: Client, out: TextIO, err: TextIO) -> None:
        self.client, self.out, self.err = client, out, err

    def print(self, text: str) -> None:
        print(text, file=self.out)

    def fail(self, text: str) -> int:
        print(text, file=self.err)
        return FAILED

    def expect(self, status: int, text: str, ok: Sequence[int] = (200, 201)) -> int:
        """Print the service's sentence (exit 0) or its error's message (stderr, exit 1)."""
        if status in ok:
            if text.strip():
                self.print(text.strip())
            return OK
        return self.fail(error_message(text))

    def get_json(self, path: str) -> tuple[int, Any]:
        """``(OK, value)`` or ``(FAILED, None)`` with the error printed."""
        status, text = self.client.call("GET", path)
        if status != 200:
            return self.expect(status, text), None
        return OK, json.loads(text)


@dataclass(frozen=True)
class Command:
    usage: str
    summary: str
    run: Callable[[Commands, list[str]], int]


def read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
