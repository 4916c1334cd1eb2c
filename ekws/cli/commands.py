"""The kuiper-style CLI: ``ekws create stream ...`` and friends, over the REST API.

Like eKuiper's ``bin/kuiper``, every command is one REST call to a running
``ekws run``. Verbs and keywords are case-insensitive, and everything after
``create stream`` is the rest of the statement, so the seed's
``ekws CREATE STREAM demo'() with(format="json", ...)'`` works as written (the
shell hands over ``demo() with(...)`` as one word). Rules as ``bin/kuiper``:
``create rule NAME '<json>'`` or ``-f FILE``, ``show rules``, ``describe|drop
rule NAME``, ``start|stop|restart|getstatus rule NAME``.

Exit codes: 0 ok, 1 the service answered an error (its message printed) or
cannot be reached, 2 usage error.
"""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO
from urllib.parse import quote

OK, FAILED, USAGE = 0, 1, 2
TIMEOUT = 30.0  # a connectivity check may take connectTimeout (10 s by default)


class UsageError(Exception):
    """The command line is wrong; exit 2."""


class Unreachable(Exception):
    """No ekws answers at the address; exit 1."""


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


def _message(text: str) -> str:
    """The ``message`` of an eKuiper error body, else the text itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return text.strip()


class Commands:
    def __init__(self, client: Client, out: TextIO, err: TextIO) -> None:
        self.client, self.out, self.err = client, out, err

    def _expect(self, status: int, text: str, ok: Sequence[int] = (200, 201)) -> int:
        if status in ok:
            if text.strip():
                print(text.strip(), file=self.out)
            return OK
        print(f"ekws: {_message(text)}", file=self.err)
        return FAILED

    def create(self, words: list[str]) -> int:
        if _is_rule(words):
            return create_rule(self, words[1:])
        kind = _keyword(words, "create", ("stream", "rule"))
        rest = words[1:]
        if rest[:1] == ["-f"]:
            if len(rest) != 2:
                raise UsageError("create stream -f FILE takes one file")
            sql = _statement_from_file(rest[1])
        else:
            if not rest:
                raise UsageError("create stream NAME '(FIELDS) WITH (OPTIONS)'")
            sql = f"CREATE {kind.upper()} " + " ".join(rest)
        return self._expect(*self.client.call("POST", "/streams", {"sql": sql}))

    def show(self, words: list[str]) -> int:
        if _is_rule(words):
            return show_rules(self, words[1:])
        _keyword(words, "show", ("streams", "stream", "rules"))
        if len(words) != 1:
            raise UsageError("show streams takes no argument")
        status, text = self.client.call("GET", "/streams")
        if status != 200:
            return self._expect(status, text)
        names = json.loads(text)
        print("\n".join(names) if names else "No stream definitions are found.", file=self.out)
        return OK

    def describe(self, words: list[str]) -> int:
        if _is_rule(words):
            return rule_json(self, "describe", words[1:], "")
        _keyword(words, "describe", ("stream", "rule"))
        args = [w for w in words[1:] if w.lower() not in ("-json", "--json")]
        if len(args) != 1:
            raise UsageError("describe stream NAME [-json]")
        status, text = self.client.call("GET", f"/streams/{quote(args[0], safe='')}")
        if status != 200:
            return self._expect(status, text)
        if len(args) != len(words) - 1:
            print(json.dumps(json.loads(text), indent=2), file=self.out)
        else:
            print(_describe_text(json.loads(text)), file=self.out)
        return OK

    def drop(self, words: list[str]) -> int:
        if _is_rule(words):
            return rule_call(self, "drop", "DELETE", words[1:], "")
        _keyword(words, "drop", ("stream", "rule"))
        if len(words) != 2:
            raise UsageError("drop stream NAME")
        return self._expect(*self.client.call("DELETE", f"/streams/{quote(words[1], safe='')}"))

    def check(self, words: list[str]) -> int:
        _keyword(words, "check", ("websocket",))
        if len(words) != 2:
            raise UsageError("check websocket '<props json>', e.g. '{\"addr\": \"127.0.0.1:8080\"}'")
        try:
            props = json.loads(words[1])
        except ValueError as exc:
            raise UsageError(f"the props are not valid JSON: {exc}") from None
        if not isinstance(props, dict):
            raise UsageError("the props must be a JSON object")
        status, text = self.client.call("POST", "/metadata/sources/connection/websocket", props)
        if status == 200:
            print(_message(text), file=self.out)
            return OK
        return self._expect(status, text)


def _tail(commands: Commands, words: list[str]) -> int:
    """``ekws tail STREAM``: a websocket (:mod:`ekws.cli.tail`), not one REST call."""
    if len(words) != 1 or words[0].startswith("-"):
        raise UsageError("tail STREAM (prints the stream's records as JSON lines until Ctrl-C)")
    from .tail import tail  # here, not at the top: the other verbs never load the websocket client

    client = commands.client
    return tail(client.host, client.port, client.token, words[0], commands.out, commands.err)


VERBS: dict[str, Callable[[Commands, list[str]], int]] = {
    "create": Commands.create,
    "show": Commands.show,
    "describe": Commands.describe,
    "drop": Commands.drop,
    "check": Commands.check,
    "tail": _tail,
}


def _keyword(words: list[str], verb: str, allowed: tuple[str, ...]) -> str:
    if not words or words[0].lower() not in allowed:
        got = repr(words[0]) if words else "nothing"
        raise UsageError(f"{verb} expects {' or '.join(allowed)} next, got {got}")
    return words[0].lower()


def _statement_from_file(path: str) -> str:
    """A file holding a statement, ``NAME (...) WITH (...)``, or eKuiper's ``{"sql": ...}``."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if text.startswith("{"):
        try:
            sql = json.loads(text).get("sql")
        except (ValueError, AttributeError):
            sql = None
        if not isinstance(sql, str):
            raise UsageError(f"{path}: expected {{\"sql\": \"CREATE STREAM ...\"}}")
        return sql
    return text if text[:6].lower() == "create" else f"CREATE STREAM {text}"


