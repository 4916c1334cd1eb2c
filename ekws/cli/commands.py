"""The kuiper-style CLI: ``ekws create stream ...`` and friends, over the REST API.

Like eKuiper's ``bin/kuiper``, every command is one REST call (two for
``create rule``: the creation, then its status) to a running ``ekws run``.
Verbs and keywords are case-insensitive, and everything after ``create
stream`` is the rest of the statement, so the seed's ``ekws CREATE STREAM
demo'() with(format="json", ...)'`` works as written (the shell hands over
``demo() with(...)`` as one word).

The commands and their texts are ``bin/kuiper``'s (``cmd/kuiper/main.go`` and
``internal/server/rpc.go`` in eKuiper), with ``ekws`` for ``bin/kuiper``:
stream commands run as the statement through ``POST /streams`` (so ``drop
stream x`` fails with ``Stream command error: Drop stream fails: stream x is
not found.``), ``create rule`` prints ``Rule r1 was created successfully,
please use 'ekws getstatus rule r1' command to get rule status.``. Two
differences, both for scripts: an error goes to stderr with exit code 1
(kuiper prints it on stdout and exits 0), and a rule created (or started)
but not running is exit code 1 with the reason.

``-h``/``--help`` anywhere after a verb prints that command's usage and does
nothing else (``ekws drop rule --help`` never drops a rule named ``--help``).

Exit codes: 0 ok, 1 the service answered an error (its message printed) or
cannot be reached, 2 usage error.
"""

from __future__ import annotations

import http.client
import json
import sys
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


def _checked(name: str, what: str) -> str:
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
        return self.fail(_message(text))

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


# -- streams ---------------------------------------------------------------------------------------


def _statement(commands: Commands, sql: str) -> tuple[int, str]:
    """Run a stream statement as kuiper does (``Server.Stream``): ``(status, text or message)``."""
    status, text = commands.client.call("POST", "/streams", {"sql": sql})
    return status, text if status in (200, 201) else _message(text)


def create_stream(commands: Commands, args: list[str]) -> int:
    if args[:1] == ["-f"]:
        if len(args) != 2:
            raise UsageError("create stream -f FILE takes one file")
        sql = _statement_from_file(args[1])
    else:
        if not args:
            raise UsageError("create stream NAME '(FIELDS) WITH (OPTIONS)'")
        sql = "CREATE STREAM " + " ".join(args)
    status, text = _statement(commands, sql)
    return commands.expect(status, text) if status in (200, 201) else commands.fail(text)