def _describe_text(body: dict[str, Any]) -> str:
    lines = ["Fields", "-" * 60]
    for field in body.get("StreamFields") or ():
        field_type = field.get("FieldType")
        shown = field_type if isinstance(field_type, str) else json.dumps(field_type)
        lines.append(f"{field.get('Name')}\t{shown}")
    if not body.get("StreamFields"):
        lines.append("(schemaless)")
    lines.append("")
    lines += [f"{key.upper()}: {value}" for key, value in (body.get("Options") or {}).items()]
    return "\n".join(lines)


# -- rules ---------------------------------------------------------------------------------------


def _is_rule(words: list[str]) -> bool:
    return bool(words) and words[0].lower() in ("rule", "rules")


def _rule_name(verb: str, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f"{verb} rule NAME")
    return quote(args[0], safe="")


def create_rule(commands: Commands, args: list[str]) -> int:
    """``create rule NAME '<json>'`` or ``create rule NAME -f FILE``: POST /rules with NAME as the id."""
    usage = "create rule NAME '<rule json>' or create rule NAME -f FILE"
    if len(args) == 3 and args[1] == "-f":
        try:
            with open(args[2], encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise UsageError(f"cannot read {args[2]}: {exc.strerror or exc}") from None
        where = args[2]
    elif len(args) == 2:
        text, where = args[1], "the rule"
    else:
        raise UsageError(usage)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{where}: expected a JSON object like "
                         '{"sql": "SELECT * FROM demo", "actions": [{"log": {}}]}')
    name = args[0]
    if body.get("id", name) != name:
        raise UsageError(f"{where}: its id {body['id']!r} differs from the rule name {name!r}")
    return commands._expect(*commands.client.call("POST", "/rules", {**body, "id": name}))


def show_rules(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("show rules takes no argument")
    status, text = commands.client.call("GET", "/rules")
    if status != 200:
        return commands._expect(status, text)
    rules = json.loads(text)
    print(json.dumps(rules, indent=2) if rules else "No rule definitions are found.", file=commands.out)
    return OK


def rule_json(commands: Commands, verb: str, args: list[str], suffix: str) -> int:
    """``describe rule`` and ``getstatus rule``: the JSON answer, indented."""
    status, text = commands.client.call("GET", f"/rules/{_rule_name(verb, args)}{suffix}")
    if status != 200:
        return commands._expect(status, text)
    print(json.dumps(json.loads(text), indent=2), file=commands.out)
    return OK


def rule_call(commands: Commands, verb: str, method: str, args: list[str], suffix: str) -> int:
    """``drop|start|stop|restart rule NAME``: the service's sentence, or its error."""
    return commands._expect(*commands.client.call(method, f"/rules/{_rule_name(verb, args)}{suffix}"))


def _rule_verb(verb: str) -> Callable[[Commands, list[str]], int]:
    def command(commands: Commands, words: list[str]) -> int:
        _keyword(words, verb, ("rule",))
        if verb == "getstatus":
            return rule_json(commands, verb, words[1:], "/status")
        return rule_call(commands, verb, "POST", words[1:], f"/{verb}")
    return command


VERBS.update({verb: _rule_verb(verb) for verb in ("start", "stop", "restart", "getstatus")})


def run_command(words: list[str], host: str, port: int, token: str | None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one kuiper-style command (``words[0]`` is the verb); returns the exit code."""
    err = err or sys.stderr
    commands = Commands(Client(host, port, token), out or sys.stdout, err)
    verb = VERBS.get(words[0].lower()) if words else None
    try:
        if verb is None:
            raise UsageError(f"unknown command {words[0]!r}" if words else "no command given")
        return verb(commands, words[1:])
    except UsageError as exc:
        print(f"ekws: {exc} (see ekws --help)", file=err)
        return USAGE
    except Unreachable as exc:
        print(f"ekws: {exc}", file=err)
        return FAILED