def show_streams(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("show streams takes no argument")
    code, names = commands.get_json("/streams")
    if code == OK:
        commands.print("\n".join(names) if names else "No stream definitions are found.")
    return code


def describe_stream(commands: Commands, args: list[str]) -> int:
    names = [a for a in args if a.lower() not in ("-json", "--json")]
    if len(names) != 1:
        raise UsageError("describe stream NAME [-json]")
    status, text = _statement(commands, f"DESCRIBE STREAM `{names[0]}`")
    if status not in (200, 201):
        return commands.fail(text)
    commands.print(describe_to_json(text) if len(names) != len(args) else text.rstrip("\n") + "\n")
    return OK


def drop_stream(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("drop stream NAME")
    status, text = _statement(commands, f"DROP STREAM `{args[0]}`")
    return commands.expect(status, text) if status in (200, 201) else commands.fail(text)


def describe_to_json(text: str) -> str:
    """``describe stream NAME -json``: eKuiper's ``processor.DescribeToJson`` of the text form.

    ``{"Fields": [{"Name", "Type", "DefaultClause"?}], "Options": {"DATASOURCE:": "/x", ...}}``
    indented with tabs; the option names keep their colon, as kuiper's do.
    """
    body = text.replace("Fields\n" + "-" * 80 + "\n", "", 1)
    fields_part, _, options_part = body.partition("\n\n")
    fields = []
    for line in fields_part.split("\n"):
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        field = {"Name": parts[0], "Type": parts[1]}
        if len(parts) >= 4:
            field["DefaultClause"] = parts[3]
        fields.append(field)
    options: dict[str, str] = {}
    for line in options_part.strip("\n").split("\n"):
        if line:
            name, *value = line.split(" ")
            options[name] = "".join(value)
    return json.dumps({"Fields": fields or None, "Options": dict(sorted(options.items()))}, indent="\t",
                      ensure_ascii=False)


def _statement_from_file(path: str) -> str:
    """A file holding a statement, ``NAME (...) WITH (...)``, or eKuiper's ``{"sql": ...}``."""
    text = _read(path).strip()
    if text.startswith("{"):
        try:
            sql = json.loads(text).get("sql")
        except (ValueError, AttributeError):
            sql = None
        if not isinstance(sql, str):
            raise UsageError(f"{path}: expected {{\"sql\": \"CREATE STREAM ...\"}}")
        return sql
    return text if text[:6].lower() == "create" else f"CREATE STREAM {text}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


# -- rules ---------------------------------------------------------------------------------------


def _rule_path(args: list[str], verb: str, suffix: str = "") -> str:
    if len(args) != 1:
        raise UsageError(f"{verb} rule NAME")
    return f"/rules/{_checked(args[0], 'rule id')}{suffix}"


def _rule_body(args: list[str], verb: str) -> tuple[str, dict[str, Any]]:
    """``NAME '<json>'`` or ``NAME -f FILE``: the name and the body with it as the id."""
    usage = f"{verb} rule NAME '<rule json>' or {verb} rule NAME -f FILE"
    if len(args) == 3 and args[1] == "-f":
        text, where = _read(args[2]), args[2]
    elif len(args) == 3 and args[0] == "-f":  # kuiper's flag order: -f FILE NAME
        text, where = _read(args[1]), args[1]
        args = [args[2]]
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
    return name, {**body, "id": name}


def _not_running(commands: Commands, name: str) -> str | None:
    """The reason a rule that should run does not (its status message), or ``None``."""
    code, status = commands.get_json(f"/rules/{quote(name, safe='')}/status")
    if code != OK or not isinstance(status, dict) or status.get("status") == "running":
        return None
    return str(status.get("message") or status.get("status"))


def create_rule(commands: Commands, args: list[str]) -> int:
    """POST /rules with NAME as the id; exit 1 when the rule was created but did not start."""
    name, body = _rule_body(args, "create")
    status, text = commands.client.call("POST", "/rules", body)
    if status not in (200, 201):
        return commands.fail(_message(text))
    commands.print(f"Rule {name} was created successfully, please use 'ekws getstatus rule {name}' "
                   "command to get rule status.")
    if body.get("triggered", True) is not False:
        reason = _not_running(commands, name)
        if reason is not None:
            return commands.fail(f"Rule {name} did not start: {reason}")
    return OK


def validate_rule(commands: Commands, args: list[str]) -> int:
    """POST /rules/validate; eKuiper's sentence when valid, the reason (exit 1) otherwise."""
    _, body = _rule_body(args, "validate")
    status, text = commands.client.call("POST", "/rules/validate", body)
    if status == 200:
        commands.print("The rule has been successfully validated and is confirmed to be correct.")
        return OK
    return commands.fail(_message(text))


def show_rules(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("show rules takes no argument")
    code, rules = commands.get_json("/rules")
    if code == OK:
        commands.print(json.dumps(rules, indent=2) if rules else "No rule definitions are found.")
    return code


def describe_rule(commands: Commands, args: list[str]) -> int:
    """The rule as eKuiper's ``describe rule`` prints it: ``triggered`` and ``id`` first, options filled."""
    code, body = commands.get_json(_rule_path(args, "describe"))
    if code == OK:
        commands.print(json.dumps(describe_rule_body(body), indent=2, ensure_ascii=False))
    return code


# eKuiper's option order (internal/pkg/def/rule.go RuleOption), with the values ekws runs with when
# a body leaves them out (eKuiper's defaults except lateTolerance, 0 in ekws; bufferLength, when not
# given, is the stream's and so is not printed).
RULE_OPTION_DEFAULTS: dict[str, Any] = {
    "debug": False, "logFilename": None, "isEventTime": False, "lateTolerance": "0s", "concurrency": 1,
    "bufferLength": None, "sendMetaToSink": False, "sendNilField": False, "sendError": False, "qos": None,
    "checkpointInterval": None, "restartStrategy": {}}


def describe_rule_body(body: dict[str, Any]) -> dict[str, Any]:
    """``describe rule`` as kuiper prints it (``ExecDesc``: def.Rule re-marshalled): ``triggered``
    and ``id`` first, then the body's keys, the options with the defaults filled in."""
    out: dict[str, Any] = {"triggered": body.get("triggered", True), "id": body.get("id")}
    for key in ("name", "sql", "stream", "actions"):
        if key in body:
            out[key] = body[key]
    given = dict(body.get("options") or {})
    options = {key: given.pop(key, default) for key, default in RULE_OPTION_DEFAULTS.items()}
    out["options"] = {**{k: v for k, v in options.items() if v is not None}, **given}
    if body.get("tags"):
        out["tags"] = body["tags"]
    return out


def _json_answer(commands: Commands, path: str) -> int:
    code, value = commands.get_json(path)
    if code == OK:
        commands.print(json.dumps(value, indent=2, ensure_ascii=False))
    return code


def getstatus_rule(commands: Commands, args: list[str]) -> int:
    return _json_answer(commands, _rule_path(args, "getstatus", "/status"))


def getstatus_import(commands: Commands, args: list[str]) -> int:
    if args:
        raise UsageError("getstatus import takes no argument")
    return _json_answer(commands, "/data/import/status")


def gettopo_rule(commands: Commands, args: list[str]) -> int:
    return _json_answer(commands, _rule_path(args, "gettopo", "/topo"))


def drop_rule(commands: Commands, args: list[str]) -> int:
    return commands.expect(*commands.client.call("DELETE", _rule_path(args, "drop")))


def _lifecycle(verb: str, sentence: str) -> Callable[[Commands, list[str]], int]:
    def command(commands: Commands, args: list[str]) -> int:
        path = _rule_path(args, verb, f"/{verb}")
        status, text = commands.client.call("POST", path)
        if status != 200:
            return commands.fail(_message(text))
        commands.print(sentence.format(args[0]))
        if verb != "stop":
            reason = _not_running(commands, args[0])
            if reason is not None:
                return commands.fail(f"Rule {args[0]} did not start: {reason}")
        return OK
    return command


# -- import / export -------------------------------------------------------------------------------


def import_ruleset(commands: Commands, args: list[str]) -> int:
    if len(args) != 2 or args[0] != "-f":
        raise UsageError("import ruleset -f FILE")
    content = _read(args[1])
    return commands.expect(*commands.client.call("POST", "/ruleset/import", {"content": content}))


def export_ruleset(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("export ruleset FILE")
    return _export(commands, "/ruleset/export", args[0],
                   "exported {streams} streams, 0 tables and {rules} rules")


def import_data(commands: Commands, args: list[str]) -> int:
    usage = "import data -f FILE [-p true|false]"
    flags = _flags(args, ("-f", "-p", "-s"), usage)
    if "-f" not in flags:
        raise UsageError(usage)
    partial = flags.get("-p", "false")
    if partial not in ("true", "false") or flags.get("-s", "false") not in ("true", "false"):
        raise UsageError("Expect p and s flags to be a boolean value (true or false).")
    if flags.get("-s") == "true":
        raise UsageError("import data -s true (stop the service after) is not supported by ekws")
    content = _read(flags["-f"])
    path = "/data/import" + ("?partial=1" if partial == "true" else "")
    status, text = commands.client.call("POST", path, {"content": content})
    if status != 200:
        return commands.fail(_message(text))
    commands.print(json.dumps(json.loads(text), indent=2))
    return OK


def export_data(commands: Commands, args: list[str]) -> int:
    """``export data FILE [-r '["rule1"]']``: all, or those rules with their streams and conf keys."""
    usage = "export data FILE [-r '[\"rule1\", ...]']"
    if len(args) == 3 and args[1] == "-r":
        try:
            rules = json.loads(args[2])
        except ValueError as exc:
            raise UsageError(f"-r: rules {args[2]} unmarshal error {exc}") from None
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise UsageError("-r: expected a JSON array of rule ids")
        return _export(commands, "/data/export", args[0], "export configuration success", rules)
    if len(args) != 1:
        raise UsageError(usage)
    return _export(commands, "/data/export", args[0], "export configuration success")


def _export(commands: Commands, path: str, file: str, sentence: str, body: Any = None) -> int:
    status, text = commands.client.call("GET" if body is None else "POST", path, body)
    if status != 200:
        return commands.fail(_message(text))
    document = json.loads(text)
    try:
        with open(file, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        return commands.fail(f"fail to save to file {file}: {exc.strerror or exc}")
    commands.print(sentence.format(streams=len(document.get("streams") or {}),
                                   rules=len(document.get("rules") or {})))
    return OK


def _flags(args: list[str], names: tuple[str, ...], usage: str) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i] not in names or i + 1 >= len(args):
            raise UsageError(usage)
        flags[args[i]] = args[i + 1]
        i += 2
    return flags


# -- other -----------------------------------------------------------------------------------------


def check_websocket(commands: Commands, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError("check websocket '<props json>', e.g. '{\"addr\": \"127.0.0.1:8080\"}'")
    try:
        props = json.loads(args[0])
    except ValueError as exc:
        raise UsageError(f"the props are not valid JSON: {exc}") from None
    if not isinstance(props, dict):
        raise UsageError("the props must be a JSON object")
    status, text = commands.client.call("POST", "/metadata/sources/connection/websocket", props)
    if status == 200:
        commands.print(_message(text))
        return OK
    return commands.fail(_message(text))


def _tail(commands: Commands, words: list[str]) -> int:
    """``ekws tail STREAM``: a websocket (:mod:`ekws.cli.tail`), not one REST call."""
    if len(words) != 1 or words[0].startswith("-"):
        raise UsageError("tail STREAM (prints the stream's records as JSON lines until Ctrl-C)")
    from .tail import tail  # here, not at the top: the other verbs never load the websocket client

    client = commands.client
    return tail(client.host, client.port, client.token, words[0], commands.out, commands.err)


# (verb, keyword) -> command; keyword "" is a verb that takes no keyword.
COMMANDS: dict[tuple[str, str], Command] = {
    ("create", "stream"): Command("create stream NAME '(FIELDS) WITH (OPTIONS)' | create stream -f FILE",
                                  "create a stream (FILE holds NAME (...) WITH (...) or {\"sql\": ...})",
                                  create_stream),
    ("create", "rule"): Command("create rule NAME '<rule json>' | create rule NAME -f FILE",
                                "create a rule (and start it unless triggered is false); exit 1 if it "
                                "did not start", create_rule),
    ("validate", "rule"): Command("validate rule NAME '<rule json>' | validate rule NAME -f FILE",
                                  "check a rule as create would, creating nothing", validate_rule),
    ("show", "streams"): Command("show streams", "list the streams", show_streams),
    ("show", "rules"): Command("show rules", "list the rules with their status", show_rules),
    ("describe", "stream"): Command("describe stream NAME [-json]", "the stream's fields and options",
                                    describe_stream),
    ("describe", "rule"): Command("describe rule NAME", "the rule's definition", describe_rule),
    ("drop", "stream"): Command("drop stream NAME", "drop a stream no rule reads", drop_stream),
    ("drop", "rule"): Command("drop rule NAME", "stop and delete a rule", drop_rule),
    ("start", "rule"): Command("start rule NAME", "start a rule; exit 1 if it did not start",
                               _lifecycle("start", "Rule {} was started")),
    ("stop", "rule"): Command("stop rule NAME", "stop a rule", _lifecycle("stop", "Rule {} was stopped.")),
    ("restart", "rule"): Command("restart rule NAME", "restart a rule; exit 1 if it did not start",
                                 _lifecycle("restart", "Rule {} was restarted.")),
    ("getstatus", "rule"): Command("getstatus rule NAME", "the rule's status and metrics (eKuiper's JSON)",
                                   getstatus_rule),
    ("getstatus", "import"): Command("getstatus import", "what failed in the last data import (always "
                                     "empty: an ekws import is all or nothing)", getstatus_import),
    ("gettopo", "rule"): Command("gettopo rule NAME", "the rule's topology (sources and edges)",
                                 gettopo_rule),
    ("import", "ruleset"): Command("import ruleset -f FILE",
                                   "create or replace the streams and rules of an eKuiper ruleset file "
                                   "(all or nothing)", import_ruleset),
    ("export", "ruleset"): Command("export ruleset FILE", "write the streams and rules to FILE",
                                   export_ruleset),
    ("import", "data"): Command("import data -f FILE [-p true|false]",
                                "make the service hold what FILE holds (-p true: add and replace, drop "
                                "nothing); all or nothing", import_data),
    ("export", "data"): Command("export data FILE [-r '[\"rule1\", ...]']",
                                "write streams, rules and conf keys to FILE (-r: those rules, with the "
                                "streams and conf keys they use)", export_data),
    ("check", "websocket"): Command("check websocket '<props json>'",
                                    "connectivity check, e.g. '{\"addr\": \"127.0.0.1:8080\"}'",
                                    check_websocket),
    ("tail", ""): Command("tail STREAM", "print the stream's live records as JSON lines (Ctrl-C ends)",
                          _tail),
}
_ALIASES = {("show", "stream"): ("show", "streams"), ("show", "rule"): ("show", "rules")}


def help_text(verb: str, keyword: str | None = None) -> str:
    """The usage of one command, or of every command of a verb."""
    found = [(key, cmd) for key, cmd in COMMANDS.items()
             if key[0] == verb and (keyword is None or key[1] == keyword)]
    lines = [f"usage: ekws {cmd.usage}\n  {cmd.summary}" for _, cmd in found]
    return "\n".join(lines) + "\n\noptions: --host HOST, --port PORT, --token TOKEN (see ekws --help)"


def _lookup(words: list[str]) -> tuple[Command, list[str]]:
    verb = words[0].lower()
    if (verb, "") in COMMANDS:
        return COMMANDS[(verb, "")], words[1:]
    keywords = sorted(k for v, k in COMMANDS if v == verb)
    if not keywords:
        raise UsageError(f"unknown command {words[0]!r}")
    keyword = words[1].lower() if len(words) > 1 else ""
    key = _ALIASES.get((verb, keyword), (verb, keyword))
    if key not in COMMANDS:
        got = repr(words[1]) if len(words) > 1 else "nothing"
        raise UsageError(f"{verb} expects {' or '.join(keywords)} next, got {got}")
    return COMMANDS[key], words[2:]


def _help_for(words: list[str]) -> str | None:
    """The help a command line asks for (``-h``/``--help`` after the verb), else ``None``."""
    if not any(word in HELP_WORDS for word in words[1:]):
        return None
    verb = words[0].lower()
    if not any(v == verb for v, _ in COMMANDS):
        return None
    keyword = words[1].lower() if len(words) > 1 and words[1] not in HELP_WORDS else None
    if keyword is not None:
        verb, keyword = _ALIASES.get((verb, keyword), (verb, keyword))
        if (verb, keyword) not in COMMANDS:
            keyword = None
    if (verb, "") in COMMANDS:
        keyword = ""
    return help_text(verb, keyword)


def run_command(words: list[str], host: str, port: int, token: str | None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one kuiper-style command (``words[0]`` is the verb); returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    commands = Commands(Client(host, port, token), out, err)
    try:
        if not words:
            raise UsageError("no command given")
        wanted = _help_for(words)
        if wanted is not None:
            print(wanted, file=out)
            return OK
        command, args = _lookup(words)
        return command.run(commands, args)
    except UsageError as exc:
        print(f"ekws: {exc} (see ekws --help)", file=err)
        return USAGE
    except Unreachable as exc:
        print(f"ekws: {exc}", file=err)
        return FAILED
    except BadName as exc:
        print(exc, file=err)
        return FAILED
